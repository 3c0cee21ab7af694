// An image in an OCI image layout (image-spec image-layout.md): a directory, or a tar of one (oci-archive, and what
// `docker save` writes since Docker 25). index.json lists the images; blobs live under blobs/<algorithm>/<hex>.
import { MediaTypes, descriptor, mediaTypeOf, sha256Digest } from "../manifests.mjs";

/** @typedef {import("../manifests.mjs").Descriptor} Descriptor */
/** @typedef {import("../manifests.mjs").Manifest} Manifest */
/** @typedef {import("./directory-files.mjs").DirectoryFiles | import("./tar-files.mjs").TarFiles} Files */

const REF_NAME = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME = "io.containerd.image.name";

/** @param {string} digest */
export const blobPath = (digest) => `blobs/${digest.replace(":", "/")}`;

export class OciLayoutSource {
  /**
   * @param {Files} files
   * @param {string} description
   * @param {string | undefined} image which image of index.json: its ref name, containerd name or digest
   */
  constructor(files, description, image) {
    this.files = files;
    this.description = description;
    this.image = image;
  }

  /** @param {Files} files */
  static async isLayout(files) {
    return (await files.has("oci-layout")) && (await files.has("index.json"));
  }

  async root() {
    const index = JSON.parse((await this.files.read("index.json")).toString("utf8"));
    /** @type {{ digest: string, mediaType?: string, size: number, annotations?: Record<string, string> }[]} */
    const listed = Array.isArray(index.manifests) ? index.manifests : [];
    const name = (/** @type {(typeof listed)[number]} */ entry) => entry.annotations?.[REF_NAME] ?? entry.annotations?.[CONTAINERD_NAME];
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

  /**
   * @param {Descriptor} wanted
   * @returns {Promise<Manifest>}
   */
  async manifest(wanted) {
    const bytes = await this.files.read(blobPath(wanted.digest));
    if (sha256Digest(bytes) !== wanted.digest) throw new Error(`${this.description}: ${wanted.digest} does not hold the bytes it names`);
    return { digest: wanted.digest, bytes, mediaType: mediaTypeOf(bytes, wanted.mediaType) };
  }

  /**
   * @param {Descriptor} blob
   * @param {number} start
   */
  async openBlob(blob, start) {
    return this.files.open(blobPath(blob.digest), start);
  }

  /** @param {Descriptor} blob */
  async hasBlob(blob) {
    return this.files.has(blobPath(blob.digest));
  }
}
