import { z } from "zod";
import { parseDigest } from "../references";
import { MANIFEST_MEDIA_TYPES, MediaTypes } from "./media-types";

export { MediaTypes };

/**
 * Content negotiation as Distribution does it where clients depend on it: an OCI manifest or index is not served to a
 * client whose Accept header names manifest types but neither that one nor a wildcard (docker 20.10's `manifest
 * inspect` asks for Docker types only, and would fail on OCI content). No Accept header, or one naming no manifest
 * type, takes what is stored; Docker types are always served.
 */
export function acceptsManifest(accept: string | null, mediaType: string): boolean {
  if (accept === null || (mediaType !== MediaTypes.ociManifest && mediaType !== MediaTypes.ociIndex)) return true;
  const types = accept.split(",").map((part) => part.split(";")[0]!.trim().toLowerCase());
  if (!types.some((type) => MANIFEST_MEDIA_TYPES.includes(type))) return true;
  return types.some((type) => type === mediaType || type === "*/*" || type === "application/*");
}

// RFC 6838 media type, as the OCI image spec requires for descriptors.
const MEDIA_TYPE = /^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$/;

const mediaType = z.string().regex(MEDIA_TYPE, "not a media type");
const digest = z.string().refine((value) => {
  try {
    parseDigest(value);
    return true;
  } catch {
    return false;
  }
}, "not a supported digest");
const annotations = z.record(z.string(), z.string());

// Unknown properties are kept and ignored, as the OCI image spec requires of implementations.
export const Descriptor = z.looseObject({
  mediaType,
  digest,
  size: z.number().int().nonnegative(),
  urls: z.array(z.string()).optional(),
  annotations: annotations.optional(),
  data: z.string().optional(),
  artifactType: mediaType.optional(),
  platform: z
    .looseObject({
      architecture: z.string(),
      os: z.string(),
      "os.version": z.string().optional(),
      "os.features": z.array(z.string()).optional(),
      variant: z.string().optional(),
    })
    .optional(),
});
export type Descriptor = z.infer<typeof Descriptor>;

const common = {
  schemaVersion: z.literal(2),
  artifactType: mediaType.optional(),
  subject: Descriptor.optional(),
  annotations: annotations.optional(),
};

export const ImageManifest = z.looseObject({
  ...common,
  mediaType: z.enum([MediaTypes.ociManifest, MediaTypes.dockerManifest]).optional(),
  config: Descriptor,
  layers: z.array(Descriptor),
});

export const ImageIndex = z.looseObject({
  ...common,
  mediaType: z.enum([MediaTypes.ociIndex, MediaTypes.dockerManifestList]).optional(),
  manifests: z.array(Descriptor),
});

export type ImageManifest = z.infer<typeof ImageManifest>;
export type ImageIndex = z.infer<typeof ImageIndex>;

export const SCHEMAS = {
  [MediaTypes.ociManifest]: ImageManifest,
  [MediaTypes.dockerManifest]: ImageManifest,
  [MediaTypes.ociIndex]: ImageIndex,
  [MediaTypes.dockerManifestList]: ImageIndex,
} as const;

export type ManifestMediaType = keyof typeof SCHEMAS;

export function isManifestMediaType(value: string): value is ManifestMediaType {
  return Object.hasOwn(SCHEMAS, value);
}

/** Whether the media type is a list of manifests (an OCI index or a Docker manifest list). */
export function isIndexMediaType(value: string): boolean {
  return value === MediaTypes.ociIndex || value === MediaTypes.dockerManifestList;
}

// Layers a registry is not expected to hold (foreign and non-distributable layers are fetched from their urls).
export function isNonDistributable(descriptor: Descriptor): boolean {
  return (
    descriptor.mediaType.startsWith("application/vnd.oci.image.layer.nondistributable.") ||
    descriptor.mediaType === "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
  );
}
