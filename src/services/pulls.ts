import type { MiddlewareHandler } from "hono";
import type { Waiter } from "../cache/edge";
import type { AppEnv } from "../context";
import { pathOf } from "../routes/path";
import { PullRecords, type PullCount } from "../storage/pull-records";

// Pulls (GETs of a manifest, by tag or digest) are counted in each isolate's memory and added to D1 in one batch,
// after a response, once FLUSH_EVERY_MS have passed since the first unwritten pull, FLUSH_EVERY_PULLS pulls are
// unwritten or MAX_PENDING manifests and tags have some: a statement per manifest and tag pulled per flush, never a
// write per pull. A million pulls of one image by tag cost about 1,000 flushes of 3 row writes (about $0.003 at D1's
// $1 per million rows written, where a write per pull would cost $2 or more). An isolate that goes away loses its
// unwritten counts (at most 30 s of them); the readers (tag API, eviction, pre-warming) write their own isolate's
// counts first.
const FLUSH_EVERY_MS = 30_000;
const FLUSH_EVERY_PULLS = 1000;
const MAX_PENDING = 500;

const manifests = new Map<string, PullCount>();
const tags = new Map<string, PullCount>();
let pendingPulls = 0;
let pendingSince: number | null = null;

function add(into: Map<string, PullCount>, repository: string, name: string, pulls: number, at: number): void {
  const key = `${repository}\n${name}`;
  const counted = into.get(key);
  if (counted) {
    counted.pulls += pulls;
    counted.lastPulledAt = Math.max(counted.lastPulledAt, at);
  } else {
    into.set(key, { repository, name, pulls, lastPulledAt: at });
  }
}

/**
 * One pull: of a manifest (a GET, by digest or tag) and of a tag (a GET or HEAD by tag: docker and containerd resolve
 * a tag with a HEAD, then GET the manifest by digest).
 */
export function countPull(repository: string, pulled: { digest?: string; tag?: string }, at = Date.now()): void {
  pendingSince ??= at;
  pendingPulls += 1;
  if (pulled.digest !== undefined) add(manifests, repository, pulled.digest, 1, at);
  if (pulled.tag !== undefined) add(tags, repository, pulled.tag, 1, at);
}

/** Counts a successful manifest GET or tag resolution, whoever answered it (the handler, or the edge cache before it). */
export const countsPulls: MiddlewareHandler<AppEnv> = async (c, next) => {
  await next();
  if (c.res.status !== 200) return;
  const digest = c.res.headers.get("Docker-Content-Digest");
  if (!digest) return;
  const { repository, reference } = pathOf(c);
  const tag = reference && "tag" in reference ? reference.tag : undefined;
  countPull(repository, { ...(c.req.method === "GET" && { digest }), ...(tag !== undefined && { tag }) });
  flushPullsWhenDue(c.env.DB, c.executionCtx);
};

export function flushPullsWhenDue(db: D1Database, waiter: Waiter): void {
  if (pendingSince === null) return;
  const due = pendingPulls >= FLUSH_EVERY_PULLS || manifests.size + tags.size >= MAX_PENDING || Date.now() - pendingSince >= FLUSH_EVERY_MS;
  if (due) waiter.waitUntil(flushPulls(db));
}

/** Adds this isolate's counts to D1 now; a failed write keeps them for the next flush. */
export async function flushPulls(db: D1Database): Promise<void> {
  if (pendingSince === null) return;
  const written = { manifests: [...manifests.values()], tags: [...tags.values()] };
  manifests.clear();
  tags.clear();
  pendingPulls = 0;
  pendingSince = null;
  try {
    await new PullRecords(db).add(written.manifests, written.tags);
  } catch (error) {
    console.error(JSON.stringify({ event: "pulls-not-written", error: String(error) }));
    pendingSince = Date.now();
    for (const count of written.manifests) add(manifests, count.repository, count.name, count.pulls, count.lastPulledAt);
    for (const count of written.tags) add(tags, count.repository, count.name, count.pulls, count.lastPulledAt);
  }
}

/** The pull statistics of a page of tags (and of the manifests they point at), this isolate's unwritten counts included. */
export async function pullStats(db: D1Database, repository: string, page: { name: string; digest: string }[]) {
  // Read where the flush wrote: the primary.
  await flushPulls(db);
  return new PullRecords(db).of(repository, page.map((tag) => tag.name), page.map((tag) => tag.digest));
}
