// A chunked blob upload driven by the real curl binary: POST, PATCH in 1 MiB chunks across a 5 MiB multipart
// part, a refused out-of-order chunk, PUT ?digest=, then GET (whole and ranged).
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { mustRun } from "../support/command";
import { randomBytes, sha256Digest } from "../support/oci-layout";
import { registryForFile } from "./fixture";
import { MIN_PART_BYTES, type Registry } from "./harness";

const MiB = 1024 * 1024;
const SIZE = 7 * MiB + 12_345;
const CHUNK = MiB;
const REPOSITORY = "e2e/chunked";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

let registry: Registry;
let work: string;
let sequence = 0;

registryForFile("oci-e2e-curl-", { vars: { UPLOAD_PART_BYTES: String(MIN_PART_BYTES) } }, (started, dir) => {
  registry = started;
  work = dir;
});

interface CurlResponse {
  status: number;
  headers: Headers;
  body: Buffer;
}

/** Parses curl's --dump-header output: the last block, after any 1xx interim responses. */
function parseHeaderDump(dump: string): { status: number; headers: Headers } {
  const blocks = dump.split(/\r?\n\r?\n/).filter((block) => block.trim() !== "");
  const last = blocks.at(-1);
  if (!last) throw new Error(`no response headers in:\n${dump}`);
  const [statusLine, ...lines] = last.split(/\r?\n/);
  const status = Number(/^HTTP\/[\d.]+ (\d{3})/.exec(statusLine ?? "")?.[1]);
  if (!Number.isInteger(status)) throw new Error(`bad status line ${statusLine}`);
  const headers = new Headers();
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  return { status, headers };
}

/** One request with the curl binary; `body` is sent from a file with --data-binary. */
async function curl(method: string, path: string, options: { headers?: Record<string, string>; body?: Uint8Array } = {}): Promise<CurlResponse> {
  const id = sequence++;
  const headerFile = join(work, `headers-${id}`);
  const bodyFile = join(work, `body-${id}`);
  const args = ["--silent", "--show-error", "--request", method, "--dump-header", headerFile, "--output", bodyFile];
  for (const [name, value] of Object.entries(options.headers ?? {})) args.push("--header", `${name}: ${value}`);
  if (options.body) {
    const dataFile = join(work, `data-${id}`);
    await writeFile(dataFile, options.body);
    args.push("--data-binary", `@${dataFile}`);
  }
  // HEAD has no body to wait for.
  if (method === "HEAD") args.push("--head");
  args.push(new URL(path, registry.url).href);
  await mustRun("curl", args, { timeoutMs: 60_000 });
  const { status, headers } = parseHeaderDump(await readFile(headerFile, "utf8"));
  const body = method === "HEAD" ? Buffer.alloc(0) : await readFile(bodyFile).catch(() => Buffer.alloc(0));
  await Promise.all([headerFile, bodyFile, join(work, `data-${id}`)].map((file) => rm(file, { force: true })));
  return { status, headers, body };
}

const errorCode = (response: CurlResponse) => (JSON.parse(response.body.toString()) as { errors: { code: string }[] }).errors[0]?.code;

