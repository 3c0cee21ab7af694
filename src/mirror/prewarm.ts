import type { Waiter } from "../cache/edge";
import { configOf, type Env } from "../config";
import { RegistryError } from "../errors";
import { isNonDistributable, type Descriptor } from "../manifests/schema";
import { parseDigest, type ParsedDigest } from "../references";
import { MirrorContentRecords, PrewarmRecords, type PrewarmState } from "../storage/mirror-records";
import { localName, mirrorFor, type Mirror } from "./config";
import { mirrorServices } from "./middleware";
import { UpstreamError } from "./upstream";

// The upstream's tag list is read at most this many pages of 1,000 per pattern and pass.
const TAG_PAGES = 10;
const TAG_PAGE = 1000;
// No tag is started this long after a pass began (a cron invocation may run 15 minutes).
const PASS_MS = 10 * 60_000;

export interface PrewarmReport {
  prefix: string;
  /** The tags the configuration names now (patterns expanded). */
  targets: number;
  refreshed: Omit<PrewarmState, "warmedAt">[];
  /** Patterns whose tag list could not be read, and why. */
  failedPatterns: { repository: string; tagPattern: string; detail: string }[];
}

/**
 * One pre-warming pass over every mirror that has a prewarm setting: for each, the tagsPerRun tags attempted longest
 * ago (never attempted first) are resolved through the mirror as a client's pull would be (revalidated once their TTL
 * has passed), and every manifest and blob of the configured platforms not stored yet is fetched and stored. Work per
 * pass is bounded by the configuration; what does not fit goes in the next pass. Logs one JSON line per mirror.
 */
export async function prewarmMirrors(env: Env, waiter: Waiter): Promise<PrewarmReport[]> {
  const config = configOf(env);
  const reports: PrewarmReport[] = [];
  // A cron invocation has 15 minutes of wall time: no tag is started past this, whatever is left.
  const deadline = Date.now() + PASS_MS;
  for (const mirror of config.MIRRORS) {
    if (!mirror.prewarm) continue;
    const started = Date.now();
    let report: PrewarmReport;
    try {
      report = await prewarmMirror(env, mirror, waiter, config.LOG_REQUESTS, deadline);
    } catch (error) {
      // One mirror's failure (D1 unavailable) does not stop the others.
      console.error(JSON.stringify({ event: "mirror-prewarm-failed", prefix: mirror.prefix, error: reasonOf(error) }));
      continue;
    }
    const usage = mirror.maxBytes === undefined ? null : await new MirrorContentRecords(env.DB).usage(mirror.prefix);
    console.log(
      JSON.stringify({
        event: "mirror-prewarm",
        prefix: mirror.prefix,
        targets: report.targets,
        refreshed: report.refreshed.length,
        failed: report.refreshed.filter((state) => state.status === "failed").length + report.failedPatterns.length,
        fetchedBytes: report.refreshed.reduce((sum, state) => sum + state.fetchedBytes, 0),
        durationMs: Date.now() - started,
        // Eviction and pre-warming would undo each other every pass: the prewarm set is larger than maxBytes.
        ...(usage && usage.bytes > mirror.maxBytes! && { warning: `holds ${usage.bytes} bytes, over maxBytes ${mirror.maxBytes}: raise maxBytes or warm fewer tags` }),
      }),
    );
    reports.push(report);
  }
  return reports;
}

/** Every mirror with a prewarm setting, with the state of each tag it keeps warm. */
export async function prewarmStatus(db: D1Database, mirrors: Mirror[]): Promise<{ prefix: string; tags: PrewarmState[] }[]> {
  const records = new PrewarmRecords(db);
  return Promise.all(mirrors.filter((mirror) => mirror.prewarm).map(async (mirror) => ({ prefix: mirror.prefix, tags: await records.list(mirror.prefix) })));
}

async function prewarmMirror(env: Env, mirror: Mirror, waiter: Waiter, log: boolean, deadline: number): Promise<PrewarmReport> {
  const settings = mirror.prewarm!;
  const records = new PrewarmRecords(env.DB);
  const report: PrewarmReport = { prefix: mirror.prefix, targets: 0, refreshed: [], failedPatterns: [] };
  const targets: { repository: string; tag: string }[] = [];
  for (const image of settings.images) {
    const repository = localName(mirror, image.repository);
    const tags = new Set(image.tags);
    if (image.tagPattern !== undefined) {
      try {
        for (const tag of await matchingTags(env, mirror, repository, new RegExp(image.tagPattern), image.maxTags, waiter, log)) tags.add(tag);
      } catch (error) {
        report.failedPatterns.push({ repository, tagPattern: image.tagPattern, detail: reasonOf(error) });
      }
    }
    for (const tag of tags) targets.push({ repository, tag });
  }
  report.targets = targets.length;
  // Tags no longer configured (or no longer the newest of their pattern) are forgotten, unless a pattern could not be read.
  if (report.failedPatterns.length === 0) await records.keepOnly(mirror.prefix, targets);

  const attempted = new Map((await records.list(mirror.prefix)).map((state) => [`${state.repository}:${state.tag}`, state.attemptedAt]));
  const due = targets
    .map((target) => ({ ...target, attemptedAt: attempted.get(`${target.repository}:${target.tag}`) ?? 0 }))
    .sort((a, b) => a.attemptedAt - b.attemptedAt)
    .slice(0, settings.tagsPerRun);
  for (const { repository, tag } of due) {
    if (Date.now() > deadline) break;
    // Recorded first: a tag whose refresh the platform cuts off goes to the back of the queue, not the front.
    await records.save(mirror.prefix, { repository, tag, attemptedAt: Date.now(), status: "failed", digest: null, fetchedBytes: 0, detail: "interrupted: the pass ended before this tag was refreshed" });
    const state = await warm(env, mirror, repository, tag, settings.platforms, log);
    await records.save(mirror.prefix, state);
    report.refreshed.push(state);
  }
  return report;
}

