// Builds OCI image layouts on disk (image-spec "image-layout.md"): an `oci-layout` file, `index.json` and
// content-addressed blobs under blobs/sha256/. Layers are real gzip'd tar archives of pseudo-random bytes, streamed
// so that tens of MiB never sit in memory at once. The same seed always gives the same bytes.
import { createCipheriv, createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";

export const MediaTypes = {
  manifest: "application/vnd.oci.image.manifest.v1+json",
  index: "application/vnd.oci.image.index.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  layerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  empty: "application/vnd.oci.empty.v1+json",
} as const;

export const REF_NAME = "org.opencontainers.image.ref.name";

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
  artifactType?: string;
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface LayerInfo extends Descriptor {
  /** sha256 of the uncompressed tar: the layer's entry in the config's rootfs.diff_ids. */
  diffId: string;
  /** Bytes of random file content inside the tar (what was asked for). */
  contentSize: number;
}

export interface BuiltImage {
  /** The descriptor of the image manifest. */
  manifest: Descriptor;
  /** The manifest's exact bytes. */
  manifestBytes: Buffer;
  config: Descriptor;
  layers: LayerInfo[];
  /** Every blob digest the image needs (manifest, config, layers). */
  blobs: string[];
}

export interface BuiltIndex {
  /** The descriptor of the image index. */
  index: Descriptor;
  indexBytes: Buffer;
  images: (BuiltImage & { platform: Platform })[];
  /** Every blob digest the index needs (the index itself, and all of each image's blobs). */
  blobs: string[];
}

export interface ImageOptions {
  /** Sizes, in bytes, of the random file inside each layer's tar. */
  layers: number[];
  /** Tag recorded in index.json (org.opencontainers.image.ref.name); omit to not list the image there. */
  tag?: string;
  platform?: Platform;
  /** Seeds the pseudo-random content; images with different seeds share no layers. */
  seed?: string;
}

export interface IndexOptions {
  platforms: Platform[];
  tag?: string;
  /** Layer sizes of each per-platform image. */
  layers?: number[];
  seed?: string;
}

export const sha256Hex = (bytes: Uint8Array | string) => createHash("sha256").update(bytes).digest("hex");
export const sha256Digest = (bytes: Uint8Array | string) => `sha256:${sha256Hex(bytes)}`;

/** sha256 of a file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  await pipeline(createReadStream(path), hash);
  return `sha256:${hash.digest("hex")}`;
}

export const blobPath = (dir: string, digest: string) => {
  const [algorithm, encoded] = digest.split(":");
  return join(dir, "blobs", algorithm!, encoded!);
};

/** Pseudo-random bytes: AES-256-CTR keystream keyed by the seed. Fast and deterministic. */
export function randomBytesStream(seed: string, size: number, chunkSize = 256 * 1024): Readable {
  const cipher = createCipheriv("aes-256-ctr", createHash("sha256").update(seed).digest(), Buffer.alloc(16));
  const zeros = Buffer.alloc(chunkSize);
  let left = size;
  return new Readable({
    read() {
      if (left === 0) {
        this.push(null);
        return;
      }
      const n = Math.min(left, chunkSize);
      left -= n;
      this.push(cipher.update(n === chunkSize ? zeros : zeros.subarray(0, n)));
    },
  });
}

export function randomBytes(seed: string, size: number): Buffer {
  const cipher = createCipheriv("aes-256-ctr", createHash("sha256").update(seed).digest(), Buffer.alloc(16));
  return cipher.update(Buffer.alloc(size));
}

// ---------------------------------------------------------------------------------------------------------------
// tar (POSIX ustar)

const BLOCK = 512;
const FIXED_MTIME = 1_700_000_000; // reproducible archives

function octal(value: number, width: number): string {
  // width includes the terminating NUL
  return value.toString(8).padStart(width - 1, "0") + "\0";
}

/** One ustar header block. */
export function tarHeader(name: string, size: number, type: "file" | "directory" = "file"): Buffer {
  if (Buffer.byteLength(name) > 100) throw new Error(`tar entry name too long: ${name}`);
  const header = Buffer.alloc(BLOCK);
  header.write(name, 0, 100, "utf8");
  header.write(octal(type === "directory" ? 0o755 : 0o644, 8), 100, "ascii");
  header.write(octal(0, 8), 108, "ascii"); // uid
  header.write(octal(0, 8), 116, "ascii"); // gid
  header.write(octal(type === "directory" ? 0 : size, 12), 124, "ascii");
  header.write(octal(FIXED_MTIME, 12), 136, "ascii");
  header.write("        ", 148, "ascii"); // checksum field counts as spaces while summing
  header.write(type === "directory" ? "5" : "0", 156, "ascii");
  header.write("ustar\0", 257, "ascii");
  header.write("00", 263, "ascii");
  header.write("root", 265, "ascii"); // uname
  header.write("root", 297, "ascii"); // gname
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, "ascii");
  return header;
}

