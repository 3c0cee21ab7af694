import { isIndexMediaType } from "../manifests/schema";
import type { ManifestKind } from "./decide";

// Which manifests policies judge, from the bytes the pull serves (validated when they were pushed). Artifacts are
// exempt because they are what the checks read: refusing an unsigned signature manifest would stop every client
// from verifying the image it signs.

const IMAGE_CONFIGS = new Set(["application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"]);

/** Filesystem layers, compressed or not, distributable or not (OCI image-spec, Docker schema 2). */
function isFilesystemLayer(mediaType: unknown): boolean {
  return typeof mediaType === "string" && (mediaType.startsWith("application/vnd.oci.image.layer.") || mediaType.startsWith("application/vnd.docker.image.rootfs."));
}

interface ManifestShape {
  subject?: unknown;
  config?: { mediaType?: unknown };
  layers?: { mediaType?: unknown }[];
}

/**
 * An image (image config, a filesystem layer, no subject), an index (without a subject) or an artifact. A manifest
 * whose bytes are not at hand (kept in R2: larger than any artifact is) is judged by its media type.
 */
export function kindOf(mediaType: string, body: string | null): ManifestKind {
  let shape: ManifestShape | null = null;
  if (body !== null) {
    try {
      shape = JSON.parse(body) as ManifestShape;
    } catch {
      shape = null;
    }
  }
  if (shape !== null && typeof shape === "object" && shape.subject !== undefined) return "artifact";
  if (isIndexMediaType(mediaType)) return "index";
  if (shape === null) return "image";
  const runnable = IMAGE_CONFIGS.has(String(shape.config?.mediaType)) && Array.isArray(shape.layers) && shape.layers.some((layer) => isFilesystemLayer(layer?.mediaType));
  return runnable ? "image" : "artifact";
}
