// CI: builds every environment as `wrangler deploy --dry-run` would, checks its configuration, and fails when a
// bundle is over the size budget (gzip). Prints each bundle's real size.
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { configProblems, environment, environments, PROJECT } from "./deployment.ts";

const BUDGET_KIB = 300;
let failed = false;
for (const name of environments()) {
  const label = name === "" ? "default" : name;
  const outdir = join(tmpdir(), `registry-bundle-${label}`);
  rmSync(outdir, { recursive: true, force: true });
  execFileSync(join(PROJECT, "node_modules/.bin/wrangler"), ["deploy", "--dry-run", "--outdir", outdir, `--env=${name}`], {
    cwd: PROJECT,
    stdio: ["ignore", "ignore", "inherit"],
  });
  const gzipKiB = gzipSync(readFileSync(join(outdir, "index.js"))).byteLength / 1024;
  const problems = await configProblems(environment(name));
  const over = gzipKiB > BUDGET_KIB;
  console.log(`${label}: bundle ${gzipKiB.toFixed(1)} KiB gzip (budget ${BUDGET_KIB} KiB)${over ? " OVER BUDGET" : ""}; config ${problems.length ? problems.join("; ") : "valid"}`);
  failed ||= over || problems.length > 0;
  rmSync(outdir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
