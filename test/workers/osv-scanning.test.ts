import { env } from "cloudflare:test";
import { zipSync } from "fflate";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { ConfigError, parseConfig, type Env } from "../../src/config";
import { importZip as importOsvZip } from "../../src/osv/import";
import { findingsOf, scanOf, type StoredFinding } from "../../src/vulnerabilities/store";
import { callWith, OCI_INDEX, OCI_MANIFEST, pushBlobThrough, randomBytes, sha256 } from "./helpers";

// SBOM scanning (README: "SBOM scanning"): OSV records imported through the admin API (JSON, arrays, OSV's export
// zips, the OSV_FEEDS refresh), SPDX and CycloneDX SBOMs pushed as referrers over the registry API and matched with
// each ecosystem's version rules, findings in the findings store as source "osv-scan", and rescans after the database
// changes.

const ADMIN = { Authorization: "Bearer admin-token-for-tests-0123456789abcdef" };
const EMPTY = "application/vnd.oci.empty.v1+json";

const send = (path: string, init: RequestInit = {}, callEnv: Env = env as unknown as Env) => callWith(callEnv, path, init);

const blob = (repository: string, bytes: Uint8Array | string) => pushBlobThrough(send, repository, bytes);

async function manifest(repository: string, body: object, tag?: string, mediaType = OCI_MANIFEST): Promise<{ mediaType: string; digest: string; size: number }> {
  const text = JSON.stringify(body);
  const digest = await sha256(text);
  const response = await send(`/v2/${repository}/manifests/${tag ?? digest}`, { method: "PUT", headers: { "Content-Type": mediaType }, body: text });
  expect(response.status, await response.clone().text()).toBe(201);
  return { mediaType, digest, size: new TextEncoder().encode(text).byteLength };
}

async function image(repository: string, tag: string) {
  const config = await blob(repository, JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] }, tag }));
  const layer = await blob(repository, randomBytes(256));
  return manifest(
    repository,
    {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...layer }],
    },
    tag,
  );
}

/** An SBOM attached as `oras attach --artifact-type <type>` does: one layer, the document. */
async function attach(repository: string, subject: { mediaType: string; digest: string; size: number }, artifactType: string, document: unknown) {
  const empty = await blob(repository, "{}");
  const layer = await blob(repository, typeof document === "string" ? document : JSON.stringify(document));
  return manifest(repository, {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType,
    config: { mediaType: EMPTY, ...empty },
    layers: [{ mediaType: artifactType, ...layer }],
    subject,
  });
}

async function importRecords(body: unknown, query = ""): Promise<Record<string, unknown>> {
  const response = await send(`/admin/osv/import${query}`, { method: "POST", headers: { ...ADMIN, "Content-Type": "application/json" }, body: JSON.stringify(body) });
  expect(response.status, await response.clone().text()).toBe(200);
  return response.json();
}

async function importZip(files: Record<string, Uint8Array | string>, query = ""): Promise<Response> {
  const entries = Object.fromEntries(Object.entries(files).map(([name, data]) => [name, typeof data === "string" ? new TextEncoder().encode(data) : data]));
  return send(`/admin/osv/import${query}`, { method: "POST", headers: { ...ADMIN, "Content-Type": "application/zip" }, body: zipSync(entries, { level: 9 }) });
}

async function refresh(callEnv?: Env): Promise<{ feeds: { url: string; status: string; report?: Record<string, unknown>; error?: string }[]; rescanned: { digest: string; findings: number }[] }> {
  const response = await send("/admin/osv/refresh", { method: "POST", headers: ADMIN }, callEnv);
  expect(response.status, await response.clone().text()).toBe(200);
  return response.json();
}

async function findings(repository: string, digest: string): Promise<StoredFinding[]> {
  return (await findingsOf(env.DB, repository, digest)).filter((finding) => finding.source === "osv-scan");
}

function ids(found: StoredFinding[]): string[] {
  return found.map((finding) => `${finding.id} ${finding.package}@${finding.installed}`).sort();
}

