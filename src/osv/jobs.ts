// The OSV work of a cron run, each part bounded: (1) refresh OSV_FEEDS, importing at most OSV_FEED_RECORDS_PER_RUN
// records (a feed's export is swept in order across runs: a cursor says which entry the next run starts at, a pass
// that reaches the end records the export's ETag, and a finished feed is asked again with If-None-Match, starting a
// new pass only when the export changed); (2) one step of the walk that finds SBOMs pushed before scanning existed;
// (3) at most OSV_RESCANS_PER_RUN rescans of manifests whose scan is older than the database (lowest generation
// first). Scans after a push run in that request's waitUntil (scanAfterPush).
import type { Waiter } from "../cache/edge";
import type { Config, Env } from "../config";
import type { Database } from "../storage/database";
import { readAtMost } from "../streams";
import { OsvRecords, type FeedState } from "../storage/osv-records";
import type { OsvFeed } from "./config";
import { importJson, importZip, ZipInvalid, type ImportReport } from "./import";
import { SBOM_ARTIFACT_TYPES, scanManifest, scanTarget } from "./scan";

/** Manifests the discovery walk reads per run. */
const DISCOVERY_PER_RUN = 500;
/** Wall-clock time a run spends importing feeds. */
const FEED_SECONDS_PER_RUN = 20;
/** A feed that is a JSON document (not an export zip) is read whole, at most this. */
export const MAX_JSON_IMPORT_BYTES = 8 * 1024 * 1024;

export interface FeedRun {
  url: string;
  status: "unchanged" | "imported" | "failed" | "skipped";
  report?: ImportReport;
  error?: string;
}

export interface OsvRun {
  feeds: FeedRun[];
  discovered: number;
  rescanned: { repository: string; digest: string; findings: number }[];
}

export async function runOsvJobs(env: Env, config: Config, now = Date.now()): Promise<OsvRun> {
  const db = env.DB;
  const feeds: FeedRun[] = [];
  let budget = config.OSV_FEED_RECORDS_PER_RUN;
  const deadline = now + FEED_SECONDS_PER_RUN * 1000;
  for (const feed of config.OSV_FEEDS) {
    if (budget <= 0 || Date.now() >= deadline) {
      feeds.push({ url: feed.url, status: "skipped" });
      continue;
    }
    const run = await refreshFeed(db, feed, budget, deadline);
    budget -= run.report?.received ?? 0;
    feeds.push(run);
  }
  const records = new OsvRecords(db);
  const discovery = await records.discover(SBOM_ARTIFACT_TYPES, DISCOVERY_PER_RUN, now);
  const rescanned = await rescan(env, db, config.OSV_RESCANS_PER_RUN, now);
  return { feeds, discovered: discovery.enqueued, rescanned };
}

async function refreshFeed(db: Database, feed: OsvFeed, budget: number, deadline: number): Promise<FeedRun> {
  const records = new OsvRecords(db);
  const now = Date.now();
  const state: FeedState = (await records.feed(feed.url)) ?? {
    url: feed.url,
    etag: null,
    pendingEtag: null,
    cursor: 0,
    imported: 0,
    lastError: null,
    checkedAt: 0,
    completedAt: null,
  };
  // A pass in progress goes on; a finished one starts again only when the export changed.
  const headers: Record<string, string> = state.cursor === 0 && state.etag ? { "If-None-Match": state.etag } : {};
  try {
    // Longer than the import's own clock, which stops it between entries (and saves where) before this cuts it off.
    const response = await fetch(feed.url, { headers, signal: AbortSignal.timeout(3 * FEED_SECONDS_PER_RUN * 1000) });
    if (response.status === 304) {
      await response.body?.cancel();
      await records.saveFeed(feed.ecosystem, { ...state, lastError: null, checkedAt: now });
      return { url: feed.url, status: "unchanged" };
    }
    if (!response.ok || !response.body) {
      await response.body?.cancel();
      throw new Error(`the export answered ${response.status}`);
    }
    const etag = response.headers.get("ETag");
    const json = /json/i.test(response.headers.get("Content-Type") ?? "") || feed.url.endsWith(".json");
    const report = json
      ? await importJson(db, await jsonOf(response), feed.ecosystem)
      : await importZip(db, response.body, feed.ecosystem, state.cursor, { maxRecords: budget, deadline });
    const next = report.next ?? null;
    await records.saveFeed(feed.ecosystem, {
      ...state,
      // At the end of a pass: the export it read, asked with If-None-Match next time.
      etag: next === null ? etag : state.etag,
      pendingEtag: next === null ? null : etag,
      cursor: next ?? 0,
      imported: state.imported + report.imported,
      lastError: null,
      checkedAt: now,
      completedAt: next === null ? now : state.completedAt,
    });
    return { url: feed.url, status: "imported", report };
  } catch (error) {
    const message = error instanceof ZipInvalid || error instanceof Error ? error.message : String(error);
    await records.saveFeed(feed.ecosystem, { ...state, lastError: message.slice(0, 500), checkedAt: now });
    console.error(JSON.stringify({ event: "osv-feed-failed", url: feed.url, error: message }));
    return { url: feed.url, status: "failed", error: message };
  }
}

async function jsonOf(response: Response): Promise<unknown> {
  const bytes = await readAtMost(response.body!, MAX_JSON_IMPORT_BYTES);
  if (!bytes) throw new Error(`the JSON feed is larger than ${MAX_JSON_IMPORT_BYTES} bytes`);
  return JSON.parse(new TextDecoder().decode(bytes));
}

/** Rescans of manifests whose scan is older than the database, at most `limit`, lowest generation first. */
export async function rescan(env: Env, db: Database, limit: number, now = Date.now()): Promise<OsvRun["rescanned"]> {
  const records = new OsvRecords(db);
  const generation = await records.generation();
  const done: OsvRun["rescanned"] = [];
  for (const row of await records.stale(generation, limit)) {
    try {
      const result = await scanManifest(env, db, row.repository, row.digest, now);
      done.push({ repository: row.repository, digest: row.digest, findings: result.findings });
    } catch (error) {
      // Not taken again before the database changes: one manifest that fails cannot hold up the others.
      await records.saveScan(row.repository, row.digest, generation, [], 0, 0, now);
      console.error(JSON.stringify({ event: "osv-scan-failed", repository: row.repository, digest: row.digest, error: String(error) }));
    }
  }
  return done;
}

/**
 * After a manifest's push: a referrer's subject (the referrer may be an SBOM), or an index (it may list buildx's SBOM
 * attestations), scanned in the background; nothing for other manifests.
 */
export function scanAfterPush(env: Env, ctx: Waiter, repository: string, pushed: { digest: string; mediaType: string }, subject: string | null): void {
  const target = scanTarget(pushed, subject);
  if (!target) return;
  ctx.waitUntil(
    scanManifest(env, env.DB, repository, target).catch(async (error) => {
      await new OsvRecords(env.DB).enqueue(repository, target, Date.now()).catch(() => undefined);
      console.error(JSON.stringify({ event: "osv-scan-failed", repository, digest: target, error: String(error) }));
    }),
  );
}
