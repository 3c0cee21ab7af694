// What one operation costs, counted on the bindings themselves: every binding the registry is given (D1, R2, the
// Durable Object namespaces, and inside the Durable Objects their storage and their own D1 and R2), the Cache API,
// upstream fetches and console lines are wrapped in counting proxies that add to the tally of the operation being
// measured (`meter.current`), and time how long each request waits on them.
import type { Query, Tally } from "./tally";

export { emptyTally, type Measured, type Query, type Tally } from "./tally";

type Counter = { [K in keyof Tally]: Tally[K] extends number ? K : never }[keyof Tally];
type Interval = [start: number, end: number];

class Meter {
  /** The operation being measured; nothing is counted while it is null. */
  current: Tally | null = null;
  /** Waits on bindings since the request began, and those on Durable Objects apart. */
  private waits: Interval[] = [];
  private doWaits: Interval[] = [];
  /** How much a log line counts (a sampled request line counts as the default sampling rate would). */
  logWeight: (line: string) => number = () => 1;
  /** The lines logged during measurements, kept (not printed) to explain a failure. */
  readonly lines: string[] = [];
  /** The D1 statements of the current operation, with their rows: to tell which one reads more in a larger registry. */
  queries: Query[] = [];
  /** The other binding calls of the current operation, in order ("r2.put", "do.append", "cache.match"). */
  calls: string[] = [];

  add(counter: Counter, amount = 1): void {
    if (this.current) this.current[counter] += amount;
  }

  /** Notes a binding call, in the order made. */
  call(name: string): void {
    if (this.current) this.calls.push(name);
  }

  /** Times a binding call as a wait; on a Durable Object, as its active time too. */
  wait<T>(promise: Promise<T>, onDurableObject = false): Promise<T> {
    if (!this.current) return promise;
    const start = performance.now();
    const done = () => {
      const interval: Interval = [start, performance.now()];
      this.waits.push(interval);
      if (onDurableObject) this.doWaits.push(interval);
    };
    return Promise.resolve(promise).finally(done);
  }

  /** Starts a request's clock. */
  begin(): number {
    this.waits = [];
    this.doWaits = [];
    return performance.now();
  }

  /**
   * The request's CPU, approximated: the time from `begin` until its handler returned the response, less the time
   * in that window spent waiting on bindings, Durable Objects and upstream fetches (their union: waits that overlap
   * count once). Local bindings run in the same process, so their time is in those waits, not in this figure. The
   * Durable Objects' time is counted until the end of the request's waitUntil work.
   */
  end(started: number, returned: number): { cpuMs: number; doMs: number } {
    return { cpuMs: Math.max(0, returned - started - covered(this.waits, started, returned)), doMs: covered(this.doWaits, started, Infinity) };
  }
}

/** How much of [from, to] the intervals cover. */
function covered(intervals: Interval[], from: number, to: number): number {
  const clipped = intervals
    .map(([start, end]): Interval => [Math.max(start, from), Math.min(end, to)])
    .filter(([start, end]) => end > start)
    .sort((a, b) => a[0] - b[0]);
  let total = 0;
  let reach = -Infinity;
  for (const [start, end] of clipped) {
    if (end <= reach) continue;
    total += end - Math.max(start, reach);
    reach = end;
  }
  return total;
}

export const meter = new Meter();

/** Calls a binding's method on the binding (Reflect.apply: on an RPC stub, `.apply` would be a remote method). */
const invoke = (method: unknown, self: unknown, args: unknown[]): unknown => Reflect.apply(method as (...a: unknown[]) => unknown, self, args);

// ---------------------------------------------------------------------------------------------------------------
// D1: every statement's meta (rows_read, rows_written), whether run alone or in a batch.

/** The binding's own statement behind each counted one, and its SQL. */
const statements = new WeakMap<object, { prepared: D1PreparedStatement; sql: string }>();

function addMeta(sql: string, meta: D1Meta | undefined): void {
  if (!meter.current) return;
  const query = { sql: sql.replace(/\s+/g, " ").trim(), rowsRead: meta?.rows_read ?? 0, rowsWritten: meta?.rows_written ?? 0 };
  meter.add("d1Queries");
  meter.add("d1RowsRead", query.rowsRead);
  meter.add("d1RowsWritten", query.rowsWritten);
  meter.queries.push(query);
}