const range = (type: string, ...events: object[]) => ({ type, events });
const record = (id: string, ecosystem: string, name: string, ranges: object[], extra: object = {}) => ({
  schema_version: "1.6.0",
  id,
  modified: "2024-01-01T00:00:00Z",
  summary: `${id} in ${name}`,
  affected: [{ package: { ecosystem, name }, ranges }],
  ...extra,
});

const CRITICAL = [{ type: "CVSS_V3", score: "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H" }];

// Several ecosystems and every kind of range event.
const FIXTURE = [
  record("OSV-NPM-LODASH", "npm", "lodash", [range("SEMVER", { introduced: "0" }, { fixed: "4.17.21" })], { severity: CRITICAL }),
  record("OSV-NPM-MINIMIST", "npm", "minimist", [range("SEMVER", { introduced: "0" }, { fixed: "0.2.4" }, { introduced: "1.0.0" }, { fixed: "1.2.6" })], {
    database_specific: { severity: "MODERATE" },
  }),
  record("OSV-NPM-WITHDRAWN", "npm", "lodash", [range("SEMVER", { introduced: "0" })], { withdrawn: "2024-02-01T00:00:00Z" }),
  record("OSV-PYPI-DJANGO", "PyPI", "Django", [range("ECOSYSTEM", { introduced: "4.0" }, { last_affected: "4.1.3" })], { database_specific: { severity: "HIGH" } }),
  {
    id: "OSV-PYPI-LISTED",
    modified: "2024-01-01T00:00:00Z",
    affected: [{ package: { ecosystem: "PyPI", name: "requests_toolbelt" }, versions: ["1.0.0", "1.0.1"], ranges: [range("GIT", { introduced: "0123abc" }, { fixed: "4567def" })] }],
  },
  record("OSV-DEBIAN-OPENSSL", "Debian:12", "openssl", [range("ECOSYSTEM", { introduced: "0" }, { fixed: "3.0.11-1~deb12u2" })], { database_specific: { severity: "high" } }),
  record("OSV-DEBIAN-EPOCH", "Debian:12", "libfoo", [range("ECOSYSTEM", { introduced: "0" }, { fixed: "1:1.0-1" })]),
  record("OSV-DEBIAN-11-ONLY", "Debian:11", "openssl", [range("ECOSYSTEM", { introduced: "0" })]),
  record("OSV-ALPINE-BUSYBOX", "Alpine:v3.19", "busybox", [range("ECOSYSTEM", { introduced: "0" }, { fixed: "1.36.1-r16" })]),
  record("OSV-ALPINE-MUSL", "Alpine:v3.19", "musl", [range("ECOSYSTEM", { introduced: "0" }, { fixed: "1.2.4_p1" })]),
  record("OSV-GO-NET", "Go", "golang.org/x/net", [range("SEMVER", { introduced: "0" }, { fixed: "0.17.0" })]),
  record("OSV-GO-LIMIT", "Go", "github.com/example/limited", [range("SEMVER", { introduced: "1.0.0" }, { limit: "2.0.0" })]),
  record("OSV-CRATES-TIME", "crates.io", "time", [range("SEMVER", { introduced: "0.1.0" }, { fixed: "0.2.23" })]),
  record("OSV-GEM-RACK", "RubyGems", "rack", [range("ECOSYSTEM", { introduced: "0" }, { fixed: "2.2.6.3" })]),
  record("OSV-MAVEN-LOG4J", "Maven", "org.apache.logging.log4j:log4j-core", [range("ECOSYSTEM", { introduced: "2.0-beta9" }, { fixed: "2.15.0" })], { severity: CRITICAL }),
];

const spdx = (packages: { purl: string; version?: string }[]) => ({
  spdxVersion: "SPDX-2.3",
  dataLicense: "CC0-1.0",
  SPDXID: "SPDXRef-DOCUMENT",
  name: "image",
  packages: packages.map((item, index) => ({
    name: `p${index}`,
    SPDXID: `SPDXRef-Package-${index}`,
    versionInfo: item.version ?? "",
    externalRefs: [{ referenceCategory: "PACKAGE-MANAGER", referenceType: "purl", referenceLocator: item.purl }],
  })),
  files: [{ fileName: "/etc/passwd", SPDXID: "SPDXRef-File-1" }],
  relationships: [{ spdxElementId: "SPDXRef-DOCUMENT", relationshipType: "DESCRIBES", relatedSpdxElement: "SPDXRef-Package-0" }],
});

