import { digestOf } from "../../src/digest";

// The content the OCI distribution-spec conformance suite (v1.1.x, conformance/setup.go) pushes, rebuilt from its
// description: one config and one manifest per workflow, a shared layer, two small blobs for uploads, and the
// artifacts of the referrers tests. The JSON is shaped as the suite's Go structs marshal it (tab-indented, fields in
// declaration order, `newUnspecifiedField` on every descriptor, `data` on the config) because a registry must keep
// and serve fields it does not know.

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_EMPTY = "application/vnd.oci.empty.v1+json";

export const ARTIFACT_TYPE_A = "application/vnd.conformance.artifact.a";
export const ARTIFACT_TYPE_B = "application/vnd.conformance.artifact.b";
export const ARTIFACT_TYPE_INDEX = "application/vnd.conformance.artifact.index";
export const ANNOTATION = "org.opencontainers.conformance.test";

/** The reference the suite reads as "a manifest that does not exist": not even a valid tag. */
export const NONEXISTENT_MANIFEST = ".INVALID_MANIFEST_NAME";
export const TEST_TAG = "tagtest0";
export const EMPTY_LAYER_TAG = "emptylayer";

export interface Content {
  bytes: Uint8Array;
  digest: string;
  size: number;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

const encoder = new TextEncoder();

async function content(bytes: Uint8Array | string): Promise<Content> {
  const data = typeof bytes === "string" ? encoder.encode(bytes) : bytes;
  return { bytes: data, digest: await digestOf(data), size: data.byteLength };
}

const json = (value: unknown) => JSON.stringify(value, null, "\t");
const base64 = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes));

function randomText(length: number): string {
  const letters = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-";
  return [...crypto.getRandomValues(new Uint8Array(length))].map((byte) => letters[byte % letters.length]).join("");
}

/** Bytes that are new on every run, as the suite's seeded random blobs are. */
export function randomBlob(size: number): Promise<Content> {
  const bytes = new Uint8Array(size);
  for (let at = 0; at < size; at += 65536) crypto.getRandomValues(bytes.subarray(at, Math.min(at + 65536, size)));
  return content(bytes);
}

/** A blob pushed in two PATCHes: the first half plus one byte, then the rest (setup.go's setupChunkedBlob). */
export async function chunkedBlob(size: number) {
  const blob = await randomBlob(size);
  const split = Math.floor(size / 2) + 1;
  return {
    blob,
    first: blob.bytes.subarray(0, split),
    second: blob.bytes.subarray(split),
    firstRange: `0-${split - 1}`,
    secondRange: `${split}-${size - 1}`,
  };
}

/** A descriptor as the suite's Go struct marshals it: an unknown field, null when unset. */
function descriptor(mediaType: string, target: Content, extra: Record<string, unknown> = {}) {
  return { mediaType, digest: target.digest, size: target.size, ...extra, newUnspecifiedField: extra.newUnspecifiedField ?? null };
}

