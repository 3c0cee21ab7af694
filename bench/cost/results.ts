// What the cost project's runs add up to, per operation: counts by registry size, and what explains a count that
// differs (the D1 statements, the other binding calls). Plain TypeScript: built in workerd, read in Node.
import { EXACT_COUNTS, type Measured, type Query, type Tally } from "./tally";

export interface SizeResult {
  repositories: number;
  /** Counts of the first run; CPU and DO time: the mean of the runs but the highest and the lowest. */
  tally: Tally;
  runs: number;
  /** Counters that were not the same in every run at this size. */
  unsteady: string[];
}

/** A D1 statement that read or wrote a different number of rows at another size (null: not run at that size). */
export interface QueryDifference {
  sql: string;
  bySize: ({ sql: string; rowsRead: number; rowsWritten: number } | null)[];
}

/** A D1 statement of an operation: how many times it ran, and the rows it read and wrote in all. */
export interface Statement {
  sql: string;
  times: number;
  rowsRead: number;
  rowsWritten: number;
}

export interface OperationResult {
  name: string;
  queryDifferences: QueryDifference[];
  /** Where the other binding calls of the sizes part ways (null: the same calls at every size). */
  callDifference: string | null;
  /** Each binding call (other than D1) and upstream fetch, with how many times it was made, at the largest size. */
  calls: Record<string, number>;
  /** Its D1 statements, at the largest size. */
  statements: Statement[];
  /** One per registry size, in the order of CostResults.sizes. */
  bySize: SizeResult[];
}

export interface CostResults {
  sizes: number[];
  tagsPerRepository: number;
  repetitions: number;
  layerBytes: number[];
  seeded: Record<string, number>[];
  operations: OperationResult[];
  /** Per size: wall-clock latencies of read requests in workerd (in-process, local bindings), ms. */
  latencies: { repositories: number; requests: number; byRequest: Record<string, { p50: number; p99: number }> }[];
  /** Per size: the garbage collection passes it took until a pass had nothing more to do, and their largest budget use. */
  collection: { repositories: number; passes: number; complete: boolean; maxSubrequests: number; budget: number; seconds: number }[];
}

export const RESULTS_MARKER = "COST-RESULTS ";

/** The exact counters whose values differ between the registry sizes. */
export function differences(operation: OperationResult): string[] {
  const [first, ...rest] = operation.bySize;
  return EXACT_COUNTS.filter((key) => rest.some((size) => size.tally[key] !== first!.tally[key]));
}

/** Each operation's results, from its runs at each size (measured[size][operation] = its runs). */
export function operationResults(sizes: number[], measured: Record<string, Measured[]>[]): OperationResult[] {
  return Object.keys(measured[0]!).map((name) => ({
    name,
    queryDifferences: queryDifferences(measured.map((runs) => runs[name]![0]!.queries)),
    callDifference: callDifference(measured.map((runs) => runs[name]![0]!.calls)),
    calls: tallyOf(measured.at(-1)![name]![0]!.calls),
    statements: statementsOf(measured.at(-1)![name]![0]!.queries),
    bySize: measured.map((runs, index) => {
      const tallies = runs[name]!.map((run) => run.tally);
      const first = tallies[0]!;
      // A mean keeps what the 1 ms clock rounds away (a request's 0 or 1 ms); without the highest and the lowest
      // run (from 3 runs on), one run's garbage collection does not move it.
      const trimmedMean = (key: "cpuMs" | "doMs") => {
        const sorted = tallies.map((tally) => tally[key]).sort((a, b) => a - b);
        const kept = sorted.length >= 3 ? sorted.slice(1, -1) : sorted;
        return kept.reduce((sum, value) => sum + value, 0) / kept.length;
      };
      return {
        repositories: sizes[index]!,
        tally: { ...first, cpuMs: trimmedMean("cpuMs"), doMs: trimmedMean("doMs") },
        runs: tallies.length,
        unsteady: EXACT_COUNTS.filter((key) => tallies.some((tally) => tally[key] !== first[key])),
      };
    }),
  }));
}

/** The statements whose rows differ between sizes (by position: an operation runs the same statements in order). */
function queryDifferences(bySize: Query[][]): QueryDifference[] {
  const [first, ...rest] = bySize;
  const differences: QueryDifference[] = [];
  for (let index = 0; index < Math.max(...bySize.map((queries) => queries.length)); index++) {
    const at = bySize.map((queries) => queries[index]);
    const same = rest.every((queries) => {
      const [a, b] = [first![index], queries[index]];
      return a?.sql === b?.sql && a?.rowsRead === b?.rowsRead && a?.rowsWritten === b?.rowsWritten;
    });
    if (!same) differences.push({ sql: at.find((query) => query)!.sql, bySize: at.map((query) => (query ? { sql: query.sql, rowsRead: query.rowsRead, rowsWritten: query.rowsWritten } : null)) });
  }
  return differences;
}

/** Where the binding calls of the sizes first part ways, if they do. */
function callDifference(bySize: string[][]): string | null {
  const [first, ...rest] = bySize;
  for (let index = 0; index < Math.max(...bySize.map((calls) => calls.length)); index++) {
    if (rest.some((calls) => calls[index] !== first![index])) return `call ${index + 1}: ${bySize.map((calls) => calls[index] ?? "none").join(" vs ")}`;
  }
  return null;
}

/** The D1 statements run, each with how many times and the rows it read and wrote in all. */
function statementsOf(queries: Query[]): Statement[] {
  const bySql = new Map<string, Statement>();
  for (const query of queries) {
    const statement = bySql.get(query.sql) ?? { sql: query.sql, times: 0, rowsRead: 0, rowsWritten: 0 };
    statement.times += 1;
    statement.rowsRead += query.rowsRead;
    statement.rowsWritten += query.rowsWritten;
    bySql.set(query.sql, statement);
  }
  return [...bySql.values()];
}

/** How many times each binding call was made. */
function tallyOf(calls: string[]): Record<string, number> {
  const counted: Record<string, number> = {};
  for (const call of calls) counted[call] = (counted[call] ?? 0) + 1;
  return counted;
}