const cyclonedx = (components: object[]) => ({ bomFormat: "CycloneDX", specVersion: "1.5", version: 1, components });

afterEach(() => vi.restoreAllMocks());

beforeAll(async () => {
  const report = await importRecords(FIXTURE);
  expect(report).toMatchObject({ received: FIXTURE.length, imported: FIXTURE.length, rejected: 0 });
});

describe("matching SBOM packages against the OSV database", () => {
  it("matches an SPDX SBOM's packages by each ecosystem's version rules", async () => {
    const subject = await image("osv/spdx", "v1");
    await attach("osv/spdx", subject, "application/spdx+json", spdx([
      { purl: "pkg:npm/lodash@4.17.20" }, // fixed in 4.17.21: affected
      { purl: "pkg:npm/minimist@1.2.5" }, // second interval
      { purl: "pkg:npm/minimist@0.2.4" }, // the first interval's fix
      { purl: "pkg:pypi/django@4.1.3" }, // last_affected is inclusive
      { purl: "pkg:pypi/Django@4.1.3.post1" }, // past it
      { purl: "pkg:pypi/requests-toolbelt@1.0.1" }, // in the versions list
      { purl: "pkg:pypi/requests-toolbelt@1.0.2" },
      { purl: "pkg:deb/debian/libssl3@3.0.11-1~deb12u1?arch=amd64&upstream=openssl&distro=debian-12" }, // ~ sorts first
      { purl: "pkg:deb/debian/libfoo@2.0-1?distro=debian-12" }, // epoch 0 < epoch 1
      { purl: "pkg:apk/alpine/busybox@1.36.1-r15?arch=x86_64&distro=alpine-3.19.1" },
      { purl: "pkg:apk/alpine/musl@1.2.4-r2?distro=alpine-3.19.1" }, // -r2 < _p1
      { purl: "pkg:golang/golang.org/x/net@v0.15.0" },
      { purl: "pkg:golang/github.com/example/limited@v1.5.0" }, // below the limit
      { purl: "pkg:golang/github.com/example/limited@v2.1.0" }, // past it
      { purl: "pkg:cargo/time", version: "0.1.45" }, // the version from versionInfo
      { purl: "pkg:gem/rack@2.2.6.2" },
      { purl: "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1" },
      { purl: "pkg:maven/org.apache.logging.log4j/log4j-core@2.0-alpha1" }, // before beta9
      { purl: "pkg:npm/lodash@not-a-version" }, // matches nothing, breaks nothing
      { purl: "pkg:generic/whatever@1.0" },
    ]));
    const found = await findings("osv/spdx", subject.digest);
    expect(ids(found)).toEqual([
      "OSV-ALPINE-BUSYBOX busybox@1.36.1-r15",
      "OSV-ALPINE-MUSL musl@1.2.4-r2",
      "OSV-CRATES-TIME time@0.1.45",
      "OSV-DEBIAN-EPOCH libfoo@2.0-1",
      "OSV-DEBIAN-OPENSSL libssl3@3.0.11-1~deb12u1",
      "OSV-GEM-RACK rack@2.2.6.2",
      "OSV-GO-LIMIT github.com/example/limited@1.5.0",
      "OSV-GO-NET golang.org/x/net@0.15.0",
      "OSV-MAVEN-LOG4J org.apache.logging.log4j:log4j-core@2.14.1",
      "OSV-NPM-LODASH lodash@4.17.20",
      "OSV-NPM-MINIMIST minimist@1.2.5",
      "OSV-PYPI-DJANGO django@4.1.3",
      "OSV-PYPI-LISTED requests-toolbelt@1.0.1",
    ]);
    const byId = new Map(found.map((finding) => [finding.id, finding]));
    expect(byId.get("OSV-NPM-LODASH")).toMatchObject({ severity: "critical", fixed: "4.17.21", title: "OSV-NPM-LODASH in lodash", report: null });
    expect(byId.get("OSV-NPM-MINIMIST")).toMatchObject({ severity: "medium", fixed: "1.2.6" });
    expect(byId.get("OSV-PYPI-DJANGO")).toMatchObject({ severity: "high", fixed: "" });
    expect(byId.get("OSV-DEBIAN-OPENSSL")).toMatchObject({ severity: "high", fixed: "3.0.11-1~deb12u2" });
    expect(byId.get("OSV-GO-NET")).toMatchObject({ severity: "unknown", fixed: "0.17.0" });
    const scan = await scanOf(env.DB, "osv/spdx", subject.digest, "osv-scan");
    expect(scan).toMatchObject({ scanned: true, findings: 13, problems: [] });
  });

  it("reads CycloneDX components, nested ones, Trivy's source package properties, and an in-toto DSSE envelope", async () => {
    const subject = await image("osv/cdx", "v1");
    await attach("osv/cdx", subject, "application/vnd.cyclonedx+json", cyclonedx([
      {
        type: "library",
        name: "libssl3",
        version: "3.0.11-1~deb12u1",
        purl: "pkg:deb/debian/libssl3@3.0.11-1~deb12u1?distro=debian-12.4",
        properties: [
          { name: "aquasecurity:trivy:SrcName", value: "openssl" },
          { name: "aquasecurity:trivy:SrcVersion", value: "3.0.11" },
          { name: "aquasecurity:trivy:SrcRelease", value: "1~deb12u1" },
        ],
      },
      { type: "application", name: "app", components: [{ type: "library", name: "lodash", version: "4.17.15", purl: "pkg:npm/lodash@4.17.15" }] },
    ]));
    expect(ids(await findings("osv/cdx", subject.digest))).toEqual(["OSV-DEBIAN-OPENSSL libssl3@3.0.11-1~deb12u1", "OSV-NPM-LODASH lodash@4.17.15"]);

    const other = await image("osv/cdx", "v2");
    const statement = { _type: "https://in-toto.io/Statement/v0.1", predicateType: "https://cyclonedx.org/bom", subject: [], predicate: cyclonedx([{ type: "library", name: "rack", purl: "pkg:gem/rack@2.0.0" }]) };
    const envelope = { payloadType: "application/vnd.in-toto+json", payload: btoa(JSON.stringify(statement)), signatures: [] };
    await attach("osv/cdx", other, "application/vnd.in-toto+json", envelope);
    expect(ids(await findings("osv/cdx", other.digest))).toEqual(["OSV-GEM-RACK rack@2.0.0"]);
  });

  it("reads the SBOM attestations docker buildx lists in an image index, passing over its provenance", async () => {
    const repository = "osv/buildx";
    const platform = await image(repository, "platform");
    const statement = (predicateType: string, predicate: object) => ({ _type: "https://in-toto.io/Statement/v0.1", predicateType, subject: [{ name: "app", digest: { sha256: platform.digest.slice(7) } }], predicate });
    const sbom = await blob(repository, JSON.stringify(statement("https://spdx.dev/Document", spdx([{ purl: "pkg:npm/minimist@1.2.0" }]))));
    const provenance = await blob(repository, JSON.stringify(statement("https://slsa.dev/provenance/v0.2", { builder: { id: "" } })));
    const config = await blob(repository, JSON.stringify({ architecture: "unknown", os: "unknown", config: {}, rootfs: { type: "layers", diff_ids: [] } }));
    const attestation = await manifest(repository, {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
      layers: [
        { mediaType: "application/vnd.in-toto+json", ...provenance, annotations: { "in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2" } },
        { mediaType: "application/vnd.in-toto+json", ...sbom, annotations: { "in-toto.io/predicate-type": "https://spdx.dev/Document" } },
      ],
    });
    const index = await manifest(
      repository,
      {
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        manifests: [
          { ...platform, platform: { architecture: "amd64", os: "linux" } },
          {
            ...attestation,
            platform: { architecture: "unknown", os: "unknown" },
            annotations: { "vnd.docker.reference.digest": platform.digest, "vnd.docker.reference.type": "attestation-manifest" },
          },
        ],
      },
      "latest",
      OCI_INDEX,
    );
    expect(ids(await findings(repository, index.digest))).toEqual(["OSV-NPM-MINIMIST minimist@1.2.0"]);
    expect(await scanOf(env.DB, repository, index.digest, "osv-scan")).toMatchObject({ scanned: true, problems: [] });
  });

  it("records an unreadable SBOM as a problem, without findings and without failing the push", async () => {
    const subject = await image("osv/bad", "v1");
    await attach("osv/bad", subject, "application/spdx+json", "{ not json");
    const scan = await scanOf(env.DB, "osv/bad", subject.digest, "osv-scan");
    expect(scan?.scanned).toBe(false);
    expect(scan?.problems[0]?.reason).toMatch(/not a JSON object/);
    expect(await findings("osv/bad", subject.digest)).toEqual([]);
  });
});

