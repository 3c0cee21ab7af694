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
import { credentialsFor, type Credentials } from "../credentials.ts";
import type { Descriptor, Manifest } from "../manifests.ts";
import { parseReference } from "../reference.ts";
import { RegistryClient } from "../registry-client.ts";
import { DirectoryFiles } from "./directory-files.ts";
import { DockerArchiveSource } from "./docker-archive.ts";
import { OciLayoutSource } from "./oci-layout.ts";
import { RegistrySource } from "./registry.ts";
import { TarFiles } from "./tar-files.ts";

export interface ImageSource {
  description: string;
  root(): Promise<Manifest>;
  manifest(wanted: Descriptor): Promise<Manifest>;
  openBlob(blob: Descriptor, start: number): Promise<Readable>;
}

export interface SourceOptions {
  image?: string | undefined;
  plainHttp?: boolean;
  creds?: string | undefined;
  log: (message: string) => void;
  destination: { host: string; credentials: Credentials | null };
}

export interface OpenedSource {
  source: ImageSource;
  /** The registry and repository of a docker:// source. */
  registry?: { client: RegistryClient; repository: string };
  close(): Promise<void>;
}

/** Copies a stream to a temporary file, gunzipping it when it starts with gzip's magic bytes. */
async function spool(input: Readable, directory: string): Promise<string> {
  const path = join(directory, "archive.tar");
  const chunks = input[Symbol.asyncIterator]();
  const first = await chunks.next();
  const head: Buffer = first.done ? Buffer.alloc(0) : first.value;
  const all = Readable.from((async function* () {
    yield head;
    for (let next = await chunks.next(); !next.done; next = await chunks.next()) yield next.value;
  })());
  if (head[0] === 0x1f && head[1] === 0x8b) await pipeline(all, createGunzip(), createWriteStream(path));
  else await pipeline(all, createWriteStream(path));
  return path;
}

async function isGzip(path: string): Promise<boolean> {
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
 * `format` is forced by a prefix.
 */
async function imageIn(files: DirectoryFiles | TarFiles, description: string, format: "oci" | "docker" | undefined, options: SourceOptions): Promise<ImageSource> {
  if (format === "oci" || (format === undefined && (await OciLayoutSource.isLayout(files)))) {
    return new OciLayoutSource(files, description, options.image);
  }
  if (await DockerArchiveSource.isArchive(files)) {
    return new DockerArchiveSource(files, description, options.image, options.log);
  }
  throw new Error(`${description} is neither an OCI layout (oci-layout, index.json) nor a docker archive (manifest.json)`);
}

/** The image the SOURCE argument names. */
export async function openSource(text: string, options: SourceOptions): Promise<OpenedSource> {
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
