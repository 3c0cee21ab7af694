// Cloudflare's published prices for what bench/cost counts: Workers Paid, usage past the monthly allowances (which
// are per account, not per operation, so they are left out of a cost per operation). Read on 2026-12-01 from the
// pages below (their text as stored by the search tool, and the cloudflare/cloudflare-docs sources they are built
// from). Workers Logs changed price model that day; both are listed, the per-GB one is used.
import type { Tally } from "./tally";

export const PRICES_READ_ON = "2026-12-01";

const WORKERS = "https://developers.cloudflare.com/workers/platform/pricing/";
const DURABLE_OBJECTS = "https://developers.cloudflare.com/durable-objects/platform/pricing/";
const D1 = "https://developers.cloudflare.com/d1/platform/pricing/";
const R2 = "https://developers.cloudflare.com/r2/pricing/";
const OBSERVABILITY = "https://developers.cloudflare.com/observability/pricing/";
const WORKERS_LOGS = "https://developers.cloudflare.com/workers/observability/logs/workers-logs/#pricing";

export interface Price {
  item: string;
  /** US dollars per `unit`. */
  usd: number;
  unit: string;
  source: string;
  note?: string;
}

export const PRICES = {
  workerRequest: { item: "Worker requests", usd: 0.3, unit: "million requests", source: WORKERS, note: "subrequests (Cache API, D1, R2, fetch) are not billed as requests" },
  cpu: { item: "Worker CPU time", usd: 0.02, unit: "million CPU ms", source: WORKERS },
  doRequest: { item: "Durable Object requests", usd: 0.15, unit: "million requests", source: DURABLE_OBJECTS, note: "each RPC method call on a stub is one" },
  doDuration: { item: "Durable Object duration", usd: 12.5, unit: "million GB-s", source: DURABLE_OBJECTS, note: "wall-clock while active, at 128 MB" },
  doRowRead: { item: "Durable Object SQLite rows read", usd: 0.001, unit: "million rows", source: DURABLE_OBJECTS, note: "KV API calls are billed as rows" },
  doRowWritten: { item: "Durable Object SQLite rows written", usd: 1.0, unit: "million rows", source: DURABLE_OBJECTS, note: "a setAlarm is one row" },
  d1RowRead: { item: "D1 rows read", usd: 0.001, unit: "million rows", source: D1 },
  d1RowWritten: { item: "D1 rows written", usd: 1.0, unit: "million rows", source: D1 },
  r2ClassA: { item: "R2 Class A operations (Standard)", usd: 4.5, unit: "million requests", source: R2, note: "PutObject, ListObjects, CreateMultipartUpload, UploadPart, CompleteMultipartUpload, CopyObject" },
  r2ClassB: { item: "R2 Class B operations (Standard)", usd: 0.36, unit: "million requests", source: R2, note: "GetObject, HeadObject; DeleteObject and AbortMultipartUpload are free" },
  cacheApi: { item: "Cache API match/put/delete", usd: 0, unit: "million calls", source: WORKERS, note: "no price of its own: subrequests are not billed" },
  logIngestion: { item: "Workers Logs ingestion (from 2026-12-01)", usd: 0.25, unit: "GB", source: OBSERVABILITY, note: "past 50 GB per billing cycle; event body plus attributes" },
  logStorage: { item: "Workers Logs storage (from 2026-12-01)", usd: 0.1, unit: "GB-month", source: OBSERVABILITY, note: "past 12 GB-month; kept 7 days, so 7/30 GB-month per GB" },
  logEventLegacy: { item: "Workers Logs events (until 2026-11-30)", usd: 0.6, unit: "million events", source: WORKERS_LOGS, note: "past 20 million per month; not used below" },
} satisfies Record<string, Price>;

const LOG_RETENTION_DAYS = 7;

/** What one million operations of this tally cost, item by item, in US dollars. */
export function costPerMillion(tally: Tally) {
  const gbPerMillion = (tally.logBytes * 1e6) / 1e9;
  const parts = {
    requests: tally.invocations * PRICES.workerRequest.usd,
    cpu: tally.cpuMs * PRICES.cpu.usd,
    doRequests: tally.doRequests * PRICES.doRequest.usd,
    doStorage: tally.doRowsRead * PRICES.doRowRead.usd + tally.doRowsWritten * PRICES.doRowWritten.usd,
    d1: tally.d1RowsRead * PRICES.d1RowRead.usd + tally.d1RowsWritten * PRICES.d1RowWritten.usd,
    r2: tally.r2ClassA * PRICES.r2ClassA.usd + tally.r2ClassB * PRICES.r2ClassB.usd,
    logs: gbPerMillion * (PRICES.logIngestion.usd + (PRICES.logStorage.usd * LOG_RETENTION_DAYS) / 30),
  };
  const total = Object.values(parts).reduce((sum, part) => sum + part, 0);
  // Not in the total: a local wall-clock figure (see bench/RESULTS.md).
  const doDuration = (tally.doMs / 1000) * 0.125 * PRICES.doDuration.usd;
  return { ...parts, total, doDuration };
}