/** The newest `max` of the upstream's tags that match, highest version first (numbers compared as numbers). */
async function matchingTags(env: Env, mirror: Mirror, repository: string, pattern: RegExp, max: number, waiter: Waiter, log: boolean): Promise<string[]> {
  const { manifests, report } = mirrorServices(env, mirrorFor([mirror], repository)!, waiter, log);
  const matches: string[] = [];
  let last: string | null = null;
  for (let page = 0; page < TAG_PAGES; page++) {
    const tags = await manifests.tags(repository, TAG_PAGE, last);
    // The mirror answers with the local list when the upstream fails; a pattern needs the upstream's.
    if (report.status === "stale") throw new UpstreamError(502, "the upstream's tag list could not be read");
    matches.push(...tags.filter((tag) => pattern.test(tag)));
    if (tags.length < TAG_PAGE) break;
    last = tags.at(-1)!;
  }
  return matches.sort((a, b) => b.localeCompare(a, "en", { numeric: true })).slice(0, max);
}

/**
 * Pulls one tag through the mirror as a client would, without a client: the manifest (and, for an index, the children
 * of the configured platforms) and every blob they reference, fetched and stored when missing. Waits for the stores.
 */
async function warm(env: Env, mirror: Mirror, repository: string, tag: string, platforms: string[], log: boolean): Promise<Omit<PrewarmState, "warmedAt">> {
  const attemptedAt = Date.now();
  const pending: Promise<unknown>[] = [];
  const waiter: Waiter = { waitUntil: (promise) => void pending.push(promise) };
  const { manifests, blobs, report } = mirrorServices(env, mirrorFor([mirror], repository)!, waiter, log);
  let digest: string | null = null;
  let fetchedBytes = 0;
  try {
    const top = await manifests.resolve(repository, { tag });
    // Served from the local copy because the upstream failed: not refreshed.
    if (report.status === "stale") throw new UpstreamError(502, "the upstream could not be asked; the stored copy is unchanged");
    digest = top.record.digest;
    const warmed = [{ repository, digest }];
    const images: Descriptor[][] = [];
    const parsed = JSON.parse(await new Response(await top.body()).text()) as { manifests?: Descriptor[]; config?: Descriptor; layers?: Descriptor[] };
    if (parsed.manifests) {
      const children = parsed.manifests.filter((entry) => platforms.some((platform) => isPlatform(entry, platform)));
      if (children.length === 0) throw new RegistryError("MANIFEST_UNKNOWN", { upstream: `no image in the index for ${platforms.join(", ")} (prewarm.platforms)` });
      for (const child of children) {
        const image = await manifests.resolve(repository, { digest: parseDigest(child.digest) });
        warmed.push({ repository, digest: child.digest });
        const body = JSON.parse(await new Response(await image.body()).text()) as { manifests?: unknown; config?: Descriptor; layers?: Descriptor[] };
        if (body.manifests) throw new RegistryError("MANIFEST_UNKNOWN", { upstream: "an index inside an index: not pre-warmed" });
        images.push(blobsOf(body));
      }
    } else {
      images.push(blobsOf(parsed));
    }
    for (const descriptor of images.flat()) fetchedBytes += await fetchBlob(blobs, repository, parseDigest(descriptor.digest));
    // The blob stores end in waitUntil work; the tag is warm once they are recorded.
    const settled = await Promise.allSettled(pending);
    const failed = settled.find((result) => result.status === "rejected");
    if (failed) throw failed.reason;
    // Not a pull (the statistics count clients), but eviction keeps what is kept warm.
    await new MirrorContentRecords(env.DB).touch(warmed);
    return { repository, tag, attemptedAt, status: "warm", digest, fetchedBytes, detail: null };
  } catch (error) {
    await Promise.allSettled(pending);
    return { repository, tag, attemptedAt, status: "failed", digest, fetchedBytes, detail: reasonOf(error) };
  }
}

/** Fetches a blob through the mirror unless it is stored already; the bytes fetched. */
async function fetchBlob(blobs: ReturnType<typeof mirrorServices>["blobs"], repository: string, digest: ParsedDigest): Promise<number> {
  const record = await blobs.stat(repository, digest);
  if (blobs.servesStoredCopy(record)) return 0;
  const { body } = await blobs.open(repository, record, null);
  const reader = body.getReader();
  let bytes = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return bytes;
    bytes += value.byteLength;
  }
}

function blobsOf(manifest: { config?: Descriptor; layers?: Descriptor[] }): Descriptor[] {
  return [...(manifest.config ? [manifest.config] : []), ...(manifest.layers ?? []).filter((layer) => !isNonDistributable(layer))];
}

/** Whether an index entry is for the platform: "os/architecture" matches every variant, "os/architecture/variant" one. */
function isPlatform(descriptor: Descriptor, wanted: string): boolean {
  const platform = descriptor.platform;
  if (!platform) return false;
  const [os, architecture, variant] = wanted.split("/");
  return platform.os === os && platform.architecture === architecture && (variant === undefined || platform.variant === variant);
}

function reasonOf(error: unknown): string {
  if (error instanceof RegistryError) {
    const detail = error.detail as { upstream?: string } | null;
    return detail?.upstream ? `${error.code}: ${detail.upstream}` : `${error.code}: ${error.message}`;
  }
  return String(error instanceof Error ? error.message : error).slice(0, 500);
}
