// How the web UI writes sizes, times, digests and artifact types.

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

export function formatBytes(bytes: number | null): string {
  if (bytes === null) return "—";
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value < 10 ? value.toFixed(1) : Math.round(value)} ${UNITS[unit]}`;
}

/** sha256:0123456789ab: enough to tell digests apart at a glance. */
export function shortDigest(digest: string): string {
  const colon = digest.indexOf(":");
  return `${digest.slice(0, colon + 1)}${digest.slice(colon + 1, colon + 13)}`;
}

const STEPS: [number, string][] = [
  [60, "second"],
  [60, "minute"],
  [24, "hour"],
  [30, "day"],
  [12, "month"],
  [Number.POSITIVE_INFINITY, "year"],
];

export function timeAgo(millis: number, now = Date.now()): string {
  let value = Math.max(0, Math.floor((now - millis) / 1000));
  if (value < 10) return "just now";
  for (const [size, unit] of STEPS) {
    if (value < size) return `${value} ${unit}${value === 1 ? "" : "s"} ago`;
    value = Math.floor(value / size);
  }
  return "long ago";
}

/** A layer's media type without the prefix every layer shares ("tar+gzip" for OCI's gzip'd tar layers). */
export function shortMediaType(mediaType: string): string {
  return mediaType.replace(/^application\/vnd\.oci\.image\.layer\.v1\.|^application\/vnd\.docker\.image\.rootfs\./, "");
}

export function isoTime(millis: number): string {
  return new Date(millis).toISOString().replace(/\.\d{3}Z$/, "Z");
}

export type ArtifactTone = "sbom" | "signature" | "scan" | "attestation" | "other";

/** A name people know for what an artifactType is (SBOM, signature, scan report), and a colour for it. */
export function artifactKind(artifactType: string): { label: string; tone: ArtifactTone } {
  const type = artifactType.toLowerCase();
  if (/spdx|cyclonedx|sbom|syft/.test(type)) return { label: "SBOM", tone: "sbom" };
  if (/signature|\.sig|cosign|sigstore|notary|notation/.test(type)) return { label: "Signature", tone: "signature" };
  if (/sarif|vuln|scan|trivy|grype|vex/.test(type)) return { label: "Scan report", tone: "scan" };
  if (/in-toto|attestation|provenance|slsa|dsse/.test(type)) return { label: "Attestation", tone: "attestation" };
  return { label: artifactType, tone: "other" };
}