describe("chunked upload with curl", () => {
  const blob = randomBytes("e2e chunked upload", SIZE);
  const digest = sha256Digest(blob);

  it("uploads 1 MiB chunks across a part boundary, refuses a gap, completes and serves the blob", async () => {
    const started = await curl("POST", `/v2/${REPOSITORY}/blobs/uploads/`, { headers: { "Content-Length": "0" } });
    expect(started.status).toBe(202);
    expect(started.headers.get("range")).toBe("0-0");
    const uploadId = started.headers.get("docker-upload-uuid") ?? "";
    expect(uploadId).toMatch(UUID);
    expect(started.headers.get("location")).toBe(`/v2/${REPOSITORY}/blobs/uploads/${uploadId}`);
    // The --var override reached the Worker.
    expect(started.headers.get("oci-chunk-min-length")).toBe(String(MIN_PART_BYTES));
    let location = started.headers.get("location")!;

    let offset = 0;
    let gapTried = false;
    while (offset < SIZE) {
      if (!gapTried && offset === 6 * MiB) {
        // Past the first 5 MiB part, with 1 MiB pending: a chunk that skips ahead leaves a gap and is refused.
        gapTried = true;
        const ahead = offset + 4096;
        expect(ahead + CHUNK).toBeLessThanOrEqual(SIZE);
        const gap = await curl("PATCH", location, {
          headers: { "Content-Type": "application/octet-stream", "Content-Range": `${ahead}-${ahead + CHUNK - 1}` },
          body: blob.subarray(ahead, ahead + CHUNK),
        });
        expect(gap.status).toBe(416);
        expect(errorCode(gap)).toBe("RANGE_INVALID");
        expect(gap.headers.get("range")).toBe(`0-${offset - 1}`);

        // Re-sending bytes already received is refused too.
        const again = await curl("PATCH", location, {
          headers: { "Content-Type": "application/octet-stream", "Content-Range": `${offset - CHUNK}-${offset - 1}` },
          body: blob.subarray(offset - CHUNK, offset),
        });
        expect(again.status).toBe(416);
        expect(again.headers.get("range")).toBe(`0-${offset - 1}`);

        const status = await curl("GET", location);
        expect(status.status).toBe(204);
        expect(status.headers.get("range")).toBe(`0-${offset - 1}`);
        expect(status.headers.get("docker-upload-uuid")).toBe(uploadId);
        expect(status.headers.get("location")).toBe(`/v2/${REPOSITORY}/blobs/uploads/${uploadId}`);
        continue;
      }
      const end = Math.min(offset + CHUNK, SIZE) - 1;
      const patched = await curl("PATCH", location, {
        headers: { "Content-Type": "application/octet-stream", "Content-Range": `${offset}-${end}` },
        body: blob.subarray(offset, end + 1),
      });
      expect(patched.status, `chunk ${offset}-${end}`).toBe(202);
      expect(patched.headers.get("range")).toBe(`0-${end}`);
      expect(patched.headers.get("docker-upload-uuid")).toBe(uploadId);
      location = patched.headers.get("location") ?? location;
      offset = end + 1;
    }
    expect(gapTried).toBe(true);

    const status = await curl("GET", location);
    expect(status.status).toBe(204);
    expect(status.headers.get("range")).toBe(`0-${SIZE - 1}`);

    const completed = await curl("PUT", `${location}?digest=${encodeURIComponent(digest)}`, { headers: { "Content-Length": "0" } });
    expect(completed.status).toBe(201);
    expect(completed.headers.get("docker-content-digest")).toBe(digest);
    expect(completed.headers.get("location")).toBe(`/v2/${REPOSITORY}/blobs/${digest}`);

    // The session is over.
    const finished = await curl("GET", location);
    expect(finished.status).toBe(404);
    expect(errorCode(finished)).toBe("BLOB_UPLOAD_UNKNOWN");

    const whole = await curl("GET", `/v2/${REPOSITORY}/blobs/${digest}`);
    expect(whole.status).toBe(200);
    expect(whole.headers.get("docker-content-digest")).toBe(digest);
    expect(whole.headers.get("content-length")).toBe(String(SIZE));
    expect(whole.body.byteLength).toBe(SIZE);
    expect(sha256Digest(whole.body)).toBe(digest);

    const head = await curl("HEAD", `/v2/${REPOSITORY}/blobs/${digest}`);
    expect(head.status).toBe(200);
    expect(head.headers.get("content-length")).toBe(String(SIZE));
    expect(head.headers.get("docker-content-digest")).toBe(digest);
  });

  it("serves byte ranges of the blob, within a part and across the part boundary", async () => {
    const ranged = await curl("GET", `/v2/${REPOSITORY}/blobs/${digest}`, { headers: { Range: "bytes=100-199" } });
    expect(ranged.status).toBe(206);
    expect(ranged.headers.get("content-range")).toBe(`bytes 100-199/${SIZE}`);
    expect(ranged.headers.get("content-length")).toBe("100");
    expect(ranged.body.equals(blob.subarray(100, 200))).toBe(true);

    const first = MIN_PART_BYTES - 100;
    const across = await curl("GET", `/v2/${REPOSITORY}/blobs/${digest}`, { headers: { Range: `bytes=${first}-${first + 199}` } });
    expect(across.status).toBe(206);
    expect(across.headers.get("content-range")).toBe(`bytes ${first}-${first + 199}/${SIZE}`);
    expect(across.body.equals(blob.subarray(first, first + 200))).toBe(true);

    const tail = await curl("GET", `/v2/${REPOSITORY}/blobs/${digest}`, { headers: { Range: "bytes=-10" } });
    expect(tail.status).toBe(206);
    expect(tail.headers.get("content-range")).toBe(`bytes ${SIZE - 10}-${SIZE - 1}/${SIZE}`);
    expect(tail.body.equals(blob.subarray(SIZE - 10))).toBe(true);

    const beyond = await curl("GET", `/v2/${REPOSITORY}/blobs/${digest}`, { headers: { Range: `bytes=${SIZE}-` } });
    expect(beyond.status).toBe(416);
    expect(beyond.headers.get("content-range")).toBe(`bytes */${SIZE}`);
  });

  it("refuses to complete an upload under the wrong digest, and forgets it", async () => {
    const started = await curl("POST", `/v2/${REPOSITORY}/blobs/uploads/`, { headers: { "Content-Length": "0" } });
    expect(started.status).toBe(202);
    const location = started.headers.get("location")!;
    const chunk = blob.subarray(0, CHUNK);
    const patched = await curl("PATCH", location, {
      headers: { "Content-Type": "application/octet-stream", "Content-Range": `0-${CHUNK - 1}` },
      body: chunk,
    });
    expect(patched.status).toBe(202);
    expect(patched.headers.get("range")).toBe(`0-${CHUNK - 1}`);

    const wrong = sha256Digest(blob.subarray(1, CHUNK + 1));
    const refused = await curl("PUT", `${location}?digest=${encodeURIComponent(wrong)}`, { headers: { "Content-Length": "0" } });
    expect(refused.status).toBe(400);
    expect(errorCode(refused)).toBe("DIGEST_INVALID");

    const gone = await curl("GET", location);
    expect(gone.status).toBe(404);
    expect(errorCode(gone)).toBe("BLOB_UPLOAD_UNKNOWN");

    const missing = await curl("GET", `/v2/${REPOSITORY}/blobs/${wrong}`);
    expect(missing.status).toBe(404);
    expect(errorCode(missing)).toBe("BLOB_UNKNOWN");
  });
});
