// An image in an OCI image layout (image-spec image-layout.md): a directory, or a tar of one (oci-archive, and what
// `docker save` writes since Docker 25). index.json lists the images; blobs live under blobs/<algorithm>/<hex>.
import type { Readable } from "node:stream";
import { MediaTypes } from "../../src/manifests/media-types.ts";
import { descriptor, mediaTypeOf, sha256Digest, type Descriptor, type Manifest } from "../manifests.ts";
import type { DirectoryFiles } from "./directory-files.ts";
import type { TarFiles } from "./tar-files.ts";

export type Files = DirectoryFiles | TarFiles;

/** An entry of index.json, as far as choosing an image goes. */
interface IndexEntry {
  digest: string;
  mediaType?: string;
  size: number;
  annotations?: Record<string, string>;
}

const REF_NAME = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME = "io.containerd.image.name";

export const blobPath = (digest: string): string => `blobs/${digest.replace(":", "/")}`;

export class OciLayoutSource {
  readonly files: Files;
  readonly description: string;
  readonly image: string | undefined;

  /** `image`: which image of index.json, by its ref name, containerd name or digest. */
  constructor(files: Files, description: string, image: string | undefined) {
    this.files = files;
    this.description = description;
    this.image = image;
  }

  static async isLayout(files: Files): Promise<boolean> {
    return (await files.has("oci-layout")) && (await files.has("index.json"));
  }

  async root(): Promise<Manifest> {
    const index = JSON.parse((await this.files.read("index.json")).toString("utf8"));
    const listed: IndexEntry[] = Array.isArray(index.manifests) ? index.manifests : [];
    const name = (entry: IndexEntry) => entry.annotations?.[REF_NAME] ?? entry.annotations?.[CONTAINERD_NAME];
    const chosen = this.image === undefined
      ? listed.length === 1 ? listed[0] : undefined
      : listed.find((entry) => entry.digest === this.image || name(entry) === this.image || entry.annotations?.[CONTAINERD_NAME]?.endsWith(`:${this.image}`));
    if (!chosen) {
      const names = listed.map((entry) => name(entry) ?? entry.digest).join(", ") || "none";
      throw new Error(
        this.image === undefined
          ? `${this.description} holds ${listed.length} images (${names}): choose one with --image`
          : `${this.description} has no image ${this.image} (it has: ${names})`,
      );
    }
    return this.manifest(descriptor({ mediaType: MediaTypes.ociManifest, ...chosen }, `${this.description} index.json`));
  }

  async manifest(wanted: Descriptor): Promise<Manifest> {
    const bytes = await this.files.read(blobPath(wanted.digest));
    if (sha256Digest(bytes) !== wanted.digest) throw new Error(`${this.description}: ${wanted.digest} does not hold the bytes it names`);
    return { digest: wanted.digest, bytes, mediaType: mediaTypeOf(bytes, wanted.mediaType) };
  }

  async openBlob(blob: Descriptor, start: number): Promise<Readable> {
    return this.files.open(blobPath(blob.digest), start);
  }

  async hasBlob(blob: Descriptor): Promise<boolean> {
    return this.files.has(blobPath(blob.digest));
  }
}
