// Pushes one blob the way a registry behind a request-size limit needs it: skipped when the repository already has
// it (HEAD), mounted from another repository when possible, else uploaded in PATCH chunks no larger than the
// registry's OCI-Chunk-Max-Length. A failed chunk is retried from the offset the registry reports (GET on the
// upload → Range); the upload's location is saved after every chunk so that another run resumes it too.
import type { IncomingMessage } from "node:http";
import { Readable } from "node:stream";
import { discard, header, offsetOfRange, readText, sleep } from "./http.ts";
import type { Descriptor } from "./manifests.ts";
import { shortDigest, type ProgressItem } from "./progress.ts";
import { fail, type RegistryClient, type RequestOptions } from "./registry-client.ts";
import type { ImageSource } from "./sources/open-source.ts";
import type { UploadState } from "./upload-state.ts";

export interface UploadTarget {
  client: RegistryClient;
  repository: string;
  chunkSize: number | undefined;
  from: string | undefined;
  state: UploadState;
  retries: number;
}

export interface BlobResult {
  digest: string;
  size: number;
  outcome: "exists" | "mounted" | "uploaded";
  sent: number;
  requests: number;
  resumedFrom?: number;
  retries: number;
}

/** `item()` starts the blob's progress bar. */
export interface BlobReport {
  item(): ProgressItem;
  log(message: string): void;
}

interface Session {
  location: URL;
  offset: number;
  chunkSize: number | undefined;
}

type Requester = (method: string, location: string | URL, options?: RequestOptions) => Promise<IncomingMessage>;

/** Blobs this small go up in one monolithic POST (no session), far below any registry's body limit. */
const MONOLITHIC_BYTES = 1024 * 1024;
const RETRYABLE = new Set([401, 408, 429, 500, 502, 503, 504]);

/** Reads a blob in consecutive ranges from one open stream, reopening it at the asked offset when it is not there. */
class BlobReader {
  readonly source: ImageSource;
  readonly blob: Descriptor;
  position = -1;
  chunks: AsyncIterator<Buffer> | null = null;
  stream: Readable | null = null;
  leftover: Buffer | null = null;

  constructor(source: ImageSource, blob: Descriptor) {
    this.source = source;
    this.blob = blob;
  }

  /** `length` bytes from `offset`, counted by `onBytes` as they are taken. */
  async *take(offset: number, length: number, onBytes: (bytes: number) => void): AsyncGenerator<Buffer> {
    if (this.position !== offset || !this.chunks) {
      this.close();
      this.stream = await this.source.openBlob(this.blob, offset);
      this.chunks = this.stream[Symbol.asyncIterator]();
      this.position = offset;
    }
    let left = length;
    while (left > 0) {
      let chunk = this.leftover;
      this.leftover = null;
      if (!chunk) {
        const next = await this.chunks.next();
        if (next.done) throw new Error(`${this.blob.digest} ended at ${this.position} bytes of ${this.blob.size}`);
        chunk = next.value;
      }
      if (chunk.length > left) {
        this.leftover = chunk.subarray(left);
        chunk = chunk.subarray(0, left);
      }
      left -= chunk.length;
      this.position += chunk.length;
      onBytes(chunk.length);
      yield chunk;
    }
  }

  close(): void {
    this.stream?.destroy();
    this.stream = null;
    this.chunks = null;
    this.leftover = null;
    this.position = -1;
  }
}

