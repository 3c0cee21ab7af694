import type { Registry } from "../context";
import { RegistryError } from "../errors";
import { isIndexMediaType, isManifestMediaType, SCHEMAS, type Descriptor, type ImageIndex, type ImageManifest } from "../manifests/schema";
import { parseDigest, parseReference } from "../references";
import type { Verdict } from "../signatures/verdicts";
import type { VulnerabilityDetails } from "../vulnerabilities/reports";
import type { ReferrerRecord } from "../storage/manifest-records";
import { SearchRecords } from "../storage/search-records";
import { IMAGE_CONFIG_MEDIA_TYPES, readImageConfig, type ConfigRead } from "./image-config";

export interface PlatformEntry {
  /** "os/arch[/variant]", or "attestation" for buildx's attestation manifests. */
  platform: string;
  digest: string;
  mediaType: string;
  /** Bytes of that image's config and layers, when it is stored. */
  size: number | null;
  stored: boolean;
}

export interface LayerEntry {
  mediaType: string;
  digest: string;
  size: number;
  /** An artifact's file name (org.opencontainers.image.title). */
  title: string | null;
  /** The build step that made the layer, from the config's history. */
  createdBy: string | null;
}

export interface ReferrerGroup {
  artifactType: string;
  referrers: ReferrerRecord[];
}

/** What a tag or manifest page shows. */
export interface ManifestDetails {
  repository: string;
  tag: string | null;
  digest: string;
  mediaType: string;
  /** Bytes of the manifest itself. */
  manifestSize: number;
  pushedAt: number;
  /** Bytes of config and layers (an index: of all its images), when known. */
  size: number | null;
  kind: "index" | "image" | "artifact";
  artifactType: string | null;
  /** For a referrer (signature, SBOM, ...): the digest of the manifest it is attached to. */
  subject: string | null;
  annotations: Record<string, string>;
  platforms: PlatformEntry[];
  config: (ConfigRead & { descriptor: Descriptor }) | null;
  layers: LayerEntry[];
  referrers: ReferrerGroup[];
  /** Its signatures' verdict (src/signatures/verdicts.ts). */
  signature: Verdict;
  /** Its vulnerability findings, from attached reports and scans (src/vulnerabilities/). */
  vulnerabilities: VulnerabilityDetails;
}

const ATTESTATION = "attestation-manifest";

/** Reads a manifest by tag or digest with what hangs off it: images of an index, config, layers, referrers. */
export async function describeManifest(registry: Registry, repository: string, reference: string): Promise<ManifestDetails> {
  const records = new SearchRecords(registry.db.current);
  const target = parseReference(reference);
  const tag = "tag" in target ? await records.tag(repository, target.tag) : null;
  if ("tag" in target && !tag) throw new RegistryError("MANIFEST_UNKNOWN", { repository, reference });
  const digest = tag?.digest ?? ("digest" in target ? target.digest.digest : "");
  const { record, body } = await registry.manifests.resolve(repository, { digest: parseDigest(digest) });
  if (!isManifestMediaType(record.mediaType)) throw new Error(`manifest ${digest} has media type ${record.mediaType}`);
  const manifest = SCHEMAS[record.mediaType].parse(JSON.parse(await new Response(await body()).text()));
  const isIndex = isIndexMediaType(record.mediaType);
  const children = isIndex ? (manifest as ImageIndex).manifests : [];
  const summaries = await records.summaries(repository, [digest, ...children.map((child) => child.digest)]);
  const own = summaries.get(digest);

  const details: ManifestDetails = {
    repository,
    tag: tag?.name ?? null,
    digest,
    mediaType: record.mediaType,
    manifestSize: record.size,
    pushedAt: tag?.pushedAt ?? own?.createdAt ?? 0,
    size: own?.size ?? null,
    kind: "index",
    artifactType: own?.artifactType ?? null,
    subject: own?.subject ?? null,
    annotations: manifest.annotations ?? {},
    platforms: children.map((child) => ({
      platform:
        child.annotations?.["vnd.docker.reference.type"] === ATTESTATION
          ? "attestation"
          : child.platform
            ? [child.platform.os, child.platform.architecture, child.platform.variant].filter(Boolean).join("/")
            : "unknown",
      digest: child.digest,
      mediaType: child.mediaType,
      size: summaries.get(child.digest)?.size ?? null,
      stored: summaries.has(child.digest),
    })),
    config: null,
    layers: [],
    referrers: groupReferrers((await registry.manifests.referrers(repository, parseDigest(digest), null)).items),
    signature: await registry.signatures.verdict(repository, digest),
    vulnerabilities: await registry.vulnerabilities.details(repository, digest),
  };
  if (isIndex) return details;

  const image = manifest as ImageManifest;
  const isImage = IMAGE_CONFIG_MEDIA_TYPES.has(image.config.mediaType) && image.artifactType === undefined;
  details.kind = isImage ? "image" : "artifact";
  details.artifactType = isImage ? null : (image.artifactType ?? image.config.mediaType);
  const config = isImage ? await readImageConfig(registry.blobs, repository, image.config.digest) : null;
  if (config) details.config = { ...config, descriptor: image.config };
  // History entries that made no layer are skipped, so the rest line up with the layers.
  const steps = (config?.config?.history ?? []).filter((step) => !step.empty_layer);
  const aligned = steps.length === image.layers.length;
  details.layers = image.layers.map((layer, index) => ({
    mediaType: layer.mediaType,
    digest: layer.digest,
    size: layer.size,
    title: layer.annotations?.["org.opencontainers.image.title"] ?? null,
    createdBy: aligned ? (steps[index]?.created_by ?? null) : null,
  }));
  return details;
}

function groupReferrers(referrers: ReferrerRecord[]): ReferrerGroup[] {
  const groups = new Map<string, ReferrerRecord[]>();
  for (const referrer of referrers) {
    const type = referrer.artifactType ?? "unknown";
    groups.set(type, [...(groups.get(type) ?? []), referrer]);
  }
  return [...groups].map(([artifactType, items]) => ({ artifactType, referrers: items })).sort((a, b) => a.artifactType.localeCompare(b.artifactType));
}