function countedStatement(prepared: D1PreparedStatement, sql: string): D1PreparedStatement {
  const wrapped = new Proxy(prepared, {
    get(target, property) {
      if (property === "bind") return (...values: unknown[]) => countedStatement(target.bind(...values), sql);
      if (property === "all" || property === "run") {
        return async () => {
          const result = await meter.wait(target[property]());
          addMeta(sql, result.meta);
          return result;
        };
      }
      // first() reports no meta: run as all(), which reads the same rows.
      if (property === "first") {
        return async (column?: string) => {
          const result = await meter.wait(target.all<Record<string, unknown>>());
          addMeta(sql, result.meta);
          const row = result.results[0] ?? null;
          return column === undefined || row === null ? row : (row[column] ?? null);
        };
      }
      if (property === "raw") throw new Error("raw() is not counted: add it to bench/cost/meter.ts");
      const value = Reflect.get(target, property);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  statements.set(wrapped, { prepared, sql });
  return wrapped;
}

type Database = Pick<D1Database, "prepare" | "batch">;

function countedDatabase<T extends Database>(database: T): T {
  return new Proxy(database, {
    get(target, property) {
      if (property === "prepare") return (sql: string) => countedStatement(target.prepare(sql), sql);
      if (property === "batch") {
        return async (batch: D1PreparedStatement[]) => {
          // The binding takes only its own statements back.
          const results = await meter.wait(target.batch(batch.map((s) => statements.get(s)?.prepared ?? s)));
          results.forEach((result, index) => addMeta(statements.get(batch[index]!)?.sql ?? "(not counted)", result.meta));
          return results;
        };
      }
      if (property === "withSession") return (constraint?: string) => countedDatabase((target as unknown as D1Database).withSession(constraint));
      const value = Reflect.get(target, property);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

// ---------------------------------------------------------------------------------------------------------------
// R2: each call by its class (https://developers.cloudflare.com/r2/pricing/#class-a-operations).

const R2_CLASS: Record<string, Counter | null> = {
  put: "r2ClassA",
  list: "r2ClassA",
  createMultipartUpload: "r2ClassA",
  uploadPart: "r2ClassA",
  complete: "r2ClassA",
  get: "r2ClassB",
  head: "r2ClassB",
  delete: "r2Free",
  abort: "r2Free",
  // A handle on an upload already created: no request.
  resumeMultipartUpload: null,
};

function countedR2<T extends object>(target: T): T {
  return new Proxy(target, {
    get(object, property) {
      const value = Reflect.get(object, property);
      if (typeof value !== "function" || typeof property !== "string") return value;
      if (!(property in R2_CLASS)) throw new Error(`R2 ${property}() is not counted: add it to bench/cost/meter.ts`);
      return (...args: unknown[]) => {
        const counter = R2_CLASS[property];
        if (counter) meter.add(counter);
        meter.call(`r2.${property}`);
        const result = invoke(value, object, args);
        if (property === "resumeMultipartUpload") return countedR2(result as R2MultipartUpload);
        const waited = meter.wait(result as Promise<unknown>);
        return property === "createMultipartUpload" ? waited.then((upload) => countedR2(upload as R2MultipartUpload)) : waited;
      };
    },
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Durable Objects: each stub call is a request; inside, storage calls are rows.

function countedStub<T extends object>(stub: T): T {
  return new Proxy(stub, {
    get(target, property) {
      const value = Reflect.get(target, property);
      if (typeof value !== "function" || property === "then" || typeof property === "symbol") return value;
      return (...args: unknown[]) => {
        meter.add("doRequests");
        meter.call(`do.${property}`);
        return meter.wait(invoke(value, target, args) as Promise<unknown>, true);
      };
    },
  });
}

function countedNamespace<T extends DurableObjectNamespace>(namespace: T): T {
  return new Proxy(namespace, {
    get(target, property) {
      const value = Reflect.get(target, property);
      if (property === "get" || property === "getByName") {
        return (...args: unknown[]) => countedStub(invoke(value, target, args) as object);
      }
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

const keysOf = (keys: unknown) => (Array.isArray(keys) ? keys.length : 1);

/**
 * A Durable Object's storage, counting rows as SQLite-backed storage bills KV calls: a row per key read or written,
 * a row written per alarm set (and, not priced explicitly, per alarm deleted; a row read per alarm read).
 */
function countedStorage(storage: DurableObjectStorage): DurableObjectStorage {
  const kv = new Proxy(storage.kv, {
    get(target, property) {
      const value = Reflect.get(target, property);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        meter.call(`storage.kv.${String(property)}`);
        if (property === "get") meter.add("doRowsRead", keysOf(args[0]));
        else if (property === "put" || property === "delete") meter.add("doRowsWritten", keysOf(args[0]));
        else throw new Error(`storage.kv.${String(property)}() is not counted: add it to bench/cost/meter.ts`);
        return invoke(value, target, args);
      };
    },
  });
  return new Proxy(storage, {
    get(target, property) {
      if (property === "kv") return kv;
      const value = Reflect.get(target, property);
      if (typeof value !== "function") return value;
      const call = (...args: unknown[]) => {
        meter.call(`storage.${String(property)}`);
        return invoke(value, target, args);
      };
      switch (property) {
        case "get":
        case "getAlarm":
          return (...args: unknown[]) => {
            meter.add("doRowsRead", property === "get" ? keysOf(args[0]) : 1);
            return call(...args);
          };
        case "put":
          return (...args: unknown[]) => {
            meter.add("doRowsWritten", typeof args[0] === "string" ? 1 : Object.keys(args[0] as object).length);
            return call(...args);
          };
        case "delete":
        case "setAlarm":
        case "deleteAlarm":
          return (...args: unknown[]) => {
            meter.add("doRowsWritten", property === "delete" ? keysOf(args[0]) : 1);
            return call(...args);
          };
        case "list":
          return async (...args: unknown[]) => {
            const listed = (await call(...args)) as Map<string, unknown>;
            meter.add("doRowsRead", Math.max(1, listed.size));
            return listed;
          };
        case "deleteAll":
          // The price list does not say how this is billed: counted as a row written per key it deletes.
          return async (...args: unknown[]) => {
            if (meter.current) meter.add("doRowsWritten", (await target.list()).size);
            return call(...args);
          };
        // Whatever runs inside is counted as it runs (storage.kv, storage.put...); an async transaction's own
        // handle would not be, so it is not let through.
        case "transactionSync":
        case "sync":
          return call;
        default:
          throw new Error(`storage.${String(property)}() is not counted: add it to bench/cost/meter.ts`);
      }
    },
  });
}

/** A Durable Object's state whose storage is counted. */
export function countedState(ctx: DurableObjectState): DurableObjectState {
  const storage = countedStorage(ctx.storage);
  return new Proxy(ctx, {
    get(target, property) {
      if (property === "storage") return storage;
      const value = Reflect.get(target, property);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

// ---------------------------------------------------------------------------------------------------------------
// The environment: every binding the registry reads, counted.

interface Bindings {
  DB: D1Database;
  BLOBS: R2Bucket;
  UPLOADS: DurableObjectNamespace;
  MIRROR_FETCHES: DurableObjectNamespace;
  AUTH_FAILURES?: RateLimit;
}

export function countedEnv<E extends Bindings>(env: E): E {
  return {
    ...env,
    DB: countedDatabase(env.DB),
    BLOBS: countedR2(env.BLOBS),
    UPLOADS: countedNamespace(env.UPLOADS),
    MIRROR_FETCHES: countedNamespace(env.MIRROR_FETCHES),
    ...(env.AUTH_FAILURES && { AUTH_FAILURES: countedRateLimit(env.AUTH_FAILURES) }),
  };
}

/** The failed-login limiter: its calls are listed and timed (rate limiting has no price of its own). */
function countedRateLimit(limiter: RateLimit): RateLimit {
  return {
    limit: (options) => {
      meter.call("ratelimit.limit");
      return meter.wait(limiter.limit(options));
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Globals: the Cache API (every Cache shares one prototype), outbound fetches, console.

let installed = false;

/** Counts the Cache API, outbound fetches (to the mirror's upstream) and console lines from now on, in this isolate. */
export function installGlobalMeters(): void {
  if (installed) return;
  installed = true;
  const cache = Object.getPrototypeOf(caches.default) as Cache;
  for (const [method, counter] of [
    ["match", "cacheMatch"],
    ["put", "cachePut"],
    ["delete", "cacheDelete"],
  ] as const) {
    const original = cache[method] as (...args: unknown[]) => Promise<unknown>;
    Object.defineProperty(cache, method, {
      configurable: true,
      writable: true,
      value(this: Cache, ...args: unknown[]) {
        meter.add(counter);
        meter.call(`cache.${method}`);
        return meter.wait(invoke(original, this, args) as Promise<unknown>);
      },
    });
  }
  for (const level of ["log", "info", "warn", "error", "debug"] as const) {
    const original = console[level].bind(console);
    console[level] = (...args: unknown[]) => {
      if (!meter.current) return original(...args);
      const line = args.map((arg) => (typeof arg === "string" ? arg : arg instanceof Error ? String(arg.stack ?? arg) : JSON.stringify(arg))).join(" ");
      const weight = meter.logWeight(line);
      meter.add("logLines", weight);
      meter.add("logBytes", weight * new TextEncoder().encode(line).byteLength);
      meter.lines.push(line);
      if (meter.lines.length > 200) meter.lines.shift();
    };
  }
}

/** Counts and times the fetches made through `fetch` (the isolate's global one, whatever it is now). */
export function countedFetch(fetch: typeof globalThis.fetch): typeof globalThis.fetch {
  return (input, init) => {
    meter.add("upstreamFetches");
    const method = init?.method ?? (input instanceof Request ? input.method : "GET");
    // Named by what is asked for, not by the repository's name or the digest (they differ from run to run).
    const path = new URL(input instanceof Request ? input.url : String(input)).pathname;
    meter.call(`fetch ${method} ${/\/(manifests|blobs|tags)\//.exec(path)?.[1] ?? path}`);
    return meter.wait(fetch(input, init));
  };
}
