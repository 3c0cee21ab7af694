import type { MiddlewareHandler } from "hono";
import type { Waiter } from "../cache/edge";
import type { AppEnv } from "../context";
import { pathOf } from "../routes/path";
import { mirrorFor } from "../mirror/config";
import { MirrorContentRecords } from "../storage/mirror-records";
import { PullRecords, type PullCount } from "../storage/pull-records";

// Pulls (GETs of a manifest, by tag or digest) are counted in each isolate's memory and added to D1 in one batch,
// after a response, once FLUSH_EVERY_MS have passed since the first unwritten pull, FLUSH_EVERY_PULLS pulls are
// unwritten or MAX_PENDING manifests and tags have some: a statement per manifest and tag pulled per flush, never a
// write per pull. A million pulls of one image by tag cost about 1,000 flushes of 3 row writes (about $0.003 at D1's
// $1 per million rows written, where a write per pull would cost $2 or more). An isolate that goes away loses the
// counts it had not written (those since its last flush); the tag API and the collector write their own isolate's
// counts before they read. Eviction does not depend on these: mirrored manifests' last pulls are written at once
// (touchMirrored). After a failed flush, the next waits FLUSH_EVERY_MS.
const FLUSH_EVERY_MS = 30_000;
const FLUSH_EVERY_PULLS = 1000;
const MAX_PENDING = 500;
const MAX_KEPT = 10_000;
const COUNTS_PER_BATCH = 100;

const manifests = new Map<string, PullCount>();
const tags = new Map<string, PullCount>();
let pendingPulls = 0;
let pendingSince: number | null = null;
let retryAt = 0;

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
  // While D1 cannot be written, at most this much waits in memory; what does not fit is not counted.
  if (manifests.size + tags.size >= MAX_KEPT) return;
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
  if (mirrorFor(c.var.registry.config.MIRRORS, repository)) touchMirrored(c.env.DB, c.executionCtx, repository, digest);
  flushPullsWhenDue(c.env.DB, c.executionCtx);
};

/**
 * How often an isolate writes the last pull of one mirrored manifest. Eviction needs it in minutes, not milliseconds,
 * and never lost with the isolate, so it is written at once (after the response), at most this often: a statement
 * per mirrored manifest per isolate per minute, however many pulls. Tests set it lower.
 */
export const mirrorTouches = { everyMs: 60_000 };
const MAX_TOUCHED = 10_000;
const touched = new Map<string, number>();

function touchMirrored(db: D1Database, waiter: Waiter, repository: string, digest: string): void {
  const key = `${repository}@${digest}`;
  const now = Date.now();
  if ((touched.get(key) ?? -Infinity) > now - mirrorTouches.everyMs) return;
  if (touched.size >= MAX_TOUCHED) touched.clear();
  touched.set(key, now);
  waiter.waitUntil(
    new MirrorContentRecords(db).touch([{ repository, digest }], now).catch((error) => {
      touched.delete(key);
      console.error(JSON.stringify({ event: "mirror-pull-not-written", error: String(error) }));
    }),
  );
}

export function flushPullsWhenDue(db: D1Database, waiter: Waiter): void {
  if (pendingSince === null || Date.now() < retryAt) return;
  const due = pendingPulls >= FLUSH_EVERY_PULLS || manifests.size + tags.size >= MAX_PENDING || Date.now() - pendingSince >= FLUSH_EVERY_MS;
  if (due) waiter.waitUntil(flushPulls(db));
}

/**
 * Adds this isolate's counts to D1 now, COUNTS_PER_BATCH to a batch; a batch that fails keeps its counts and those
 * after it for the next flush (those written before it stay written: nothing is counted twice).
 */
export async function flushPulls(db: D1Database): Promise<void> {
  if (pendingSince === null) return;
  const written = [...[...manifests.values()].map((count) => ({ count, tag: false })), ...[...tags.values()].map((count) => ({ count, tag: true }))];
  manifests.clear();
  tags.clear();
  pendingPulls = 0;
  pendingSince = null;
  for (let at = 0; at < written.length; at += COUNTS_PER_BATCH) {
    const chunk = written.slice(at, at + COUNTS_PER_BATCH);
    try {
      await new PullRecords(db).add(
        chunk.filter((entry) => !entry.tag).map((entry) => entry.count),
        chunk.filter((entry) => entry.tag).map((entry) => entry.count),
      );
    } catch (error) {
      console.error(JSON.stringify({ event: "pulls-not-written", error: String(error) }));
      retryAt = Date.now() + FLUSH_EVERY_MS;
      pendingSince ??= Date.now();
      for (const { count, tag } of written.slice(at)) add(tag ? tags : manifests, count.repository, count.name, count.pulls, count.lastPulledAt);
      return;
    }
  }
}

/** The pull statistics of a page of tags (and of the manifests they point at), this isolate's unwritten counts included. */
export async function pullStats(db: D1Database, repository: string, page: { name: string; digest: string }[]) {
  // Read where the flush wrote: the primary.
  await flushPulls(db);
  return new PullRecords(db).of(repository, page.map((tag) => tag.name), page.map((tag) => tag.digest));
}
