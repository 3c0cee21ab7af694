import type { Waiter } from "../cache/edge";
import { MirrorContentRecords } from "../storage/mirror-records";
import { MirrorStatsRecords, type MirrorCounts, type MirrorCountsRow } from "../storage/mirror-stats";
import type { Mirror } from "./config";
import type { MirrorStatus } from "./status";

// Counting writes nothing per request: each isolate keeps its counts in memory and adds them to D1 (one UPSERT per
// mirror, in one batch) after a mirrored request, once FLUSH_EVERY_MS have passed since the first unwritten count or
// FLUSH_EVERY_REQUESTS requests are unwritten. A busy isolate writes a row per mirror per 1,000 requests (a million
// hits: ~1,000 rows written, $0.001), a quiet one at most a row per mirror per 30 s. An isolate that goes away loses
// at most that much; GET /admin/mirrors writes its own isolate's counts before it reads.
const FLUSH_EVERY_MS = 30_000;
const FLUSH_EVERY_REQUESTS = 1000;

const pending = new Map<string, MirrorCounts>();
let pendingRequests = 0;
let pendingSince: number | null = null;

const zero = (): MirrorCounts => ({ hits: 0, misses: 0, revalidations: 0, staleServes: 0, upstreamErrors: 0, bytesFromUpstream: 0, bytesSaved: 0 });

const FIELD: Record<MirrorStatus, "hits" | "misses" | "revalidations" | "staleServes"> = {
  hit: "hits",
  miss: "misses",
  revalidated: "revalidations",
  stale: "staleServes",
};

function countsOf(prefix: string): MirrorCounts {
  pendingSince ??= Date.now();
  let counts = pending.get(prefix);
  if (!counts) pending.set(prefix, (counts = zero()));
  return counts;
}

/** One mirrored response, by how it was served. */
export function countServed(prefix: string, status: MirrorStatus, bytesSaved: number): void {
  const counts = countsOf(prefix);
  counts[FIELD[status]] += 1;
  counts.bytesSaved += bytesSaved;
  pendingRequests += 1;
}

/** One exchange with the upstream, when it ended: whether it failed, and the body bytes it brought. */
export function countUpstream(prefix: string, exchange: { failed: boolean; bytes: number }): void {
  const counts = countsOf(prefix);
  if (exchange.failed) counts.upstreamErrors += 1;
  counts.bytesFromUpstream += exchange.bytes;
}

/** After a mirrored request: writes this isolate's counts, after the response, when they are due. */
export function flushWhenDue(db: D1Database, waiter: Waiter): void {
  if (pendingSince === null) return;
  if (pendingRequests < FLUSH_EVERY_REQUESTS && Date.now() - pendingSince < FLUSH_EVERY_MS) return;
  waiter.waitUntil(flush(db));
}

/** Writes this isolate's counts now; a failed write keeps them for the next flush. */
export async function flush(db: D1Database): Promise<void> {
  if (pendingSince === null) return;
  const deltas = [...pending];
  pending.clear();
  pendingRequests = 0;
  pendingSince = null;
  try {
    await new MirrorStatsRecords(db).add(deltas);
  } catch (error) {
    console.error(JSON.stringify({ event: "mirror-stats-not-written", error: String(error) }));
    for (const [prefix, counts] of deltas) {
      const kept = countsOf(prefix);
      for (const field of Object.keys(counts) as (keyof MirrorCounts)[]) kept[field] += counts[field];
    }
  }
}

export interface MirrorStatsEntry extends MirrorCounts {
  prefix: string;
  upstream: string | null;
  updatedAt: number | null;
  /** What the mirror holds, as its maxBytes counts it, and that limit (null: none). */
  storedBytes?: number;
  storedManifests?: number;
  maxBytes?: number | null;
}

/** Every configured mirror's counts (zero until it served something), then those of mirrors no longer configured. */
export async function mirrorStats(db: D1Database, mirrors: Mirror[]): Promise<MirrorStatsEntry[]> {
  await flush(db);
  const rows = new Map<string, MirrorCountsRow>((await new MirrorStatsRecords(db).list()).map((row) => [row.prefix, row]));
  const contents = new MirrorContentRecords(db);
  const configured = await Promise.all(
    mirrors.map(async (mirror) => {
      const usage = await contents.usage(mirror.prefix);
      return {
        ...zero(),
        updatedAt: null,
        ...rows.get(mirror.prefix),
        prefix: mirror.prefix,
        upstream: mirror.upstream,
        storedBytes: usage.bytes,
        storedManifests: usage.manifests,
        maxBytes: mirror.maxBytes ?? null,
      };
    }),
  );
  const others = [...rows.values()].filter((row) => !mirrors.some((mirror) => mirror.prefix === row.prefix)).map((row) => ({ ...row, upstream: null }));
  return [...configured, ...others];
}
