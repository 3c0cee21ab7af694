// An image in a `docker save` / `podman save` archive (docker-archive: manifest.json naming a config file and layer
// tars), pushed as a Docker schema 2 manifest. The layers are pushed as they are in the archive: uncompressed tars
// as application/vnd.docker.image.rootfs.diff.tar, whose digest is the config's diff_id, so the digests in the
// manifest, the config and the pushed blobs agree, a second push finds every layer already there, and an
// interrupted upload resumes from a file offset. (Gzipping while streaming would only make the digest known after
// the whole layer is compressed: no skipping by HEAD, no resume.) Layers already gzip'd in the archive stay gzip'd.
import { createHash } from "node:crypto";
import type { Readable } from "node:stream";
import { MediaTypes } from "../../src/manifests/media-types.ts";
import { sha256Digest, type Descriptor, type Manifest } from "../manifests.ts";
import type { Files } from "./oci-layout.ts";

interface ArchiveEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

/** The types of what a docker archive holds besides the manifest (Docker image manifest v2 schema 2). */
const DockerTypes = {
  config: "application/vnd.docker.container.image.v1+json",
  layer: "application/vnd.docker.image.rootfs.diff.tar",
  layerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
};

const CONTENT_ADDRESSED = /^blobs\/sha256\/([0-9a-f]{64})$/;

/** How a layer file is compressed, from its first bytes. */
function compressionOf(head: Buffer): "gzip" | "zstd" | "none" {
  if (head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head.readUInt32LE(0) === 0xfd2fb528) return "zstd";
  return "none";
}

async function firstBytes(stream: Readable, limit: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    parts.push(chunk);
    size += chunk.length;
    if (size >= limit) break;
  }
  stream.destroy();
  const head = Buffer.alloc(limit);
  Buffer.concat(parts).copy(head, 0, 0, limit);
  return head;
}

export class DockerArchiveSource {
  readonly files: Files;
  readonly description: string;
  readonly image: string | undefined;
  readonly log: (message: string) => void;
  /** digest → file in the archive */
  readonly paths = new Map<string, string>();

  /** `image`: a RepoTag, or the entry's position in manifest.json (0, 1, …). */
  constructor(files: Files, description: string, image: string | undefined, log: (message: string) => void) {
    this.files = files;
    this.description = description;
    this.image = image;
    this.log = log;
  }

  static async isArchive(files: Files): Promise<boolean> {
    return files.has("manifest.json");
  }

  async #entry(): Promise<ArchiveEntry> {
    const entries: ArchiveEntry[] = JSON.parse((await this.files.read("manifest.json")).toString("utf8"));
    if (!Array.isArray(entries) || entries.length === 0) throw new Error(`${this.description}: manifest.json lists no image`);
    const tags = entries.map((entry, i) => entry.RepoTags?.join(" ") || String(i)).join(", ");
    if (this.image === undefined) {
      if (entries.length > 1) throw new Error(`${this.description} holds ${entries.length} images (${tags}): choose one with --image`);
      return entries[0] as ArchiveEntry;
    }
    const wanted = this.image;
    const found = /^\d+$/.test(wanted)
      ? entries[Number(wanted)]
      : entries.find((entry) => entry.RepoTags?.some((tag) => tag === wanted || tag.endsWith(`/${wanted}`)));
    if (!found) throw new Error(`${this.description} has no image ${wanted} (it has: ${tags})`);
    return found;
  }

  /** The digest of a layer file: from its name when the archive is content addressed, else by reading it. */
  async #digestOf(path: string): Promise<string> {
    const named = CONTENT_ADDRESSED.exec(path);
    if (named) return `sha256:${named[1]}`;
    const hash = createHash("sha256");
    for await (const chunk of this.files.open(path, 0)) hash.update(chunk);
    return `sha256:${hash.digest("hex")}`;
  }

  async root(): Promise<Manifest> {
    const entry = await this.#entry();
    const configBytes = await this.files.read(entry.Config);
    const config = JSON.parse(configBytes.toString("utf8"));
    const diffIds: unknown[] = Array.isArray(config?.rootfs?.diff_ids) ? config.rootfs.diff_ids : [];
    if (diffIds.length !== entry.Layers.length) {
      throw new Error(`${this.description}: the config lists ${diffIds.length} layers, manifest.json ${entry.Layers.length}`);
    }
    const configDigest = sha256Digest(configBytes);
    this.paths.set(configDigest, entry.Config);

    const layers: Descriptor[] = [];
    for (const [i, path] of entry.Layers.entries()) {
      const compression = compressionOf(await firstBytes(this.files.open(path, 0), 4));
      if (compression === "zstd") throw new Error(`${this.description}: ${path} is zstd-compressed, which Docker schema 2 cannot describe`);
      this.log(`hashing ${path}`);
      const digest = await this.#digestOf(path);
      if (compression === "none" && digest !== diffIds[i]) {
        throw new Error(`${this.description}: ${path} hashes to ${digest} but the config's diff_id is ${diffIds[i]}: the archive is damaged`);
      }
      this.paths.set(digest, path);
      const mediaType = compression === "gzip" ? DockerTypes.layerGzip : DockerTypes.layer;
      layers.push({ mediaType, digest, size: await this.files.size(path) });
    }

    const manifest = {
      schemaVersion: 2,
      mediaType: MediaTypes.dockerManifest,
      config: { mediaType: DockerTypes.config, digest: configDigest, size: configBytes.length },
      layers,
    };
    const bytes = Buffer.from(JSON.stringify(manifest, null, 3));
    return { mediaType: MediaTypes.dockerManifest, digest: sha256Digest(bytes), bytes };
  }

  async manifest(): Promise<Manifest> {
    throw new Error(`${this.description}: a docker archive holds single images, not indexes`);
  }

  async openBlob(blob: Descriptor, start: number): Promise<Readable> {
    const path = this.paths.get(blob.digest);
    if (!path) throw new Error(`${this.description} has no blob ${blob.digest}`);
    return this.files.open(path, start);
  }
}
