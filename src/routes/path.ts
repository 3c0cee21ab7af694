import type { Context, MiddlewareHandler } from "hono";
import type { AppEnv } from "../context";
import { RegistryError } from "../errors";
import { nameForNamespace } from "../mirror/config";
import { parseDigest, parseReference, parseRepositoryName, parseUploadId, type ParsedDigest, type Reference } from "../references";

// Every path parameter is parsed into a typed value here, as the first middleware of its route, before anything
// looks anything up with it (authorization, the mirror, a cache, D1, R2, a Durable Object). Nothing else in the
// API reads c.req.param(): a test keeps it so.

/** What a route's path names, validated. */
export interface RequestPath {
  repository: string;
  digest?: ParsedDigest;
  reference?: Reference;
  uploadId?: string;
}

type Part = "digest" | "reference" | "uploadId";
const PARAMETER: Record<Part, string> = { digest: "digest", reference: "reference", uploadId: "id" };

/** Parses `:name` and the given parts of the route's path into c.var.path. */
export function parsePath(...parts: Part[]): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const path: RequestPath = { repository: repositoryOf(c, parseRepositoryName(c.req.param("name") ?? "")) };
    const value = (part: Part) => c.req.param(PARAMETER[part]) ?? "";
    for (const part of parts) {
      if (part === "digest") path.digest = parseDigest(value(part));
      if (part === "reference") path.reference = parseManifestReference(value(part), c.req.method);
      if (part === "uploadId") path.uploadId = parseUploadId(value(part));
    }
    c.set("path", path);
    await next();
  };
}

/**
 * The repository a request is for. containerd names the registry it means in `?ns=` (hosts.toml mirrors): a mirrored
 * registry's repositories live under that mirror's prefix, so `library/alpine?ns=docker.io` is `hub/library/alpine`
 * when the "hub" mirror serves docker.io. Mapped here, before authorization looks at the name.
 */
function repositoryOf(c: Context<AppEnv>, name: string): string {
  const ns = c.req.query("ns");
  if (ns === undefined) return name;
  const mapped = nameForNamespace(c.var.registry.config.MIRRORS, ns, new URL(c.req.url).host, name);
  if (mapped === null) throw new RegistryError("NAME_UNKNOWN", { ns: ns.slice(0, 255) }, { message: `this registry mirrors no registry named ${ns.slice(0, 255)}` });
  return parseRepositoryName(mapped);
}

/**
 * OCI dist-spec "Pulling manifests": a manifest that is not there MUST be 404, and a text that is no valid tag names
 * no manifest anywhere, so a read answers 404 (saying nothing of the repository); a push with one stays 400.
 */
function parseManifestReference(text: string, method: string): Reference {
  try {
    return parseReference(text);
  } catch (error) {
    const read = method === "GET" || method === "HEAD";
    if (read && error instanceof RegistryError && error.code === "TAG_INVALID") {
      throw new RegistryError("MANIFEST_UNKNOWN", { reference: text.slice(0, 256) }, { message: "no manifest has that name: it is not a valid tag" });
    }
    throw error;
  }
}

/** The validated path of a route that has parsePath in front of it. */
export function pathOf(c: Context<AppEnv>): RequestPath {
  const path = c.var.path as RequestPath | undefined;
  if (!path) throw new Error(`route ${c.req.routePath} reads its path without parsePath`);
  return path;
}

export function digestOf(c: Context<AppEnv>): ParsedDigest {
  const { digest } = pathOf(c);
  if (!digest) throw new Error(`route ${c.req.routePath} has no digest`);
  return digest;
}

export function referenceOf(c: Context<AppEnv>): Reference {
  const { reference } = pathOf(c);
  if (!reference) throw new Error(`route ${c.req.routePath} has no reference`);
  return reference;
}

export function uploadIdOf(c: Context<AppEnv>): string {
  const { uploadId } = pathOf(c);
  if (!uploadId) throw new Error(`route ${c.req.routePath} has no upload id`);
  return uploadId;
}
