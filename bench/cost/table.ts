// The cost tables, in markdown: what bench/cost/cost.bench-test.ts measured (its results, which bench/cost.ts reads
// from the test's output), priced with bench/cost/prices.ts. Plain TypeScript: used in workerd and in Node.
import { costPerMillion, PRICES, PRICES_READ_ON, type Price } from "./prices";
import { differences, type CostResults, type OperationResult, type QueryDifference } from "./results";
import { EXACT_COUNTS, type Tally } from "./tally";

// Columns of the counts table: one counter each, or several shown as a / b / c.
const COLUMNS: { title: string; keys: (keyof Tally)[]; digits?: number }[] = [
  { title: "Worker requests", keys: ["invocations"] },
  { title: "DO requests", keys: ["doRequests"] },
  { title: "DO rows read / written", keys: ["doRowsRead", "doRowsWritten"] },
  { title: "D1 queries", keys: ["d1Queries"] },
  { title: "D1 rows read", keys: ["d1RowsRead"] },
  { title: "D1 rows written", keys: ["d1RowsWritten"] },
  { title: "R2 Class A / B / free", keys: ["r2ClassA", "r2ClassB", "r2Free"] },
  { title: "Cache API match / put / delete", keys: ["cacheMatch", "cachePut", "cacheDelete"] },
  { title: "log lines", keys: ["logLines"], digits: 2 },
  { title: "log bytes (about)", keys: ["logBytes"], digits: 0 },
  { title: "upstream fetches", keys: ["upstreamFetches"] },
];

const number = (value: number, digits = 0) => value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
const dollars = (value: number) => (value === 0 ? "0" : value < 0.001 ? value.toExponential(1) : value < 10 ? value.toFixed(3) : value.toFixed(2));

/** A counter's value, or its value at each size in bold when they differ (an inexact one: at the largest size). */
function value(operation: OperationResult, key: keyof Tally, digits = 0): string {
  if (!EXACT_COUNTS.includes(key)) return number(operation.bySize.at(-1)!.tally[key], digits);
  const values = operation.bySize.map((size) => size.tally[key]);
  const same = values.every((value) => value === values[0]);
  return same ? number(values[0]!, digits) : `**${values.map((value) => number(value, digits)).join(" → ")}**`;
}

function sizes(results: CostResults): string {
  return results.sizes.map((size) => number(size)).join(" / ");
}

/** Counts per operation; a counter that differs between sizes shows each value, in bold. */
export function countsTable(results: CostResults): string {
  const head = ["operation", ...COLUMNS.map((column) => column.title), `Worker CPU ms (${sizes(results)} repos)`, `DO wall ms (${sizes(results)})`, "same at every size"];
  const lines = [`| ${head.join(" | ")} |`, `| --- | ${head.slice(1).map(() => "---:").join(" | ")} |`];
  for (const operation of results.operations) {
    const differing = differences(operation);
    const cells = COLUMNS.map(({ keys, digits }) => keys.map((key) => value(operation, key, digits)).join(" / "));
    const cpu = operation.bySize.map((size) => size.tally.cpuMs.toFixed(2)).join(" / ");
    const doMs = operation.bySize.map((size) => size.tally.doMs.toFixed(1)).join(" / ");
    lines.push(`| ${operation.name} | ${cells.join(" | ")} | ${cpu} | ${doMs} | ${differing.length === 0 ? "yes" : `**no: ${differing.join(", ")}**`} |`);
  }
  return lines.join("\n");
}

/** Each operation's D1 statements, with the rows they read and wrote. */
export function statementsList(results: CostResults): string {
  return results.operations
    .filter((operation) => operation.statements.length > 0)
    .map((operation) => {
      const lines = operation.statements.map(
        (statement) => `  - ${statement.times} × \`${statement.sql.length > 160 ? `${statement.sql.slice(0, 160)}…` : statement.sql}\`: ${statement.rowsRead} read, ${statement.rowsWritten} written`,
      );
      return [`- ${operation.name}:`, ...lines].join("\n");
    })
    .join("\n");
}

/** Each operation's binding calls other than D1 (Durable Objects' storage included), by name, with how many times each was made. */
export function callsList(results: CostResults): string {
  return results.operations
    .filter((operation) => Object.keys(operation.calls).length > 0)
    .map((operation) => `- ${operation.name}: ${Object.entries(operation.calls).map(([call, times]) => `${call} ×${times}`).join(", ")}`)
    .join("\n");
}

/** Dollars per million operations at the published prices, item by item (from the largest registry's counts). */
export function costTable(results: CostResults): string {
  const head = ["operation", "requests", "CPU", "DO requests", "DO storage", "D1", "R2", "logs", "**total**", "(DO duration, local)"];
  const lines = [`| ${head.join(" | ")} |`, `| --- | ${head.slice(1).map(() => "---:").join(" | ")} |`];
  for (const operation of results.operations) {
    const cost = costPerMillion(operation.bySize.at(-1)!.tally);
    const parts = [cost.requests, cost.cpu, cost.doRequests, cost.doStorage, cost.d1, cost.r2, cost.logs].map(dollars);
    lines.push(`| ${operation.name} | ${parts.join(" | ")} | **${dollars(cost.total)}** | ${dollars(cost.doDuration)} |`);
  }
  return lines.join("\n");
}

