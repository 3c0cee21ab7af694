// Pushes and pulls blobs of any size over plain HTTP (node:http) without holding them in memory: request bodies are
// read from a Readable as they are sent, and digests are computed while the bytes pass. Used by the end-to-end
// large-upload tests and by the benchmark, so both measure the same client.
import { createHash } from "node:crypto";
import { once } from "node:events";
import { request, type IncomingHttpHeaders } from "node:http";
import type { Readable } from "node:stream";

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  /** The response body as text (registry replies other than blob pulls are small). */
  text: string;
}

export interface Pushed {
  digest: string;
  size: number;
}

export interface Pulled {
  digest: string;
  size: number;
  status: number;
}

/** One request. The body is streamed with backpressure; without Content-Length it goes out chunked, as docker sends it. */
export function send(
  url: string,
  method: string,
  headers: Record<string, string> = {},
  body?: AsyncIterable<Uint8Array>,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const outgoing = request(url, { method, headers });
    outgoing.on("error", reject);
    outgoing.on("response", (response) => {
      const parts: Buffer[] = [];
      response.on("data", (chunk: Buffer) => parts.push(chunk));
      response.on("error", reject);
      response.on("end", () =>
        resolve({ status: response.statusCode ?? 0, headers: response.headers, text: Buffer.concat(parts).toString() }),
      );
    });
    void (async () => {
      if (body) {
        for await (const chunk of body) {
          // The server may answer (413, 416) before it has read the body: stop sending, the response will come.
          if (outgoing.destroyed || outgoing.writableEnded) return;
          if (!outgoing.write(chunk)) await once(outgoing, "drain");
        }
      }
      outgoing.end();
    })().catch(reject);
  });
}

/** Reads exact byte counts off a stream, in order, for cutting one stream into successive request bodies. */
export class ByteCursor {
  private readonly source: AsyncIterator<Buffer>;
  private leftover: Buffer | null = null;

  constructor(stream: Readable) {
    this.source = stream[Symbol.asyncIterator]();
  }

  /** The next `count` bytes (fewer only if the stream ends first). */
  async *take(count: number): AsyncGenerator<Buffer> {
    let left = count;
    while (left > 0) {
      let chunk = this.leftover;
      this.leftover = null;
      if (!chunk) {
        const next = await this.source.next();
        if (next.done) return;
        chunk = next.value;
      }
      if (chunk.byteLength > left) {
        this.leftover = chunk.subarray(left);
        chunk = chunk.subarray(0, left);
      }
      left -= chunk.byteLength;
      yield chunk;
    }
  }
}

/** Passes chunks through while hashing and counting them. */
export class HashingTap {
  private readonly hash = createHash("sha256");
  size = 0;

  async *through(chunks: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const chunk of chunks) {
      this.hash.update(chunk);
      this.size += chunk.byteLength;
      yield chunk;
    }
  }

  digest(): string {
    return `sha256:${this.hash.digest("hex")}`;
  }
}

/** The sha256 digest of a stream, read once (to know a digest before a monolithic push). */
export async function digestOfStream(stream: Readable): Promise<Pushed> {
  const tap = new HashingTap();
  for await (const _chunk of tap.through(stream)) {
    // hashed as it passes
  }
  return { digest: tap.digest(), size: tap.size };
}

function expectStatus(reply: Reply, status: number, what: string): Reply {
  if (reply.status !== status) throw new Error(`${what}: expected ${status}, got ${reply.status} ${reply.text.slice(0, 500)}`);
  return reply;
}

function locationOf(base: string, reply: Reply): string {
  const location = reply.headers.location;
  if (!location) throw new Error("no Location in the upload response");
  return new URL(location, base).href;
}

function withDigest(location: string, digest: string): string {
  const url = new URL(location);
  url.searchParams.set("digest", digest);
  return url.href;
}

/** POST /v2/<name>/blobs/uploads/?digest=: the whole blob in one request of known length. */
export async function pushMonolithic(base: string, repository: string, data: Readable, size: number, digest: string): Promise<Pushed> {
  const tap = new HashingTap();
  const reply = await send(
    `${base}/v2/${repository}/blobs/uploads/?digest=${digest}`,
    "POST",
    { "Content-Type": "application/octet-stream", "Content-Length": String(size) },
    tap.through(data),
  );
  expectStatus(reply, 201, "monolithic push");
  return { digest: tap.digest(), size: tap.size };
}

/** POST a session, PATCH chunks of `chunkBytes` with Content-Range and Content-Length, then PUT ?digest=. */
export async function pushChunked(base: string, repository: string, data: Readable, size: number, chunkBytes: number): Promise<Pushed> {
  let location = locationOf(base, expectStatus(await send(`${base}/v2/${repository}/blobs/uploads/`, "POST"), 202, "start"));
  const cursor = new ByteCursor(data);
  const tap = new HashingTap();
  for (let offset = 0; offset < size; offset += chunkBytes) {
    const length = Math.min(chunkBytes, size - offset);
    const reply = await send(
      location,
      "PATCH",
      {
        "Content-Type": "application/octet-stream",
        "Content-Length": String(length),
        "Content-Range": `${offset}-${offset + length - 1}`,
      },
      tap.through(cursor.take(length)),
    );
    expectStatus(reply, 202, `chunk at ${offset}`);
    if (reply.headers.range !== `0-${offset + length - 1}`) throw new Error(`chunk at ${offset}: Range ${reply.headers.range}`);
    location = locationOf(base, reply);
  }
  const digest = tap.digest();
  expectStatus(await send(withDigest(location, digest), "PUT", { "Content-Length": "0" }), 201, "complete");
  return { digest, size: tap.size };
}

/** POST a session, one PATCH of the whole stream with neither Content-Length nor Content-Range (docker), then PUT. */
export async function pushStreamed(base: string, repository: string, data: Readable): Promise<Pushed> {
  const location = locationOf(base, expectStatus(await send(`${base}/v2/${repository}/blobs/uploads/`, "POST"), 202, "start"));
  const tap = new HashingTap();
  const reply = expectStatus(
    await send(location, "PATCH", { "Content-Type": "application/octet-stream" }, tap.through(data)),
    202,
    "streamed PATCH",
  );
  if (reply.headers.range !== `0-${tap.size - 1}`) throw new Error(`streamed PATCH: Range ${reply.headers.range}`);
  const digest = tap.digest();
  expectStatus(await send(withDigest(locationOf(base, reply), digest), "PUT", { "Content-Length": "0" }), 201, "complete");
  return { digest, size: tap.size };
}

/** GETs a URL and hashes the body as it arrives. */
export function pull(url: string): Promise<Pulled> {
  return new Promise((resolve, reject) => {
    const outgoing = request(url, { method: "GET" }, (response) => {
      const tap = createHash("sha256");
      let size = 0;
      response.on("data", (chunk: Buffer) => {
        tap.update(chunk);
        size += chunk.byteLength;
      });
      response.on("error", reject);
      response.on("end", () => resolve({ digest: `sha256:${tap.digest("hex")}`, size, status: response.statusCode ?? 0 }));
    });
    outgoing.on("error", reject);
    outgoing.end();
  });
}
