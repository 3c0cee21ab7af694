// npm run bench -- --only=cost [--repositories=1000,100000] [--runs=5]   (bench/index.ts lists every flag)
//
// What each hot operation costs on Cloudflare, counted (not timed) at registry sizes seeded straight in D1: runs the
// vitest project "cost" (bench/cost/cost.bench-test.ts, in workerd with the real local bindings wrapped in counting
// proxies), reads the counts it prints, and prints them as markdown with the cost per million operations at the
// published prices (bench/cost/prices.ts). Progress on stderr. Exits non-zero when a count differs between sizes.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { RESULTS_MARKER, type CostResults } from "./cost/results.ts";
import { report } from "./cost/table.ts";

export interface CostOptions {
  /** Registry sizes, in repositories, comma separated. */
  repositories: string;
  /** Runs of each operation at each size (CPU: their mean, the highest and lowest left out). */
  runs: number;
}

export function costOptions(args: string[]): CostOptions {
  const value = (name: string) => args.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3);
  const repositories = value("repositories") ?? "1000,100000";
  if (!/^\d+(,\d+)+$/.test(repositories)) throw new Error("--repositories takes two or more sizes, comma separated (1000,100000)");
  const runs = Number(value("runs") ?? 5);
  if (!(Number.isInteger(runs) && runs > 0)) throw new Error("--runs must be a positive whole number");
  return { repositories, runs };
}

const ROOT = fileURLToPath(new URL("..", import.meta.url));
// Styling vitest adds to its output.
const ANSI = /\u001b\[[0-9;]*m/g;

export async function benchCost(options: CostOptions): Promise<void> {
  console.error(`cost: measuring at ${options.repositories.replaceAll(",", " and ")} repositories, ${options.runs} run(s) each`);
  const vitest = fileURLToPath(new URL("../node_modules/vitest/vitest.mjs", import.meta.url));
  const child = spawn(process.execPath, [vitest, "run", "--project", "cost"], {
    cwd: ROOT,
    env: { ...process.env, COST_REPOSITORIES: options.repositories, COST_REPETITIONS: String(options.runs) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const found: { results?: CostResults } = {};
  const read = (chunk: Buffer) => {
    output += chunk.toString();
    let newline: number;
    while ((newline = output.indexOf("\n")) >= 0) {
      const line = output.slice(0, newline).replace(ANSI, "");
      output = output.slice(newline + 1);
      const marker = line.indexOf(RESULTS_MARKER);
      if (marker >= 0) found.results = JSON.parse(line.slice(marker + RESULTS_MARKER.length)) as CostResults;
      else if (/^(cost: |FAIL|Test Files|Tests |✓ |× |❯ |\w*Error)/.test(line.trim())) console.error(line);
    }
  };
  child.stdout.on("data", read);
  child.stderr.on("data", read);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", resolve);
  });
  if (!found.results) throw new Error(`the cost project printed no results (vitest exited with ${code})`);
  console.log(`## Cost per operation\n\n${report(found.results)}\n`);
  if (code !== 0) {
    console.error("cost: some counts differ between sizes or runs (see above)");
    process.exitCode = 1;
  }
}