describe("rescans when the database changes", () => {
  it("finds a vulnerability imported after the scan, on the next bounded rescan", async () => {
    const subject = await image("osv/rescan", "v1");
    await attach("osv/rescan", subject, "application/spdx+json", spdx([{ purl: "pkg:npm/left-pad@1.1.0" }, { purl: "pkg:npm/lodash@4.17.21" }]));
    expect(await findings("osv/rescan", subject.digest)).toEqual([]);

    await importRecords([record("OSV-NPM-LEFTPAD", "npm", "left-pad", [range("SEMVER", { introduced: "1.0.0" }, { fixed: "1.3.0" })])]);
    // Rescans take the lowest generations first, at most OSV_RESCANS_PER_RUN a run: run until ours is done.
    for (let run = 0; run < 20 && (await findings("osv/rescan", subject.digest)).length === 0; run++) await refresh();
    expect(ids(await findings("osv/rescan", subject.digest))).toEqual(["OSV-NPM-LEFTPAD left-pad@1.1.0"]);

    // A record changed (its modified moves) to no longer cover the version: the rescan drops the finding.
    await importRecords([{ ...record("OSV-NPM-LEFTPAD", "npm", "left-pad", [range("SEMVER", { introduced: "1.0.0" }, { fixed: "1.1.0" })]), modified: "2024-03-01T00:00:00Z" }]);
    for (let run = 0; run < 20 && (await findings("osv/rescan", subject.digest)).length > 0; run++) await refresh();
    expect(await findings("osv/rescan", subject.digest)).toEqual([]);
  });

  it("finds SBOMs pushed before scanning existed, with a walk over the manifests the cron takes a step of per run", async () => {
    const subject = await image("osv/before", "v1");
    await attach("osv/before", subject, "application/spdx+json", spdx([{ purl: "pkg:npm/lodash@4.17.0" }]));
    // As a registry that had the SBOM before this feature: no scan, no findings, the walk not yet run.
    await env.DB.batch([
      env.DB.prepare("DELETE FROM osv_scans WHERE repository = 'osv/before'"),
      env.DB.prepare("DELETE FROM vulnerability_findings WHERE repository = 'osv/before'"),
      env.DB.prepare("UPDATE osv_database SET discovery_done = 0, discovery_repository = NULL, discovery_digest = NULL"),
    ]);
    expect(await findings("osv/before", subject.digest)).toEqual([]);
    const run = (await refresh()) as { discovered?: number };
    expect(run.discovered).toBeGreaterThanOrEqual(1);
    for (let pass = 0; pass < 20 && (await findings("osv/before", subject.digest)).length === 0; pass++) await refresh();
    expect(ids(await findings("osv/before", subject.digest))).toEqual(["OSV-NPM-LODASH lodash@4.17.0"]);
    const state = await env.DB.prepare("SELECT discovery_done FROM osv_database").first<number>("discovery_done");
    expect(state).toBe(1);
  });

  it("looks packages up, and takes stale scans, with index seeks", async () => {
    const plan = async (sql: string, ...values: unknown[]) =>
      (await env.DB.prepare(`EXPLAIN QUERY PLAN ${sql}`).bind(...values).all<{ detail: string }>()).results.map((row) => row.detail).join("; ");
    expect(
      await plan(
        "SELECT f.advisory, f.ranges, f.versions FROM json_each(?1) p JOIN osv_affected f ON f.ecosystem = p.value->>0 AND f.name = p.value->>1 JOIN osv_advisories a ON a.id = f.advisory WHERE a.withdrawn IS NULL",
        JSON.stringify([["npm", "lodash"]]),
      ),
    ).toMatch(/SEARCH f USING (COVERING )?INDEX osv_affected_package \(ecosystem=\? AND name=\?\)/);
    expect(await plan("SELECT repository, digest FROM osv_scans WHERE generation < ?1 ORDER BY generation, repository, digest LIMIT 10", 5)).toMatch(
      /SEARCH osv_scans USING (COVERING )?INDEX osv_scans_generation \(generation<\?\)/,
    );
  });

  it("writes nothing and bumps no generation when the same records are imported again", async () => {
    const before = (await (await send("/admin/osv", { headers: ADMIN })).json()) as { database: { generation: number } };
    const report = await importRecords(FIXTURE);
    expect(report).toMatchObject({ imported: 0, unchanged: FIXTURE.length });
    const after = (await (await send("/admin/osv", { headers: ADMIN })).json()) as { database: { generation: number; advisories: number } };
    expect(after.database.generation).toBe(before.database.generation);
  });
});

