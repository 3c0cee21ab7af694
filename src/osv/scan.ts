// Scanning a manifest's SBOMs against the OSV database: its SBOM referrers (SPDX, CycloneDX, in-toto statements of
// either) and, for an image index, the SBOM attestations docker buildx lists in it (attestation manifests, annotated
// `vnd.docker.reference.type: attestation-manifest`, whose layers are in-toto statements with an SPDX predicate) are
// read within bounds, their packages looked up by (ecosystem, name) in chunks and matched with each ecosystem's
// version rules, and the findings written to the findings store as source "osv-scan". The scan records the database
// generation it used, so that an import that changes the database makes it stale (src/osv/jobs.ts).
import type { Env } from "../config";
import { ImageIndex, ImageManifest, MediaTypes } from "../manifests/schema";
import type { Database } from "../storage/database";
import { OsvRecords, type AffectedMatchRow } from "../storage/osv-records";
import { replaceFindings, SEVERITIES, type Finding, type ScanProblem, type Severity } from "../vulnerabilities/store";
import { affects, type AffectedRange } from "./affected";
import type { ScannedPackage } from "./packages";
import { MAX_SBOM_PACKAGES, parseSbomJson, sbomContents } from "./sbom";

export const SCAN_SOURCE = "osv-scan";

/** Referrers of these artifact types are read as SBOMs (syft, trivy, oras attach, cosign attest, buildx). */
export const SBOM_ARTIFACT_TYPES = [
  "application/spdx+json",
  "text/spdx+json",
  "application/vnd.cyclonedx+json",
  "application/vnd.cyclonedx",
  "application/vnd.in-toto+json",
  "application/vnd.dsse.envelope.v1+json",
] as const;

const PREDICATE_TYPE = "in-toto.io/predicate-type";
const SBOM_PREDICATES = ["https://spdx.dev/Document", "https://cyclonedx.org/bom"];
const MAX_INDEX_BYTES = 4 * 1024 * 1024;

/** SBOM referrers read per manifest, layers per referrer, and bytes read in all (each SBOM is parsed whole). */
export const MAX_SBOMS = 4;
const MAX_LAYERS = 4;
export const MAX_SBOM_BYTES = 16 * 1024 * 1024;
const MAX_SBOM_MANIFEST_BYTES = 256 * 1024;
/** Packages matched per manifest over all its SBOMs. */
const MAX_PACKAGES = MAX_SBOM_PACKAGES;

export interface ScanResult {
  sboms: string[];
  packages: number;
  findings: number;
  problems: ScanProblem[];
  generation: number;
}

/** Scans one manifest now and stores the result; a manifest without SBOMs has its earlier scan, if any, cleared. */
export async function scanManifest(env: Env, db: Database, repository: string, digest: string, now = Date.now()): Promise<ScanResult> {
  const records = new OsvRecords(db);
  const generation = await records.generation();
  const referrers = await records.sbomReferrers(repository, digest, SBOM_ARTIFACT_TYPES, MAX_SBOMS);
  const sboms = [...referrers, ...(await attestationsOf(env, records, repository, digest))].slice(0, MAX_SBOMS);
  if (sboms.length === 0) {
    if (await records.scanState(repository, digest)) {
      await replaceFindings(db, repository, digest, SCAN_SOURCE, [], { inputs: "", scanned: false, now });
      await records.dropScan(repository, digest);
    }
    return { sboms, packages: 0, findings: 0, problems: [], generation };
  }
  const problems: ScanProblem[] = [];
  const packages = await packagesOf(env, records, repository, sboms, problems);
  const findings = await match(records, packages);
  const read = problems.length < sboms.length || packages.length > 0;
  await replaceFindings(db, repository, digest, SCAN_SOURCE, findings, { inputs: `osv:${generation}:${sboms.join(",")}`, scanned: read, problems, now });
  await records.saveScan(repository, digest, generation, sboms, packages.length, findings.length, now);
  return { sboms, packages: packages.length, findings: findings.length, problems, generation };
}