export async function conformanceFixtures() {
  // A fresh author per config gives each its own digest; the workflows use configs and manifests 0 to 4 as the suite
  // does (Pull 0 and 1, Push 1, Content Discovery 2 and 4, Content Management 3).
  const configs = await Promise.all(
    Array.from({ length: 5 }, () =>
      content(json({ author: randomText(16), architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } })),
    ),
  );
  // The registry never opens a layer: any bytes stand for the suite's small gzipped tarball.
  const layer = await content("a layer the conformance tests push; its bytes are opaque to the registry\n");
  const manifests = await Promise.all(
    configs.map((config) =>
      content(
        json({
          schemaVersion: 2,
          mediaType: OCI_MANIFEST,
          config: descriptor(OCI_CONFIG, config, { data: base64(config.bytes), newUnspecifiedField: base64(encoder.encode("hello world")) }),
          layers: [descriptor(OCI_LAYER, layer)],
        }),
      ),
    ),
  );
  // No mediaType field: the registry takes the type from Content-Type.
  const emptyLayerManifest = await content(
    json({
      schemaVersion: 2,
      config: descriptor(OCI_CONFIG, configs[1]!, { data: base64(configs[1]!.bytes), newUnspecifiedField: base64(encoder.encode("hello world")) }),
      layers: [],
    }),
  );

  const emptyJson = await content("{}");
  const refBlobA = await content("the payload of conformance artifact A");
  const refBlobB = await content("the payload of conformance artifact B");
  const subject = descriptor(OCI_MANIFEST, manifests[4]!);
  const danglingSubject = descriptor(OCI_MANIFEST, manifests[3]!);
  const emptyDescriptor = descriptor(OCI_EMPTY, emptyJson);

  // Artifacts whose type is their config's media type, and artifacts with artifactType and the empty config.
  const configArtifact = (type: string, blob: Content, note: string) =>
    content(
      json({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: descriptor(type, blob),
        layers: [emptyDescriptor],
        subject,
        annotations: { [ANNOTATION]: note },
      }),
    );
  const layerArtifact = (type: string, blob: Content, on: Descriptor, note?: string) =>
    content(
      json({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: type,
        config: emptyDescriptor,
        layers: [descriptor(type, blob)],
        subject: on,
        ...(note !== undefined && { annotations: { [ANNOTATION]: note } }),
      }),
    );
  const referrers = {
    configA: await configArtifact(ARTIFACT_TYPE_A, refBlobA, "test config a"),
    configB: await configArtifact(ARTIFACT_TYPE_B, refBlobB, "test config b"),
    layerA: await layerArtifact(ARTIFACT_TYPE_A, refBlobA, subject, "test layer a"),
    layerB: await layerArtifact(ARTIFACT_TYPE_B, refBlobB, subject, "test layer b"),
    // Refers to manifests[3], which is not pushed before it is.
    dangling: await layerArtifact(ARTIFACT_TYPE_B, refBlobB, danglingSubject),
  };
  const referrerIndex = await content(
    json({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      artifactType: ARTIFACT_TYPE_INDEX,
      manifests: [descriptor(OCI_MANIFEST, referrers.configA), descriptor(OCI_MANIFEST, referrers.layerA)],
      subject,
      annotations: { [ANNOTATION]: "test index" },
    }),
  );
  // Later v1.1.x Push cases: an index with an artifactType listing manifest 0, and an index listing that index.
  const artifactIndex = await content(
    json({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      artifactType: ARTIFACT_TYPE_INDEX,
      manifests: [descriptor(OCI_MANIFEST, manifests[0]!)],
      annotations: { [ANNOTATION]: "test index" },
    }),
  );
  const nestedIndex = await content(
    json({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      artifactType: ARTIFACT_TYPE_INDEX,
      manifests: [descriptor(OCI_INDEX, artifactIndex)],
      annotations: { [ANNOTATION]: "test index" },
    }),
  );
  // Later v1.1.x Push: an image (config 0 and the layer) whose subject, manifest 3, is not pushed.
  const danglingImage = await content(
    json({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: descriptor(OCI_CONFIG, configs[0]!),
      layers: [descriptor(OCI_LAYER, layer)],
      subject: danglingSubject,
    }),
  );
  const annotationOf: Record<string, string> = {
    [referrers.configA.digest]: "test config a",
    [referrers.configB.digest]: "test config b",
    [referrers.layerA.digest]: "test layer a",
    [referrers.layerB.digest]: "test layer b",
    [referrerIndex.digest]: "test index",
  };

  return {
    configs,
    layer,
    manifests,
    emptyLayerManifest,
    emptyJson,
    refBlobA,
    refBlobB,
    referrers,
    referrerIndex,
    artifactIndex,
    nestedIndex,
    danglingImage,
    annotationOf,
    /** A digest no blob or manifest has: sha256("hello world"). */
    dummyDigest: (await content("hello world")).digest,
    blobA: await randomBlob(42),
  };
}

export type ConformanceFixtures = Awaited<ReturnType<typeof conformanceFixtures>>;