export async function pushBlob(target: UploadTarget, source: ImageSource, blob: Descriptor, report: BlobReport): Promise<BlobResult> {
  const { client, repository } = target;
  const result: BlobResult = { digest: blob.digest, size: blob.size, outcome: "uploaded", sent: 0, requests: 0, retries: 0 };
  const request: Requester = (method, location, options) => {
    result.requests += 1;
    return client.request(method, location, options);
  };

  const head = await request("HEAD", `/v2/${repository}/blobs/${blob.digest}`);
  discard(head);
  if (head.statusCode === 200) return { ...result, outcome: "exists" };
  if (head.statusCode !== 404) {
    const hint = head.statusCode === 401 && !client.credentials ? " (no credentials: give --creds, set REGISTRY_TOKEN, or docker login)" : "";
    throw new Error(`HEAD ${repository} blob ${blob.digest}: HTTP ${head.statusCode}${hint}`);
  }

  const key = `${client.origin.origin}/${repository}@${blob.digest}`;
  const session = (await resume(target, key, request)) ?? (await start(target, blob, request));
  if (session === "mounted") return { ...result, outcome: "mounted" };
  if (session === "monolithic") {
    const reader = new BlobReader(source, blob);
    const response = await request("POST", `/v2/${repository}/blobs/uploads/?digest=${encodeURIComponent(blob.digest)}`, {
      headers: { "Content-Type": "application/octet-stream", "Content-Length": String(blob.size) },
      body: () => Readable.from(reader.take(0, blob.size, (bytes) => (result.sent += bytes))),
    });
    reader.close();
    if (response.statusCode !== 201) return fail(response, `POST ${repository} blob ${blob.digest}`);
    discard(response);
    report.log(`${shortDigest(blob.digest)}: pushed ${blob.size} bytes`);
    return result;
  }

  const progress = report.item();
  const reader = new BlobReader(source, blob);
  let { location, offset, chunkSize } = session;
  if (offset > 0) {
    result.resumedFrom = offset;
    progress.note(`resuming at ${offset} of ${blob.size} bytes`);
  }
  await target.state.set(key, location.href, chunkSize ?? null);
  let failures = 0;
  const retry = async (why: string) => {
    failures += 1;
    result.retries += 1;
    if (failures > target.retries) throw new Error(`${blob.digest}: giving up after ${target.retries} retries: ${why}`);
    progress.note(`${why}; retrying (${failures}/${target.retries})`);
    await sleep(Math.min(30_000, 500 * 2 ** (failures - 1)));
    const status = await request("GET", location).catch(() => null);
    if (status?.statusCode === 204) {
      offset = offsetOfRange(header(status, "range")) ?? offset;
      progress.set(offset);
    }
    if (status) discard(status);
    if (status?.statusCode === 404) throw new Error(`${blob.digest}: the registry forgot the upload (${why})`);
  };

  try {
    while (offset < blob.size) {
      const length = Math.min(chunkSize ?? blob.size, blob.size - offset);
      const from = offset;
      let response: IncomingMessage;
      try {
        response = await request("PATCH", location, {
          headers: {
            "Content-Type": "application/octet-stream",
            "Content-Length": String(length),
            "Content-Range": `${from}-${from + length - 1}`,
          },
          body: () =>
            Readable.from(
              reader.take(from, length, (bytes) => {
                result.sent += bytes;
                progress.advance(bytes);
              }),
            ),
        });
      } catch (error) {
        reader.close();
        await retry(`chunk at ${from}: ${(error as Error).message}`);
        continue;
      }
      const status = response.statusCode ?? 0;
      if (status === 202) {
        discard(response);
        location = client.url(header(response, "location") ?? location.href);
        offset = offsetOfRange(header(response, "range")) ?? from + length;
        if (offset !== from + length) reader.close();
        failures = 0;
        progress.set(offset);
        progress.note(`sent ${offset} of ${blob.size} bytes`);
        await target.state.set(key, location.href, chunkSize ?? null);
        continue;
      }
      reader.close();
      if (status === 416) {
        // Out of order: the registry says where it is (an empty session reads "0-0", as one byte would).
        const reported = offsetOfRange(header(response, "range"));
        discard(response);
        offset = reported === from && from === 0 ? 1 : (reported ?? offset);
        await retry(`the registry is at ${offset}, not ${from}`);
        continue;
      }
      if (RETRYABLE.has(status)) {
        await retry(`chunk at ${from}: HTTP ${status} ${(await readText(response, 2048)).slice(0, 200)}`);
        continue;
      }
      return await fail(response, `PATCH ${repository} blob ${blob.digest} at ${from} (${length} bytes)`);
    }
  } finally {
    reader.close();
  }

  const done = await request("PUT", withDigest(location, blob.digest), { headers: { "Content-Length": "0" } });
  if (done.statusCode !== 201) return fail(done, `PUT ${repository} blob ${blob.digest}`);
  discard(done);
  await target.state.delete(key);
  progress.done(`pushed ${blob.size} bytes${result.resumedFrom ? ` (resumed at ${result.resumedFrom})` : ""}`);
  return result;
}

function withDigest(location: URL, digest: string): URL {
  const url = new URL(location);
  url.searchParams.set("digest", digest);
  return url;
}

/** The upload a previous run left, if the registry still has it. */
async function resume(target: UploadTarget, key: string, request: Requester): Promise<Session | null> {
  const saved = await target.state.get(key);
  if (!saved) return null;
  const location = target.client.url(saved.location);
  const status = await request("GET", location);
  discard(status);
  const offset = offsetOfRange(header(status, "range"));
  if (status.statusCode !== 204 || offset === undefined) {
    await target.state.delete(key);
    return null;
  }
  return { location, offset, chunkSize: target.chunkSize ?? saved.chunkSize ?? undefined };
}

/** A new upload session (or a mount, or a monolithic upload for a small blob). */
async function start(target: UploadTarget, blob: Descriptor, request: Requester): Promise<Session | "mounted" | "monolithic"> {
  const { repository, from } = target;
  const mount = from && from !== repository ? `?mount=${encodeURIComponent(blob.digest)}&from=${encodeURIComponent(from)}` : "";
  if (!mount && blob.size <= MONOLITHIC_BYTES && (target.chunkSize === undefined || blob.size <= target.chunkSize)) {
    return "monolithic";
  }
  const response = await request("POST", `/v2/${repository}/blobs/uploads/${mount}`, { headers: { "Content-Length": "0" } });
  if (response.statusCode !== 202 && !(response.statusCode === 201 && mount)) {
    return fail(response, `POST ${repository} upload for ${blob.digest}`);
  }
  discard(response);
  if (response.statusCode === 201) return "mounted";
  const location = header(response, "location");
  if (!location) throw new Error(`POST ${repository} upload: the registry sent no Location`);
  const advertised = Number(header(response, "oci-chunk-max-length"));
  const chunkSize = target.chunkSize ?? (Number.isSafeInteger(advertised) && advertised > 0 ? advertised : undefined);
  return { location: target.client.url(location), offset: 0, chunkSize };
}