/** The packages of the SBOMs, deduplicated, at most MAX_PACKAGES; what could not be read is a problem of its SBOM. */
async function packagesOf(env: Env, records: OsvRecords, repository: string, sboms: string[], problems: ScanProblem[]): Promise<ScannedPackage[]> {
  const packages = new Map<string, ScannedPackage>();
  let budget = MAX_SBOM_BYTES;
  for (const sbom of sboms) {
    const stored = await records.manifestBytes(env.BLOBS, repository, sbom, MAX_SBOM_MANIFEST_BYTES);
    const manifest = stored ? ImageManifest.safeParse(jsonOf(stored.bytes)) : null;
    if (!manifest?.success) {
      problems.push({ report: sbom, reason: "the SBOM's manifest could not be read (not an image manifest, or too large)" });
      continue;
    }
    let found = false;
    const reasons: string[] = [];
    // An attestation manifest's provenance layers are no SBOM: layers that name another predicate type are passed over.
    const layers = manifest.data.layers.filter((layer) => {
      const predicate = layer.annotations?.[PREDICATE_TYPE];
      return predicate === undefined || SBOM_PREDICATES.some((prefix) => predicate.startsWith(prefix));
    });
    for (const layer of layers.slice(0, MAX_LAYERS)) {
      if (layer.size > budget) {
        reasons.push(`${layer.digest}: larger than the ${budget} bytes of SBOM left to read (at most ${MAX_SBOM_BYTES} per manifest)`);
        continue;
      }
      const blob = await records.blobBytes(env.BLOBS, repository, layer.digest, budget);
      if (typeof blob === "string") {
        reasons.push(`${layer.digest}: ${blob === "missing" ? "not stored in this repository" : "too large"}`);
        continue;
      }
      budget -= blob.byteLength;
      const contents = sbomContents(parseSbomJson(new TextDecoder().decode(blob)));
      if (!contents.ok) {
        reasons.push(`${layer.digest}: ${contents.reason}`);
        continue;
      }
      found = true;
      if (contents.truncated) reasons.push(`${layer.digest}: more than ${MAX_SBOM_PACKAGES} packages, the rest not scanned`);
      for (const item of contents.packages) {
        if (packages.size >= MAX_PACKAGES) break;
        packages.set(`${item.ecosystem}\n${item.names.join("\n")}\n${item.version}`, item);
      }
    }
    if (!found && reasons.length === 0) reasons.push("the SBOM manifest has no layers");
    if (reasons.length > 0) problems.push({ report: sbom, reason: reasons.join("; ").slice(0, 600) });
  }
  return [...packages.values()];
}

/** An image index's SBOM attestations (docker buildx --sbom=true): the attestation manifests it lists. */
async function attestationsOf(env: Env, records: OsvRecords, repository: string, digest: string): Promise<string[]> {
  const stored = await records.manifestBytes(env.BLOBS, repository, digest, MAX_INDEX_BYTES);
  if (!stored || (stored.mediaType !== MediaTypes.ociIndex && stored.mediaType !== MediaTypes.dockerManifestList)) return [];
  const index = ImageIndex.safeParse(jsonOf(stored.bytes));
  if (!index.success) return [];
  return index.data.manifests
    .filter((entry) => entry.annotations?.["vnd.docker.reference.type"] === "attestation-manifest")
    .map((entry) => entry.digest);
}

/** Whether a pushed manifest is scanned: a referrer's subject, or an index that may list SBOM attestations. */
export function scanTarget(pushed: { digest: string; mediaType: string }, subject: string | null): string | null {
  if (subject) return subject;
  return pushed.mediaType === MediaTypes.ociIndex || pushed.mediaType === MediaTypes.dockerManifestList ? pushed.digest : null;
}

/** The findings of the packages: each advisory once per package and version. */
async function match(records: OsvRecords, packages: ScannedPackage[]): Promise<Finding[]> {
  const byKey = new Map<string, ScannedPackage[]>();
  for (const item of packages) {
    for (const name of item.names) {
      const key = JSON.stringify([item.ecosystem, name]);
      const list = byKey.get(key);
      if (list) list.push(item);
      else byKey.set(key, [item]);
    }
  }
  const findings = new Map<string, Finding>();
  const pairs = [...byKey.keys()].map((key) => JSON.parse(key) as [string, string]);
  await records.affectedFor(pairs, (rows) => {
    for (const row of rows) {
      const entry = entryOf(row);
      if (!entry) continue;
      for (const item of byKey.get(JSON.stringify([row.ecosystem, row.name])) ?? []) {
        const key = `${row.advisory}\n${item.label}\n${item.version}`;
        if (findings.has(key)) continue;
        const hit = affects(entry, item.version);
        if (!hit) continue;
        findings.set(key, {
          id: row.advisory,
          package: item.label,
          installed: item.version,
          fixed: hit.fixed,
          severity: severity(row.severity ?? row.advisorySeverity),
          title: row.summary,
          report: null,
          suppressed: false,
        });
      }
    }
  });
  return [...findings.values()].sort((a, b) => SEVERITIES.indexOf(a.severity) - SEVERITIES.indexOf(b.severity) || a.id.localeCompare(b.id));
}

function entryOf(row: AffectedMatchRow): { ecosystem: string; ranges: AffectedRange[]; versions: string[] } | null {
  try {
    return { ecosystem: row.ecosystem, ranges: JSON.parse(row.ranges) as AffectedRange[], versions: JSON.parse(row.versions) as string[] };
  } catch {
    return null;
  }
}

/** A manifest's JSON (read whole: its annotations matter, unlike an SBOM's), or null. */
function jsonOf(bytes: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

function severity(value: string): Severity {
  return (SEVERITIES as readonly string[]).includes(value) ? (value as Severity) : "unknown";
}