/** The price list used. */
export function priceTable(): string {
  const lines = [`Prices read ${PRICES_READ_ON} (Workers Paid, past the included usage):`, "", "| item | US$ | per | source | note |", "| --- | ---: | --- | --- | --- |"];
  for (const price of Object.values(PRICES) as Price[]) lines.push(`| ${price.item} | ${price.usd} | ${price.unit} | ${price.source} | ${price.note ?? ""} |`);
  return lines.join("\n");
}

function describe(difference: QueryDifference): string {
  const rows = difference.bySize.map((query) => (query ? `${query.rowsRead}/${query.rowsWritten}` : "not run")).join(" vs ");
  const others = difference.bySize.filter((query) => query && query.sql !== difference.sql);
  return `- ${rows}: \`${difference.sql.slice(0, 400)}\`${others.length > 0 ? ` (elsewhere: \`${others[0]!.sql.slice(0, 200)}\`)` : ""}`;
}

export function report(results: CostResults): string {
  const changed = results.operations.filter((operation) => differences(operation).length > 0);
  const unsteady = results.operations.flatMap((operation) =>
    operation.bySize.filter((size) => size.unsteady.length > 0).map((size) => `${operation.name} at ${number(size.repositories)}: ${size.unsteady.join(", ")}`),
  );
  return [
    `Cost per operation at ${results.sizes.map((size) => `${number(size)} repositories (${number(size * results.tagsPerRepository)} tags)`).join(" and ")}; ` +
      `${results.repetitions} run(s) of each operation at each size (CPU and DO wall time: the mean of the runs but the highest and the lowest); image layers of ${results.layerBytes.map((bytes) => number(bytes)).join(", ")} bytes.`,
    "",
    `Rows when each size was measured: ${results.seeded.map((tables) => Object.entries(tables).map(([table, rows]) => `${table} ${number(rows)}`).join(", ")).join("; ")}.`,
    "",
    countsTable(results),
    "",
    changed.length === 0
      ? "Every count is the same at every size."
      : `Counts that differ between sizes: ${changed.map((operation) => `${operation.name} (${differences(operation).join(", ")})`).join("; ")}.`,
    ...changed.flatMap((operation) => [
      "",
      `${operation.name}: the D1 statements whose rows differ (rows read/written at ${sizes(results)} repositories):`,
      "",
      ...operation.queryDifferences.map(describe),
      ...(operation.callDifference ? [`- other binding calls differ at ${operation.callDifference}`] : []),
    ]),
    ...(unsteady.length > 0 ? ["", `Counts that differed between runs at one size: ${unsteady.join("; ")}.`] : []),
    "",
    latencyTable(results),
    "",
    collectionTable(results),
    "",
    `US$ per million operations, at the counts of the largest registry:`,
    "",
    costTable(results),
    "",
    priceTable(),
    "",
    "Binding calls per operation other than D1 (at the largest size):",
    "",
    callsList(results),
    "",
    "D1 statements per operation (at the largest size), with the rows they read and wrote in all:",
    "",
    statementsList(results),
  ].join("\n");
}

/** p50 and p99 of each read request at each size (wall clock in workerd, local D1: read them as ratios between sizes). */
function latencyTable(results: CostResults): string {
  if (results.latencies.length === 0) return "";
  const names = Object.keys(results.latencies[0]!.byRequest);
  const header = results.latencies.map((size) => `p50 / p99 ms at ${number(size.repositories)}`);
  return [
    `Latency of read requests, ${results.latencies[0]!.requests} of each at each size after 5 unmeasured, one at a time, in workerd with the local bindings (no network; the registry's own time plus local D1's):`,
    "",
    `| request | ${header.join(" | ")} |`,
    `| --- | ${header.map(() => "---:").join(" | ")} |`,
    ...names.map((name) => `| ${name} | ${results.latencies.map((size) => `${size.byRequest[name]!.p50.toFixed(2)} / ${size.byRequest[name]!.p99.toFixed(2)}`).join(" | ")} |`),
  ].join("\n");
}

/** How many bounded collection passes each size took to be fully collected. */
function collectionTable(results: CostResults): string {
  if (results.collection.length === 0) return "";
  return [
    "Garbage collection (`collectGarbage`, the cron's pass, production settings) run pass after pass until one reports nothing more to do:",
    "",
    "| repositories | passes | fully collected | most subrequests in a pass | budget (GC_SUBREQUEST_BUDGET) | seconds in all |",
    "| ---: | ---: | --- | ---: | ---: | ---: |",
    ...results.collection.map(
      (size) => `| ${number(size.repositories)} | ${size.passes} | ${size.complete ? "yes" : "**no**"} | ${number(size.maxSubrequests)} | ${number(size.budget)} | ${size.seconds.toFixed(1)} |`,
    ),
  ].join("\n");
}
