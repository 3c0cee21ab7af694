// What bench/cost counts per operation (plain TypeScript: read in workerd, where it is counted, and in Node).

/** One operation's bill of work. Counts are exact; the *Ms figures are local wall-clock approximations. */
export interface Tally {
  /** Requests the client sent: each one a Worker invocation. */
  invocations: number;
  /** Worker CPU, approximated: each request's time in the handler less the time it waited on bindings (see `cpuOf`). */
  cpuMs: number;
  /** Calls on Durable Object stubs (RPC method calls and fetches): each one a billed request. */
  doRequests: number;
  /** Wall time spent waiting on Durable Objects: roughly their active (billed) duration. */
  doMs: number;
  /** Rows of the Durable Objects' SQLite storage, KV API calls counted one row per key (an alarm set: one row). */
  doRowsRead: number;
  doRowsWritten: number;
  d1Queries: number;
  d1RowsRead: number;
  d1RowsWritten: number;
  /** put, list, createMultipartUpload, uploadPart, complete (R2's Class A). */
  r2ClassA: number;
  /** get, head (R2's Class B). */
  r2ClassB: number;
  /** delete, abort: free. */
  r2Free: number;
  cacheMatch: number;
  cachePut: number;
  cacheDelete: number;
  /** console calls, each sampled request line weighted by the default LOG_READ_SAMPLE_RATE (see `logWeight`). */
  logLines: number;
  /** Their text, in bytes, weighted the same way. */
  logBytes: number;
  /** Requests to the mirror's upstream (subrequests: not billed by Cloudflare, shown for the mirror rows). */
  upstreamFetches: number;
}

export const emptyTally = (): Tally => ({
  invocations: 0,
  cpuMs: 0,
  doRequests: 0,
  doMs: 0,
  doRowsRead: 0,
  doRowsWritten: 0,
  d1Queries: 0,
  d1RowsRead: 0,
  d1RowsWritten: 0,
  r2ClassA: 0,
  r2ClassB: 0,
  r2Free: 0,
  cacheMatch: 0,
  cachePut: 0,
  cacheDelete: 0,
  logLines: 0,
  logBytes: 0,
  upstreamFetches: 0,
});

/** The counters that are exact: the same in every run of an operation, and at every registry size. The others are
 * local timings, and log bytes (a line names the repository and says how long the request took). */
export const EXACT_COUNTS = (Object.keys(emptyTally()) as (keyof Tally)[]).filter((key) => !["cpuMs", "doMs", "logBytes"].includes(key));

/** A D1 statement as one operation ran it. */
export interface Query {
  sql: string;
  rowsRead: number;
  rowsWritten: number;
}

/** One run of one operation: its tally, its D1 statements in order, and its other binding calls in order. */
export interface Measured {
  tally: Tally;
  queries: Query[];
  calls: string[];
}