describe("importing OSV exports", () => {
  it("imports an export zip, resumes one with ?skip=, and refuses records of another ecosystem", async () => {
    const one = record("OSV-ZIP-ONE", "npm", "zip-one", [range("SEMVER", { introduced: "0" })]);
    const two = record("OSV-ZIP-TWO", "npm", "zip-two", [range("SEMVER", { introduced: "0" })]);
    const pypi = record("OSV-ZIP-PYPI", "PyPI", "zip-three", [range("ECOSYSTEM", { introduced: "0" })]);
    const files = { "OSV-ZIP-ONE.json": JSON.stringify(one), "OSV-ZIP-TWO.json": JSON.stringify(two), "OSV-ZIP-PYPI.json": JSON.stringify(pypi), "README.txt": "not a record" };
    const skipped = await importZip(files, "?ecosystem=npm&skip=1");
    expect(skipped.status).toBe(200);
    expect(await skipped.json()).toMatchObject({ received: 2, imported: 1, rejected: 1, entries: 4, next: null, problems: [{ id: "OSV-ZIP-PYPI", reason: "affects no npm package" }] });
    const whole = await importZip(files, "?ecosystem=npm");
    expect(await whole.json()).toMatchObject({ received: 3, imported: 1, unchanged: 1, rejected: 1 });
  });

  it("stops at the record bound or the clock and says which entry to resume from", async () => {
    const records = ["A", "B", "C"].map((letter) => record(`OSV-RESUME-${letter}`, "npm", `resume-${letter}`, [range("SEMVER", { introduced: "0" })]));
    const zip = zipSync(Object.fromEntries(records.map((item) => [`${item.id}.json`, new TextEncoder().encode(JSON.stringify(item))])));
    const stream = () => new Blob([zip]).stream();
    const first = await importOsvZip(env.DB, stream(), "npm", 0, { maxRecords: 2, deadline: Date.now() + 60_000 });
    expect(first).toMatchObject({ received: 2, imported: 2, next: 2 });
    const rest = await importOsvZip(env.DB, stream(), "npm", first.next!, { maxRecords: 2, deadline: Date.now() + 60_000 });
    expect(rest).toMatchObject({ received: 1, imported: 1, next: null });
    const late = await importOsvZip(env.DB, stream(), "npm", 1, { maxRecords: 100, deadline: 0 });
    expect(late).toMatchObject({ received: 0, imported: 0, next: 1 });
  });

  it("keeps OSV_FEEDS current from the cron: imports the export, then asks with its ETag", async () => {
    const url = "https://osv.test/npm/all.zip";
    const zip = zipSync({ "OSV-FEED-1.json": new TextEncoder().encode(JSON.stringify(record("OSV-FEED-1", "npm", "feed-package", [range("SEMVER", { introduced: "0" }, { fixed: "2.0.0" })]))) });
    const asked: (string | null)[] = [];
    const realFetch = globalThis.fetch;
    vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
      const request = new Request(input, init);
      if (request.url !== url) return realFetch(input, init);
      asked.push(request.headers.get("If-None-Match"));
      if (request.headers.get("If-None-Match") === '"v1"') return new Response(null, { status: 304 });
      return new Response(zip, { headers: { ETag: '"v1"', "Content-Type": "application/zip" } });
    });
    const feedEnv = { ...(env as unknown as Env), OSV_FEEDS: JSON.stringify([{ ecosystem: "npm", url }]) } as Env;
    const first = await refresh(feedEnv);
    expect(first.feeds[0]).toMatchObject({ url, status: "imported", report: { imported: 1, next: null } });
    const second = await refresh(feedEnv);
    expect(second.feeds[0]).toMatchObject({ url, status: "unchanged" });
    expect(asked).toEqual([null, '"v1"']);
    const status = (await (await send("/admin/osv", { headers: ADMIN }, feedEnv)).json()) as { feeds: { state: { etag: string; cursor: number } }[] };
    expect(status.feeds[0]?.state).toMatchObject({ etag: '"v1"', cursor: 0 });

    const subject = await image("osv/feed", "v1");
    await attach("osv/feed", subject, "application/spdx+json", spdx([{ purl: "pkg:npm/feed-package@1.0.0" }]));
    expect(ids(await findings("osv/feed", subject.digest))).toEqual(["OSV-FEED-1 feed-package@1.0.0"]);
  });
});

