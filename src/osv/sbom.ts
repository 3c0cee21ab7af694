// The packages an SBOM lists: SPDX 2.x JSON (packages[] with a purl in externalRefs and versionInfo), CycloneDX JSON
// (components[], nested ones too, with purl and version), either wrapped in an in-toto statement (its predicate), or
// in a DSSE envelope around one (cosign attest, docker buildx --sbom). At most MAX_SBOM_PACKAGES per SBOM.
import { packageOf, parsePackageUrl, type ScannedPackage } from "./packages";

export const MAX_SBOM_PACKAGES = 20_000;
/** Nesting of CycloneDX components followed. */
const MAX_COMPONENT_DEPTH = 16;

export type SbomContents = { ok: true; format: "spdx" | "cyclonedx"; packages: ScannedPackage[]; truncated: boolean } | { ok: false; reason: string };

// Parts of SBOMs that can be large and that scanning never reads: dropped while parsing, so they are never all held.
const UNREAD = new Set(["files", "relationships", "dependencies", "snippets", "hasFiles", "licenses", "hashes", "checksums", "evidence", "services", "annotations", "externalReferences"]);

/** Parses JSON text, dropping what scanning never reads; null when it is not JSON. */
export function parseSbomJson(text: string): unknown {
  try {
    return JSON.parse(text, (key, value: unknown) => (UNREAD.has(key) ? undefined : value));
  } catch {
    return null;
  }
}

export function sbomContents(document: unknown, envelopes = 2): SbomContents {
  if (!isObject(document)) return { ok: false, reason: "not a JSON object" };
  if (typeof document.payloadType === "string" && typeof document.payload === "string" && envelopes > 0) {
    let text: string;
    try {
      text = new TextDecoder().decode(Uint8Array.from(atob(document.payload), (char) => char.charCodeAt(0)));
    } catch {
      return { ok: false, reason: "the DSSE envelope's payload is not base64" };
    }
    return sbomContents(parseSbomJson(text), envelopes - 1);
  }
  if (typeof document._type === "string" && document._type.includes("in-toto.io/Statement") && envelopes > 0) {
    return sbomContents(document.predicate, envelopes - 1);
  }
  if (typeof document.spdxVersion === "string") return spdxPackages(document);
  if (document.bomFormat === "CycloneDX") return cyclonedxPackages(document);
  return { ok: false, reason: "neither an SPDX nor a CycloneDX JSON document (nor an in-toto statement of one)" };
}

function spdxPackages(document: Record<string, unknown>): SbomContents {
  const packages: ScannedPackage[] = [];
  let truncated = false;
  for (const item of Array.isArray(document.packages) ? document.packages : []) {
    if (!isObject(item)) continue;
    const refs = Array.isArray(item.externalRefs) ? item.externalRefs : [];
    const ref = refs.find((candidate) => isObject(candidate) && candidate.referenceType === "purl" && typeof candidate.referenceLocator === "string") as
      | { referenceLocator: string }
      | undefined;
    const purl = ref ? parsePackageUrl(ref.referenceLocator) : null;
    const found = purl ? packageOf(purl, typeof item.versionInfo === "string" ? item.versionInfo : "") : null;
    if (!found) continue;
    if (packages.length >= MAX_SBOM_PACKAGES) {
      truncated = true;
      break;
    }
    packages.push(found);
  }
  return { ok: true, format: "spdx", packages, truncated };
}

function cyclonedxPackages(document: Record<string, unknown>): SbomContents {
  const packages: ScannedPackage[] = [];
  let truncated = false;
  const walk = (components: unknown, depth: number): void => {
    if (!Array.isArray(components) || depth > MAX_COMPONENT_DEPTH) return;
    for (const component of components) {
      if (truncated) return;
      if (!isObject(component)) continue;
      const purl = typeof component.purl === "string" ? parsePackageUrl(component.purl) : null;
      const found = purl ? packageOf(purl, typeof component.version === "string" ? component.version : "", trivySource(component.properties)) : null;
      if (found) {
        if (packages.length >= MAX_SBOM_PACKAGES) truncated = true;
        else packages.push(found);
      }
      walk(component.components, depth + 1);
    }
  };
  walk(document.components, 0);
  return { ok: true, format: "cyclonedx", packages, truncated };
}

/** Trivy's CycloneDX properties naming a distribution package's source package. */
function trivySource(properties: unknown): { name?: string; version?: string } {
  if (!Array.isArray(properties)) return {};
  const value = (name: string) => {
    const found = properties.find((property) => isObject(property) && property.name === name && typeof property.value === "string") as { value: string } | undefined;
    return found?.value;
  };
  const version = value("aquasecurity:trivy:SrcVersion");
  const release = value("aquasecurity:trivy:SrcRelease");
  const epoch = value("aquasecurity:trivy:SrcEpoch");
  const full = version && `${epoch && epoch !== "0" ? `${epoch}:` : ""}${version}${release ? `-${release}` : ""}`;
  return { name: value("aquasecurity:trivy:SrcName"), version: full };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
