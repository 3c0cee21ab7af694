// SBOM scanning end to end against `wrangler dev`: the CLI's osv-import reads an OSV export zip and posts it in
// pieces to the admin API, an SPDX SBOM attached as a referrer (as `oras attach --artifact-type application/spdx+json`
// pushes it) is scanned after its push, and the tag API counts the findings; a record imported later is found by the
// rescan of POST /admin/osv/refresh (the cron's pass).
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { zipSync } from "fflate";
import { expect, it } from "vitest";
import { mustRun } from "../support/command";
import { RegistryClient } from "../support/registry-fetch";
import { registryForFile } from "./fixture";
import type { Registry } from "./harness";

const CLI = fileURLToPath(new URL("../../cli/edge-oci-registry.ts", import.meta.url));
const ADMIN_TOKEN = "admin-token-for-the-osv-e2e-0123456789";
const REPOSITORY = "e2e/osv/app";

let registry: Registry;
let work: string;

registryForFile("oci-e2e-osv-", { vars: { ADMIN_TOKEN } }, (started, dir) => {
  registry = started;
  work = dir;
});

const record = (id: string, name: string, fixed: string, severity: string) => ({
  id,
  modified: "2024-01-01T00:00:00Z",
  summary: `${id} in ${name}`,
  database_specific: { severity },
  affected: [{ package: { ecosystem: "npm", name }, ranges: [{ type: "SEMVER", events: [{ introduced: "0" }, { fixed }] }] }],
});

async function tagVulnerabilities(): Promise<{ critical: number; high: number; medium: number; scanned: boolean }> {
  const response = await fetch(`${registry.url}/api/repositories/${REPOSITORY}/tags`);
  expect(response.status).toBe(200);
  const body = (await response.json()) as { tags: { name: string; vulnerabilities: { critical: number; high: number; medium: number; scanned: boolean } }[] };
  return body.tags.find((tag) => tag.name === "1.0")!.vulnerabilities;
}

/** The tag's counts once `done` holds (scans run after the response that triggered them). */
async function eventually(done: (counts: Awaited<ReturnType<typeof tagVulnerabilities>>) => boolean) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const counts = await tagVulnerabilities();
    if (done(counts) || Date.now() > deadline) return counts;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

it("imports an export with the CLI, scans an attached SBOM, and rescans after the database changes", async () => {
  // 400 records of about 2 KB each, in an export zip as OSV publishes them (one record per entry, pretty-printed).
  const filler = Array.from({ length: 400 }, (_, i) => record(`OSV-E2E-FILL-${i}`, `filler-${i}`, "1.0.0", "LOW"));
  const records = [record("OSV-E2E-LODASH", "lodash", "4.17.21", "CRITICAL"), ...filler.map((item) => ({ ...item, details: "x".repeat(2000) }))];
  const zip = join(work, "all.zip");
  await writeFile(zip, zipSync(Object.fromEntries(records.map((item) => [`${item.id}.json`, new TextEncoder().encode(JSON.stringify(item, null, 2))]))));
  const imported = await mustRun(process.execPath, [CLI, "osv-import", "--registry", registry.url, "--admin-token", ADMIN_TOKEN, "--ecosystem", "npm", "--piece-bytes", "100000", zip]);
  expect(JSON.parse(imported.stdout.toString())).toEqual({ received: 401, imported: 401, unchanged: 0, rejected: 0 });

  const client = new RegistryClient(registry.url, `Bearer ${ADMIN_TOKEN}`);
  const image = await client.pushImage(REPOSITORY, "1.0", { layers: [1024], seed: "osv-e2e" });
  const sbom = {
    spdxVersion: "SPDX-2.3",
    SPDXID: "SPDXRef-DOCUMENT",
    name: REPOSITORY,
    packages: [
      { name: "lodash", SPDXID: "SPDXRef-1", versionInfo: "4.17.20", externalRefs: [{ referenceCategory: "PACKAGE-MANAGER", referenceType: "purl", referenceLocator: "pkg:npm/lodash@4.17.20" }] },
      { name: "left-pad", SPDXID: "SPDXRef-2", versionInfo: "1.1.0", externalRefs: [{ referenceCategory: "PACKAGE-MANAGER", referenceType: "purl", referenceLocator: "pkg:npm/left-pad@1.1.0" }] },
    ],
  };
  await client.attach(REPOSITORY, image, "application/spdx+json", { name: "sbom.json", content: JSON.stringify(sbom) });
  expect(await eventually((counts) => counts.critical === 1)).toMatchObject({ critical: 1, high: 0, scanned: true });

  // A record imported after the scan: the next pass rescans the manifest, whose scan used an older database.
  const response = await fetch(`${registry.url}/admin/osv/import?ecosystem=npm`, {
    method: "POST",
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "application/json" },
    body: JSON.stringify(record("OSV-E2E-LEFTPAD", "left-pad", "1.3.0", "HIGH")),
  });
  expect(await response.json()).toMatchObject({ imported: 1 });
  const refresh = await fetch(`${registry.url}/admin/osv/refresh`, { method: "POST", headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
  expect(refresh.status).toBe(200);
  expect(await eventually((counts) => counts.high === 1)).toMatchObject({ critical: 1, high: 1 });
});
