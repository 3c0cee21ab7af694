// What each manifest a push walks refers to: child manifests (an index or manifest list) or blobs (an image's config
// and layers, an artifact's blobs). Media types and digest encodings are the registry's own (src/).
import { createHash } from "node:crypto";
import { ENCODED } from "../src/grammar.ts";
import { MANIFEST_MEDIA_TYPES, MediaTypes } from "../src/manifests/media-types.ts";

/** What a registry is asked for when a manifest is fetched: every kind this tool can push. */
export const MANIFEST_ACCEPT = MANIFEST_MEDIA_TYPES.join(", ");

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
}
export interface Manifest {
  mediaType: string;
  digest: string;
  bytes: Buffer;
}

export const sha256Digest = (bytes: Uint8Array): string => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;

/** Whether `text` is a sha256 digest, the only algorithm this tool hashes. */
export const isSha256Digest = (text: string): boolean => text.startsWith("sha256:") && ENCODED.sha256.test(text.slice("sha256:".length));

/** Checks that a descriptor names a sha256 digest and a size. */
export function descriptor(value: unknown, where: string): Descriptor {
  const d = value as Descriptor;
  if (!d || typeof d.digest !== "string" || !isSha256Digest(d.digest) || !Number.isSafeInteger(d.size) || d.size < 0) {
    throw new Error(`${where}: not a sha256 descriptor: ${JSON.stringify(value)?.slice(0, 200)}`);
  }
  return d;
}

/** The media type of a manifest: its own mediaType field, else the one it was served or stored with. */
export function mediaTypeOf(bytes: Buffer, declared: string | undefined): string {
  const parsed = JSON.parse(bytes.toString("utf8"));
  if (typeof parsed.mediaType === "string") return parsed.mediaType;
  if (declared) return declared;
  return Array.isArray(parsed.manifests) ? MediaTypes.ociIndex : MediaTypes.ociManifest;
}

/** What a manifest refers to. Blobs with `urls` (foreign layers) are not pushed, as docker and skopeo do. */
export function referencesOf(manifest: Manifest): { children: Descriptor[]; blobs: Descriptor[] } {
  const parsed = JSON.parse(manifest.bytes.toString("utf8"));
  if (manifest.mediaType === MediaTypes.ociIndex || manifest.mediaType === MediaTypes.dockerManifestList) {
    const children = ((parsed.manifests ?? []) as unknown[]).map((child, i) => descriptor(child, `${manifest.digest} manifests[${i}]`));
    return { children, blobs: [] };
  }
  if (manifest.mediaType === MediaTypes.ociManifest || manifest.mediaType === MediaTypes.dockerManifest) {
    const blobs = [descriptor(parsed.config, `${manifest.digest} config`)];
    for (const [i, layer] of ((parsed.layers ?? []) as unknown[]).entries()) {
      const checked = descriptor(layer, `${manifest.digest} layers[${i}]`);
      if (!checked.urls?.length) blobs.push(checked);
    }
    return { children: [], blobs };
  }
  throw new Error(`${manifest.digest}: cannot push a manifest of media type ${manifest.mediaType}`);
}
