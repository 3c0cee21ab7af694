// Turns the SOURCE argument into an image source: an OCI layout directory, a docker-archive or oci-archive tar (a
// file, or `-` for stdin), or an image in a registry (docker://host/repository:tag). An archive from stdin (or a
// gzip'd one) is first copied to a temporary file: docker save writes manifest.json last, so nothing can be pushed
// before the whole stream is read, and a file lets layers be hashed, skipped, uploaded in parallel and resumed.
import { createReadStream, createWriteStream } from "node:fs";
import { mkdtemp, open, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { DirectoryFiles } from "./directory-files.mjs";
import { DockerArchiveSource } from "./docker-archive.mjs";
import { OciLayoutSource } from "./oci-layout.mjs";
import { RegistrySource } from "./registry.mjs";
import { TarFiles } from "./tar-files.mjs";
import { credentialsFor } from "../credentials.mjs";
import { parseReference } from "../reference.mjs";
import { RegistryClient } from "../registry-client.mjs";

/** @typedef {import("../manifests.mjs").Descriptor} Descriptor */
/** @typedef {import("../manifests.mjs").Manifest} Manifest */
/**
 * @typedef {{
 *   description: string,
 *   root(): Promise<Manifest>,
 *   manifest(wanted: Descriptor): Promise<Manifest>,
 *   openBlob(blob: Descriptor, start: number): Promise<import("node:stream").Readable>,
 * }} ImageSource
 */
/**
 * @typedef {{
 *   image?: string, plainHttp?: boolean, creds?: string, log: (message: string) => void,
 *   destination: { host: string, credentials: import("../credentials.mjs").Credentials | null },
 * }} SourceOptions
 */

/**
 * Copies a stream to a temporary file, gunzipping it when it starts with gzip's magic bytes.
 * @param {import("node:stream").Readable} input
 * @param {string} directory
 */
async function spool(input, directory) {
  const path = join(directory, "archive.tar");
  const chunks = input[Symbol.asyncIterator]();
  const first = await chunks.next();
  const head = first.done ? Buffer.alloc(0) : /** @type {Buffer} */ (first.value);
  const all = Readable.from((async function* () {
    yield head;
    for (let next = await chunks.next(); !next.done; next = await chunks.next()) yield next.value;
  })());
  if (head[0] === 0x1f && head[1] === 0x8b) await pipeline(all, createGunzip(), createWriteStream(path));
  else await pipeline(all, createWriteStream(path));
  return path;
}

/** @param {string} path */
async function isGzip(path) {
  const handle = await open(path, "r");
  try {
    const head = Buffer.alloc(2);
    await handle.read(head, 0, 2, 0);
    return head[0] === 0x1f && head[1] === 0x8b;
  } finally {
    await handle.close();
  }
}

/**
 * An archive's image: the OCI layout inside it when there is one (Docker 25+ writes both), else docker-archive.
 * @param {DirectoryFiles | TarFiles} files
 * @param {string} description
 * @param {"oci" | "docker" | undefined} format forced by a prefix
 * @param {SourceOptions} options
 * @returns {Promise<ImageSource>}
 */
async function imageIn(files, description, format, options) {
  if (format === "oci" || (format === undefined && (await OciLayoutSource.isLayout(files)))) {
    return new OciLayoutSource(files, description, options.image);
  }
  if (await DockerArchiveSource.isArchive(files)) {
    return new DockerArchiveSource(files, description, options.image, options.log);
  }
  throw new Error(`${description} is neither an OCI layout (oci-layout, index.json) nor a docker archive (manifest.json)`);
}

/**
 * @param {string} text the SOURCE argument
 * @param {SourceOptions} options
 * @returns {Promise<{ source: ImageSource, registry?: { client: RegistryClient, repository: string }, close(): Promise<void> }>}
 */
export async function openSource(text, options) {
  if (/^(docker|https?):\/\//.test(text)) {
    const reference = parseReference(text, { plainHttp: options.plainHttp });
    // The destination's credentials serve a source on the same registry; they are never sent anywhere else.
    const credentials = !options.creds && reference.origin.host === options.destination.host
      ? options.destination.credentials
      : await credentialsFor(reference.origin.host, { flag: options.creds, env: false });
    const client = new RegistryClient(reference.origin, credentials, [`repository:${reference.repository}:pull`]);
    return { source: new RegistrySource(client, reference), registry: { client, repository: reference.repository }, close: async () => {} };
  }

  const prefixed = /^(oci|oci-archive|docker-archive):(.*)$/.exec(text);
  const format = prefixed ? (prefixed[1] === "docker-archive" ? "docker" : "oci") : undefined;
  let path = prefixed ? (prefixed[2] ?? "") : text;
  let image = options.image;
  // skopeo's oci:PATH:REF
  const ref = /^(.*):([^/:]+)$/.exec(path);
  if (prefixed && ref && image === undefined && !(await stat(path).then(() => true, () => false))) {
    path = ref[1] ?? path;
    image = ref[2];
  }
  const sourceOptions = { ...options, image };

  let temporary = "";
  const close = async () => {
    if (temporary) await rm(temporary, { recursive: true, force: true });
  };
  try {
    if (path !== "-" && (await stat(path)).isDirectory()) {
      return { source: await imageIn(new DirectoryFiles(path), path, format, sourceOptions), close };
    }
    let archive = path;
    if (path === "-" || (await isGzip(path))) {
      temporary = await mkdtemp(join(tmpdir(), "edge-oci-push-"));
      options.log(path === "-" ? "reading the archive from stdin" : `decompressing ${path}`);
      archive = await spool(path === "-" ? process.stdin : createReadStream(path), temporary);
    }
    const description = path === "-" ? "the archive on stdin" : path;
    return { source: await imageIn(await TarFiles.index(archive), description, format, sourceOptions), close };
  } catch (error) {
    await close();
    throw error;
  }
}