const padding = (size: number) => Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);

/** A tar stream: a directory, a small text file, and a file of `size` random bytes; then the end-of-archive blocks. */
function layerTar(seed: string, directory: string, size: number): Readable {
  const note = Buffer.from(`layer ${directory}, ${size} random bytes, seed ${seed}\n`);
  async function* entries() {
    yield tarHeader(`${directory}/`, 0, "directory");
    yield tarHeader(`${directory}/README`, note.byteLength);
    yield Buffer.concat([note, padding(note.byteLength)]);
    yield tarHeader(`${directory}/data.bin`, size);
    for await (const chunk of randomBytesStream(seed, size)) yield chunk as Buffer;
    yield padding(size);
    yield Buffer.alloc(2 * BLOCK);
  }
  return Readable.from(entries(), { objectMode: false });
}

// ---------------------------------------------------------------------------------------------------------------
// layout files

/** Writes bytes as a blob, returning its descriptor fields. */
export async function writeBlob(dir: string, bytes: Uint8Array): Promise<{ digest: string; size: number }> {
  const digest = sha256Digest(bytes);
  await mkdir(join(dir, "blobs", "sha256"), { recursive: true });
  await writeFile(blobPath(dir, digest), bytes);
  return { digest, size: bytes.byteLength };
}

/** Hashes a stream as it passes: the digest and byte count are set once the stream has ended. */
function hashing(): Transform & { digest: () => string; size: () => number } {
  const hash = createHash("sha256");
  let size = 0;
  let hex: string | undefined;
  const transform = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      size += chunk.byteLength;
      callback(null, chunk);
    },
    flush(callback) {
      hex = hash.digest("hex");
      callback();
    },
  });
  return Object.assign(transform, {
    digest: () => {
      if (hex === undefined) throw new Error("stream not finished");
      return `sha256:${hex}`;
    },
    size: () => size,
  });
}

async function writeLayer(dir: string, seed: string, directory: string, contentSize: number): Promise<LayerInfo> {
  await mkdir(join(dir, "blobs", "sha256"), { recursive: true });
  const temporary = join(dir, "blobs", "sha256", `.tmp-${sha256Hex(seed + directory).slice(0, 16)}`);
  const uncompressed = hashing();
  const compressed = hashing();
  await pipeline(layerTar(seed, directory, contentSize), uncompressed, createGzip({ level: 1 }), compressed, createWriteStream(temporary));
  const digest = compressed.digest();
  await rename(temporary, blobPath(dir, digest));
  return { mediaType: MediaTypes.layerGzip, digest, size: compressed.size(), diffId: uncompressed.digest(), contentSize };
}

const json = (value: unknown) => Buffer.from(JSON.stringify(value));

interface LayoutIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
}

export async function readLayoutIndex(dir: string): Promise<LayoutIndex> {
  return JSON.parse(await readFile(join(dir, "index.json"), "utf8")) as LayoutIndex;
}

