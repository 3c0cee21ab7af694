import { z } from "zod";
import { jsonList, RegularExpression } from "../json-setting";
import { isRepositoryName, isTag } from "../references";

// A repository to keep warm, named as clients name it under the mirror (e.g. "alpine" or "grafana/grafana"): the
// listed tags, and/or the newest maxTags of the upstream's tags matching tagPattern.
const PrewarmImage = z
  .strictObject({
    repository: z.string().refine(isRepositoryName, "a repository name such as alpine or grafana/grafana"),
    tags: z.array(z.string().refine(isTag, "a tag")).default([]),
    tagPattern: RegularExpression.optional(),
    maxTags: z.number().int().min(1).max(100).default(5),
  })
  .refine((image) => image.tags.length > 0 || image.tagPattern !== undefined, "give tags, a tagPattern or both");

const Prewarm = z.strictObject({
  images: z.array(PrewarmImage).min(1).max(100),
  /** Which platforms of a multi-platform image are fetched (os/architecture[/variant]). */
  platforms: z.array(z.string().regex(/^[a-z0-9]+\/[a-z0-9_]+(?:\/[a-z0-9]+)?$/, "os/architecture, e.g. linux/amd64")).min(1).default(["linux/amd64"]),
  /** At most this many tags are refreshed per cron pass (those checked longest ago first). */
  tagsPerRun: z.number().int().min(1).max(50).default(10),
});

// MIRRORS: a JSON list of read-only namespaces backed by upstream registries.
//   [{"prefix": "hub", "upstream": "https://registry-1.docker.io"},
//    {"prefix": "ghcr", "upstream": "https://ghcr.io", "username": "me", "passwordSecret": "MIRROR_GHCR_TOKEN"}]
// prefix "" mirrors every repository (a dedicated mirror for the docker daemon's `registry-mirrors`).
// Strict: a misspelt field (max_bytes) is an error at startup, not a setting silently ignored.
export const Mirror = z.strictObject({
  prefix: z.union([z.literal(""), z.string().regex(/^[a-z0-9]+(?:[._-][a-z0-9]+)*$/, "a single lowercase name component")]),
  upstream: z.url({ protocol: /^https?$/ }).transform((url) => url.replace(/\/+$/, "")),
  /** Single names map to library/<name>, as on Docker Hub; defaults to true for Docker Hub. */
  library: z.boolean().optional(),
  username: z.string().min(1).optional(),
  /**
   * The name of the secret that holds the upstream password or token. Only MIRROR_… names: whatever it names is sent
   * upstream, and the registry's own secrets (TOKEN_SIGNING_KEY, ADMIN_TOKEN, R2_SECRET_ACCESS_KEY) must never be.
   * That it is set is checked at startup (src/config.ts).
   */
  passwordSecret: z
    .string()
    .regex(/^MIRROR_[A-Z0-9_]+$/, "must name a secret whose name starts with MIRROR_ (e.g. MIRROR_GHCR_TOKEN): only those may be sent upstream")
    .optional(),
  /** How long a mirrored tag is served before it is revalidated upstream with a HEAD. */
  tagTtlSeconds: z.number().int().min(0).max(86_400 * 30).default(300),
  /** How long to wait for the upstream's response headers, and then for each of its body's bytes (an idle timeout). */
  timeoutSeconds: z.number().positive().max(120).default(20),
  /**
   * The most bytes this mirror keeps: past it, the garbage collector evicts the least recently pulled images (their
   * manifests and tags; their blobs go once no other manifest references them). Counted per image, layers shared
   * between images once per image. Unset: nothing is evicted.
   */
  maxBytes: z.number().int().positive().optional(),
  /**
   * Images kept warm: each cron pass refreshes the tags checked longest ago (at most tagsPerRun) and fetches what
   * they need that is not stored yet, so a client's first pull is a hit. Progress: GET /admin/mirrors/prewarm.
   */
  prewarm: Prewarm.optional(),
  /**
   * The registry host names containerd gives in `?ns=` for this upstream (hosts.toml); default: the upstream's host,
   * and docker.io for Docker Hub.
   */
  hosts: z.array(z.string().regex(/^[a-z0-9.-]+(?::\d{1,5})?$/, "a registry host name such as ghcr.io")).optional(),
});
export type Mirror = z.infer<typeof Mirror>;

export const Mirrors = jsonList(Mirror)
  .refine((mirrors) => new Set(mirrors.map((m) => m.prefix)).size === mirrors.length, "two mirrors have the same prefix")
  .superRefine((mirrors, context) => {
    // A "" mirror's prewarm must not name a repository another mirror's prefix serves (it would be stored there).
    for (const [index, mirror] of mirrors.entries()) {
      for (const image of mirror.prewarm?.images ?? []) {
        const servedBy = mirrorFor(mirrors, localName(mirror, image.repository))?.mirror;
        if (servedBy !== mirror) {
          context.addIssue({
            code: "custom",
            path: [index, "prewarm", "images", image.repository],
            message: `${localName(mirror, image.repository)} is served by the mirror "${servedBy?.prefix}", not this one`,
          });
        }
      }
    }
  });

/** A repository's local name under a mirror: as clients name it, after the mirror's prefix. */
export function localName(mirror: Mirror, repository: string): string {
  return mirror.prefix === "" ? repository : `${mirror.prefix}/${repository}`;
}

const DOCKER_HUB = /^https:\/\/(registry-1\.)?docker\.io$/;

/** The host names `?ns=` may give for the mirror. */
export function hostsOf(mirror: Mirror): string[] {
  if (mirror.hosts) return mirror.hosts;
  const host = new URL(mirror.upstream).host;
  return DOCKER_HUB.test(mirror.upstream) ? [host, "docker.io", "registry-1.docker.io"] : [host];
}

/**
 * The local name of a repository requested with containerd's `?ns=<registry host>`: under the prefix of the mirror
 * of that host; the name as it is when `ns` is this registry's own host; null when no mirror serves that host (the
 * request is not for anything here, and containerd goes on to the next host).
 */
export function nameForNamespace(mirrors: Mirror[], ns: string, ownHost: string, name: string): string | null {
  const host = ns.toLowerCase();
  const mirror = mirrors.find((candidate) => hostsOf(candidate).includes(host));
  if (mirror) return mirror.prefix === "" ? name : `${mirror.prefix}/${name}`;
  return host === ownHost.toLowerCase() ? name : null;
}

export interface MirrorTarget {
  mirror: Mirror;
  /** The repository's name at the upstream. */
  upstreamName: string;
}

/** The mirror a local repository name belongs to, if any, and its name upstream. */
export function mirrorFor(mirrors: Mirror[], repository: string): MirrorTarget | null {
  const prefixed = mirrors.find((m) => m.prefix !== "" && repository.startsWith(`${m.prefix}/`));
  const mirror = prefixed ?? mirrors.find((m) => m.prefix === "");
  if (!mirror) return null;
  let upstreamName = prefixed ? repository.slice(mirror.prefix.length + 1) : repository;
  if ((mirror.library ?? DOCKER_HUB.test(mirror.upstream)) && !upstreamName.includes("/")) upstreamName = `library/${upstreamName}`;
  return { mirror, upstreamName };
}