describe("hostile input", () => {
  it("cuts a zip bomb's entry off at the entry bound and imports the rest", async () => {
    const bomb = new Uint8Array(48 * 1024 * 1024).fill(0x20);
    const good = record("OSV-AFTER-BOMB", "npm", "after-bomb", [range("SEMVER", { introduced: "0" })]);
    const response = await importZip({ "BOMB.json": bomb, "OSV-AFTER-BOMB.json": JSON.stringify(good) });
    expect(response.status).toBe(200);
    const report = (await response.json()) as { imported: number; rejected: number; problems: { entry: string; reason: string }[] };
    expect(report).toMatchObject({ imported: 1, rejected: 1 });
    expect(report.problems[0]).toMatchObject({ entry: "BOMB.json" });
    expect(report.problems[0]!.reason).toMatch(/inflates to more than/);
  });

  it("scans at most 20,000 packages of an SBOM and says so; findings past the store's cap are counted, not kept", async () => {
    const subject = await image("osv/many", "v1");
    // 20,000 prereleases of lodash below its fix, then one more package past the bound.
    const packages = Array.from({ length: 20_000 }, (_, i) => ({ purl: `pkg:npm/lodash@4.17.${i % 21}-alpha.${i}` }));
    packages.push({ purl: "pkg:npm/minimist@1.2.5" });
    await attach("osv/many", subject, "application/spdx+json", spdx(packages));
    const scan = await scanOf(env.DB, "osv/many", subject.digest, "osv-scan");
    expect(scan?.problems[0]?.reason).toMatch(/more than 20000 packages, the rest not scanned/);
    expect(scan).toMatchObject({ scanned: true, findings: 2000, dropped: 18_000 });
    expect((await findings("osv/many", subject.digest)).some((finding) => finding.package === "minimist")).toBe(false);
  });

  it("refuses what is not a zip, nor JSON, nor a record, with OCI errors", async () => {
    const notZip = await send("/admin/osv/import", { method: "POST", headers: { ...ADMIN, "Content-Type": "application/zip" }, body: randomBytes(4096) });
    expect(notZip.status).toBe(400);
    expect(((await notZip.json()) as { errors: { code: string }[] }).errors[0]?.code).toBe("REQUEST_INVALID");
    const truncated = zipSync({ "A.json": new TextEncoder().encode(JSON.stringify(record("OSV-CUT", "npm", "cut", [range("SEMVER", { introduced: "0" })]))) }).subarray(0, 60);
    const cut = await send("/admin/osv/import", { method: "POST", headers: { ...ADMIN, "Content-Type": "application/zip" }, body: truncated });
    expect(cut.status).toBe(400);
    const garbage = await send("/admin/osv/import", { method: "POST", headers: { ...ADMIN, "Content-Type": "application/json" }, body: "{ nope" });
    expect(garbage.status).toBe(400);
    const scalar = await send("/admin/osv/import", { method: "POST", headers: { ...ADMIN, "Content-Type": "application/json" }, body: "42" });
    expect(scalar.status).toBe(400);
    const huge = await send("/admin/osv/import", { method: "POST", headers: { ...ADMIN, "Content-Type": "application/json" }, body: `[${" ".repeat(9 * 1024 * 1024)}]` });
    expect(huge.status).toBe(413);
    const badQuery = await send("/admin/osv/import?skip=-1", { method: "POST", headers: ADMIN, body: "[]" });
    expect(badQuery.status).toBe(400);
    const anonymous = await send("/admin/osv/import", { method: "POST", body: "[]" });
    expect(anonymous.status).toBe(401);
  });

  it("rejects malformed and oversized records one by one, keeping the good ones", async () => {
    const report = await importRecords([
      { modified: "2024-01-01T00:00:00Z" },
      { id: "OSV BAD ID", modified: "x" },
      { id: "OSV-NO-MODIFIED" },
      record("OSV-TOO-MANY-RANGES", "npm", "x", Array.from({ length: 101 }, () => range("SEMVER", { introduced: "0" }))),
      record("OSV-LONG-VERSION", "npm", "x", [range("SEMVER", { introduced: "1".repeat(200) })]),
      { id: "OSV-HUGE", modified: "2024-01-01T00:00:00Z", affected: [{ package: { ecosystem: "npm", name: "huge" }, versions: Array.from({ length: 40_000 }, (_, i) => `1.0.${i}-${"x".repeat(20)}`) }] },
      "not an object",
      record("OSV-GOOD-AMONG-BAD", "npm", "good-among-bad", [range("SEMVER", { introduced: "0" })]),
    ]);
    expect(report).toMatchObject({ received: 8, imported: 1, rejected: 7 });
  });

  it("names the setting when OSV_FEEDS or its bounds are invalid", () => {
    const base = env as unknown as Env;
    const problem = (vars: Partial<Env>) => {
      try {
        parseConfig({ ...base, ...vars } as Env);
        return "";
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        return (error as Error).message;
      }
    };
    expect(problem({ OSV_FEEDS: "not json" })).toMatch(/OSV_FEEDS: not JSON/);
    expect(problem({ OSV_FEEDS: JSON.stringify([{ ecosystem: "npm", url: "http://osv.test/all.zip" }]) })).toMatch(/OSV_FEEDS\.0\.url: must be an https URL/);
    expect(problem({ OSV_FEEDS: JSON.stringify([{ ecosystem: "npm", url: "https://osv.test/all.zip", extra: 1 }]) })).toMatch(/OSV_FEEDS\.0/);
    expect(problem({ OSV_RESCANS_PER_RUN: "lots" })).toMatch(/OSV_RESCANS_PER_RUN: must be a number of manifests/);
    expect(problem({ OSV_FEED_RECORDS_PER_RUN: "100000" })).toMatch(/OSV_FEED_RECORDS_PER_RUN/);
    expect(problem({ OSV_FEEDS: JSON.stringify([{ ecosystem: "npm", url: "https://osv.test/npm/all.zip" }]) })).toBe("");
  });
});