/** Creates the layout's skeleton if needed and lists `descriptor` in index.json (replacing the same tag). */
async function addToLayoutIndex(dir: string, descriptor: Descriptor | null): Promise<void> {
  await mkdir(join(dir, "blobs", "sha256"), { recursive: true });
  await writeFile(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  let index: LayoutIndex = { schemaVersion: 2, mediaType: MediaTypes.index, manifests: [] };
  try {
    index = await readLayoutIndex(dir);
  } catch {
    // new layout
  }
  if (descriptor) {
    const tag = descriptor.annotations?.[REF_NAME];
    index.manifests = index.manifests.filter((entry) => tag === undefined || entry.annotations?.[REF_NAME] !== tag);
    index.manifests.push(descriptor);
  }
  await writeFile(join(dir, "index.json"), JSON.stringify(index));
}

const tagged = (descriptor: Descriptor, tag: string | undefined): Descriptor =>
  tag === undefined ? descriptor : { ...descriptor, annotations: { ...descriptor.annotations, [REF_NAME]: tag } };

/** An OCI image (manifest, config, gzip'd tar layers of the given content sizes) in the layout at `dir`. */
export async function buildImage(dir: string, options: ImageOptions): Promise<BuiltImage> {
  const platform = options.platform ?? { os: "linux", architecture: "amd64" };
  const seed = options.seed ?? `${options.tag ?? "image"}-${platform.os}-${platform.architecture}-${options.layers.join(",")}`;
  await addToLayoutIndex(dir, null);

  const layers: LayerInfo[] = [];
  for (const [i, size] of options.layers.entries()) {
    layers.push(await writeLayer(dir, `${seed}/layer${i}`, `layer${i}`, size));
  }

  const config = {
    created: new Date(FIXED_MTIME * 1000).toISOString(),
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant !== undefined && { variant: platform.variant }),
    config: { Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Cmd: ["/bin/sh"], Labels: { seed } },
    rootfs: { type: "layers", diff_ids: layers.map((layer) => layer.diffId) },
    history: layers.map((layer, i) => ({
      created: new Date(FIXED_MTIME * 1000).toISOString(),
      created_by: `ADD layer${i} (${layer.contentSize} bytes)`,
    })),
  };
  const configBlob = await writeBlob(dir, json(config));
  const configDescriptor: Descriptor = { mediaType: MediaTypes.config, ...configBlob };

  const manifest = {
    schemaVersion: 2,
    mediaType: MediaTypes.manifest,
    config: configDescriptor,
    layers: layers.map(({ mediaType, digest, size }) => ({ mediaType, digest, size })),
    annotations: { "org.opencontainers.image.title": seed },
  };
  const manifestBytes = json(manifest);
  const manifestBlob = await writeBlob(dir, manifestBytes);
  const descriptor: Descriptor = { mediaType: MediaTypes.manifest, ...manifestBlob };

  if (options.tag !== undefined) await addToLayoutIndex(dir, tagged(descriptor, options.tag));
  return {
    manifest: descriptor,
    manifestBytes,
    config: configDescriptor,
    layers,
    blobs: [descriptor.digest, configDescriptor.digest, ...layers.map((layer) => layer.digest)],
  };
}

/** A multi-platform image index referencing one image per platform, in the layout at `dir`. */
export async function buildIndex(dir: string, options: IndexOptions): Promise<BuiltIndex> {
  const seed = options.seed ?? `index-${options.tag ?? "untagged"}`;
  const images: BuiltIndex["images"] = [];
  for (const platform of options.platforms) {
    const image = await buildImage(dir, {
      layers: options.layers ?? [2048, 64 * 1024],
      platform,
      seed: `${seed}/${platform.os}/${platform.architecture}/${platform.variant ?? ""}`,
    });
    images.push({ ...image, platform });
  }
  const index = {
    schemaVersion: 2,
    mediaType: MediaTypes.index,
    manifests: images.map((image) => ({ ...image.manifest, platform: image.platform })),
    annotations: { "org.opencontainers.image.title": seed },
  };
  const indexBytes = json(index);
  const indexBlob = await writeBlob(dir, indexBytes);
  const descriptor: Descriptor = { mediaType: MediaTypes.index, ...indexBlob };
  await addToLayoutIndex(dir, options.tag === undefined ? null : tagged(descriptor, options.tag));
  return {
    index: descriptor,
    indexBytes,
    images,
    blobs: [descriptor.digest, ...images.flatMap((image) => image.blobs)],
  };
}

/** Every blob file in a layout, by digest, with its size and the sha256 of its bytes as actually found on disk. */
export async function listBlobs(dir: string): Promise<Map<string, { size: number; sha256: string }>> {
  const found = new Map<string, { size: number; sha256: string }>();
  const root = join(dir, "blobs");
  for (const algorithm of await readdir(root)) {
    for (const encoded of await readdir(join(root, algorithm))) {
      if (encoded.startsWith(".")) continue;
      const path = join(root, algorithm, encoded);
      found.set(`${algorithm}:${encoded}`, { size: (await stat(path)).size, sha256: await sha256File(path) });
    }
  }
  return found;
}

/** The descriptor index.json lists under `tag`. */
export async function findTagged(dir: string, tag: string): Promise<Descriptor | undefined> {
  return (await readLayoutIndex(dir)).manifests.find((entry) => entry.annotations?.[REF_NAME] === tag);
}

export async function removeLayout(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}
