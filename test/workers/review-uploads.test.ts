import { env, runInDurableObject } from "cloudflare:test";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { GarbageCollector } from "../../src/gc/collector";
import { seams } from "../../src/uploads/seams";
import type { Env } from "../../src/config";
import { call, expectError, MiB, randomBytes, sha256, startUpload } from "./helpers";

// Review of the native hashing of streamed bodies (bytes "no hash covers" after a second body) and of the final PUT:
// retries and transient faults on the paths where the digest is checked only on the assembled object.

/** A request body of unknown length (no Content-Length), in 256 KiB chunks, as docker streams a layer. */
function streamOf(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      for (let at = 0; at < bytes.byteLength; at += 256 * 1024) controller.enqueue(bytes.slice(at, at + 256 * 1024));
      controller.close();
    },
  });
}

async function sha512(bytes: Uint8Array): Promise<string> {
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-512", bytes));
  return `sha512:${[...hash].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

function streamedPatch(location: string, bytes: Uint8Array) {
  return call(location, { method: "PATCH", body: streamOf(bytes), duplex: "half" } as RequestInit);
}

/** An upload whose first `split` bytes came in one streamed PATCH and the next up to `upTo` in another. */
async function twoStreams(repository: string, bytes: Uint8Array, split: number, upTo: number): Promise<string> {
  const location = await startUpload(repository);
  for (const [from, to] of [
    [0, split],
    [split, upTo],
  ] as const) {
    const response = await streamedPatch(location, bytes.subarray(from, to));
    expect(response.status).toBe(202);
    expect(response.headers.get("Range")).toBe(`0-${to - 1}`);
  }
  return location;
}

async function pulled(repository: string, digest: string): Promise<Uint8Array> {
  const response = await call(`/v2/${repository}/blobs/${digest}`);
  expect(response.status).toBe(200);
  return new Uint8Array(await response.arrayBuffer());
}

function offsetOf(response: Response): number {
  const range = response.headers.get("Range")!;
  return Number(range.split("-")[1]) + 1;
}

let quiet: ReturnType<typeof vi.spyOn>;
beforeEach(() => {
  const error = console.error.bind(console);
  quiet = vi.spyOn(console, "error").mockImplementation((...args: unknown[]) => {
    if (!args.some((arg) => String(arg).includes("injected"))) error(...args);
  });
});

afterEach(() => {
  delete seams.fault;
  quiet.mockRestore();
});

describe("a PUT carrying the last chunk, retried after its body was saved and its answer lost", () => {
  // Before native hashing, the session's SHA-256 equalled the digest once the PUT's body was saved, and the retried
  // PUT's body (the same bytes again) was recognised and not read. Bytes no hash covers (two streamed PATCHes) or a
  // SHA-512 must be recognised too, not appended a second time.
  for (const [name, digestOf] of [
    ["sha256, bytes no hash covers", sha256],
    ["sha512", sha512],
  ] as const) {
    for (const [shape, sizes] of [
      ["single put", [3000, 3000, 3000]],
      ["multipart", [3 * MiB, 3 * MiB, MiB]],
    ] as const) {
      it(`completes with the blob's bytes (${name}, ${shape})`, async () => {
        const repository = `review/put-retry-${digestOf === sha256 ? "256" : "512"}-${sizes[0]}`;
        const total = sizes[0] + sizes[1] + sizes[2];
        const bytes = randomBytes(total);
        const digest = await digestOf(bytes);
        const location = await twoStreams(repository, bytes, sizes[0], sizes[0] + sizes[1]);
        const last = bytes.subarray(sizes[0] + sizes[1]);
        // The PUT's body is saved (the session's commit takes effect), and its answer is lost.
        let lost = 1;
        seams.fault = (step) => {
          if (step === "session.commit" && lost-- > 0) {
            return () => {
              throw new Error("injected: answer lost");
            };
          }
        };
        const put = () => call(`${location}?digest=${digest}`, { method: "PUT", body: last });
        const first = await put();
        expect(first.status, await first.text()).toBeGreaterThanOrEqual(500);
        delete seams.fault;
        const status = await call(location);
        expect(status.status).toBe(204);
        expect(offsetOf(status)).toBe(total);
        // The client repeats the PUT as it was.
        const retried = await put();
        expect(retried.status, await retried.clone().text()).toBe(201);
        expect(retried.headers.get("Docker-Content-Digest")).toBe(digest);
        const back = await pulled(repository, digest);
        expect(back.byteLength).toBe(total);
        expect(await digestOf(back)).toBe(digest);
      });
    }
  }
});

describe("the one put of bytes no hash covers", () => {
  it("an R2 failure before the put takes effect answers 5xx and keeps the upload; the retried PUT completes", async () => {
    const repository = "review/put-fails-unhashed";
    const bytes = randomBytes(6000);
    const digest = await sha256(bytes);
    const location = await twoStreams(repository, bytes, 3000, 6000);
    let failures = 1;
    seams.fault = (step) => {
      if (step === "r2.put" && failures-- > 0) throw new Error("injected: R2 unavailable");
    };
    const first = await call(`${location}?digest=${digest}`, { method: "PUT" });
    expect(first.status, await first.text()).toBeGreaterThanOrEqual(500);
    const status = await call(location);
    expect(status.status).toBe(204);
    expect(offsetOf(status)).toBe(6000);
    const retried = await call(`${location}?digest=${digest}`, { method: "PUT" });
    expect(retried.status).toBe(201);
    expect(await sha256(await pulled(repository, digest))).toBe(digest);
  });

  it("a put that took effect but whose answer was lost: the retried PUT completes and leaves no object unnamed", async () => {
    const repository = "review/put-lost-unhashed";
    const bytes = randomBytes(6000);
    const digest = await sha256(bytes);
    const location = await twoStreams(repository, bytes, 3000, 6000);
    let lost = 1;
    seams.fault = (step) => {
      if (step === "r2.put" && lost-- > 0) {
        return () => {
          throw new Error("injected: answer lost");
        };
      }
    };
    const first = await call(`${location}?digest=${digest}`, { method: "PUT" });
    expect(first.status, await first.text()).toBeGreaterThanOrEqual(500);
    const retried = await call(`${location}?digest=${digest}`, { method: "PUT" });
    expect(retried.status).toBe(201);
    expect(await sha256(await pulled(repository, digest))).toBe(digest);
    const uploadId = location.split("/").at(-1)!;
    const objects = (await env.BLOBS.list({ prefix: `uploads/${uploadId}/` })).objects.map((object) => object.key);
    const named = await env.DB.prepare("SELECT object_key FROM blobs WHERE object_key IN (SELECT value FROM json_each(?))")
      .bind(JSON.stringify(objects))
      .all<{ object_key: string }>();
    expect(objects.sort()).toEqual(named.results.map((row) => row.object_key).sort());
  });

  it("a wrong digest still answers DIGEST_INVALID and leaves nothing behind (sha512 too)", async () => {
    for (const digestOf of [sha256, sha512]) {
      const repository = `review/put-wrong-unhashed-${digestOf === sha256 ? "256" : "512"}`;
      const bytes = randomBytes(6000);
      const wrong = await digestOf(bytes.subarray(1));
      const location = await twoStreams(repository, bytes, 3000, 6000);
      await expectError(await call(`${location}?digest=${wrong}`, { method: "PUT" }), 400, "DIGEST_INVALID");
      await expectError(await call(location), 404, "BLOB_UPLOAD_UNKNOWN");
      await expectError(await call(`/v2/${repository}/blobs/${wrong}`), 404, "BLOB_UNKNOWN");
      const uploadId = location.split("/").at(-1)!;
      expect((await env.BLOBS.list({ prefix: `uploads/${uploadId}/` })).objects).toEqual([]);
    }
  });
});

describe("a multipart object of bytes no hash covers (read back)", () => {
  it("a completion whose answer was lost is recognised, and read back", async () => {
    const repository = "review/complete-lost-unhashed";
    const bytes = randomBytes(7 * MiB + 11);
    const digest = await sha256(bytes);
    const location = await twoStreams(repository, bytes, 3 * MiB, bytes.byteLength);
    let lost = 1;
    seams.fault = (step) => {
      if (step === "r2.complete" && lost-- > 0) {
        return () => {
          throw new Error("injected: answer lost");
        };
      }
    };
    const completed = await call(`${location}?digest=${digest}`, { method: "PUT" });
    expect(completed.status).toBe(201);
    expect(await sha256(await pulled(repository, digest))).toBe(digest);
  });

  it("a completed multipart upload whose state was not saved: the retried PUT takes the object, reads it back and completes", async () => {
    const repository = "review/complete-unsaved-unhashed";
    const bytes = randomBytes(7 * MiB + 11);
    const digest = await sha256(bytes);
    const location = await twoStreams(repository, bytes, 3 * MiB, bytes.byteLength);
    let failures = 1;
    seams.fault = (step) => {
      // The assembled state's save, after completion and the read back.
      if (step === "session.commit" && failures-- > 0) throw new Error("injected: storage fails");
    };
    const first = await call(`${location}?digest=${digest}`, { method: "PUT" });
    expect(first.status, await first.text()).toBeGreaterThanOrEqual(500);
    const retried = await call(`${location}?digest=${digest}`, { method: "PUT" });
    expect(retried.status).toBe(201);
    expect(await sha256(await pulled(repository, digest))).toBe(digest);
  });

  it("a stored blob of the digest is not linked before the read back: a wrong upload of its digest is refused", async () => {
    // Another repository holds the blob; this upload's bytes differ from it in one byte after the first stream.
    const repository = "review/no-dedupe-unhashed";
    const bytes = randomBytes(6000);
    const digest = await sha256(bytes);
    const elsewhere = await call(`/v2/review/elsewhere/blobs/uploads/?digest=${digest}`, { method: "POST", body: bytes });
    expect(elsewhere.status).toBe(201);
    const wrong = bytes.slice();
    wrong[4000]! ^= 1;
    const location = await twoStreams(repository, wrong, 3000, 6000);
    await expectError(await call(`${location}?digest=${digest}`, { method: "PUT" }), 400, "DIGEST_INVALID");
    await expectError(await call(`/v2/${repository}/blobs/${digest}`), 404, "BLOB_UNKNOWN");
  });
});

describe("a read back that fails", () => {
  it("answers 5xx and keeps the upload; the retried PUT reads the completed object back and completes", async () => {
    const repository = "review/read-back-fails";
    const bytes = randomBytes(7 * MiB + 11);
    const digest = await sha256(bytes);
    const location = await twoStreams(repository, bytes, 3 * MiB, bytes.byteLength);
    const stub = env.UPLOADS.get(env.UPLOADS.idFromName(location.split("/").at(-1)!));
    // The session's R2 binding fails its next get (the read back) once.
    await runInDurableObject(stub, (instance) => {
      const bindings = (instance as unknown as { env: Env }).env;
      const bucket = bindings.BLOBS;
      let failures = 1;
      const failing = new Proxy(bucket, {
        get(target, property) {
          if (property === "get" && failures > 0) {
            failures -= 1;
            return async () => {
              throw new Error("injected: R2 get fails");
            };
          }
          const value = Reflect.get(target, property);
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
      Object.defineProperty(bindings, "BLOBS", { value: failing, configurable: true, writable: true });
    });
    const first = await call(`${location}?digest=${digest}`, { method: "PUT" });
    expect(first.status, await first.text()).toBeGreaterThanOrEqual(500);
    const status = await call(location);
    expect(status.status).toBe(204);
    expect(offsetOf(status)).toBe(bytes.byteLength);
    const retried = await call(`${location}?digest=${digest}`, { method: "PUT" });
    expect(retried.status, await retried.clone().text()).toBe(201);
    expect(await sha256(await pulled(repository, digest))).toBe(digest);
  });
});

describe("the final PUT's body", () => {
  it("a streamed PUT body at offset 0 claiming the empty blob's digest is refused, not taken as a retry", async () => {
    const repository = "review/empty-digest";
    const empty = await sha256(new Uint8Array(0));
    const location = await startUpload(repository);
    const response = await call(`${location}?digest=${empty}`, { method: "PUT", body: streamOf(randomBytes(1000)), duplex: "half" } as RequestInit);
    await expectError(response, 400, "DIGEST_INVALID");
  });

  it("a PUT to an upload of another repository is refused, with or without a body, and leaves the upload", async () => {
    const bytes = randomBytes(3000);
    const digest = await sha256(bytes);
    const location = await startUpload("review/owner");
    expect((await call(location, { method: "PATCH", headers: { "Content-Range": "0-999" }, body: bytes.subarray(0, 1000) })).status).toBe(202);
    const foreign = location.replace("/v2/review/owner/", "/v2/review/intruder/");
    await expectError(await call(`${foreign}?digest=${digest}`, { method: "PUT" }), 404, "BLOB_UPLOAD_UNKNOWN");
    await expectError(await call(`${foreign}?digest=${digest}`, { method: "PUT", body: bytes.subarray(1000) }), 404, "BLOB_UPLOAD_UNKNOWN");
    const streamed = await call(`${foreign}?digest=${digest}`, { method: "PUT", body: streamOf(bytes.subarray(1000)), duplex: "half" } as RequestInit);
    await expectError(streamed, 404, "BLOB_UPLOAD_UNKNOWN");
    const status = await call(location);
    expect(status.status).toBe(204);
    expect(status.headers.get("Range")).toBe("0-999");
    expect((await call(`${location}?digest=${digest}`, { method: "PUT", headers: { "Content-Range": "1000-2999" }, body: bytes.subarray(1000) })).status).toBe(201);
    // Completed and forgotten: a repeated PUT finds no upload.
    await expectError(await call(`${location}?digest=${digest}`, { method: "PUT" }), 404, "BLOB_UPLOAD_UNKNOWN");
  });
});

describe("part boundaries that fall inside a read of the body", () => {
  // Bodies are read 1 MiB at a time; a blob that starts off that grid (a first chunk of 1000 bytes) has its 5 MiB part
  // boundaries inside a read, which is split between two parts.
  for (const [name, first, streamedRest] of [
    ["a declared chunk, then a streamed body (resumable hash)", "declared", true],
    ["a streamed chunk, then a streamed body (read back)", "streamed", true],
    ["a declared chunk, then a declared body", "declared", false],
  ] as const) {
    it(`stores every byte: ${name}`, async () => {
      const repository = `review/off-grid-${first}-${streamedRest}`;
      const bytes = randomBytes(11 * MiB + 777);
      const digest = await sha256(bytes);
      const location = await startUpload(repository);
      const head = bytes.subarray(0, 1000);
      const rest = bytes.subarray(1000);
      const one =
        first === "streamed"
          ? await streamedPatch(location, head)
          : await call(location, { method: "PATCH", headers: { "Content-Range": "0-999" }, body: head });
      expect(one.status).toBe(202);
      const two = streamedRest
        ? await streamedPatch(location, rest)
        : await call(location, { method: "PATCH", headers: { "Content-Range": `1000-${bytes.byteLength - 1}` }, body: rest });
      expect(two.status, await two.text()).toBe(202);
      expect(two.headers.get("Range")).toBe(`0-${bytes.byteLength - 1}`);
      const completed = await call(`${location}?digest=${digest}`, { method: "PUT" });
      expect(completed.status, await completed.text()).toBe(201);
      const back = await pulled(repository, digest);
      expect(back.byteLength).toBe(bytes.byteLength);
      expect(await sha256(back)).toBe(digest);
    });
  }
});

describe("the collector's mark walk over several pages", () => {
  it("a dry run walks the pages without moving the cursor or marking; the real pass then marks every one, once", async () => {
    const BLOBS = 47;
    const numbers = `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${BLOBS})`;
    await env.DB.prepare(
      `${numbers} INSERT INTO blobs (digest, size, object_key, created_at) SELECT 'sha256:' || printf('%064x', i + 9100000), 1, 'blobs/review-walk/' || i, 0 FROM n`,
    ).run();
    const ours = (blobs: { objectKey: string }[]) => blobs.filter((blob) => blob.objectKey.startsWith("blobs/review-walk/")).length;
    const marked = async () =>
      (await env.DB.prepare("SELECT COUNT(*) AS n FROM blobs WHERE object_key GLOB 'blobs/review-walk/*' AND deleting_at IS NOT NULL").first<{ n: number }>())!.n;
    const collector = new GarbageCollector(env.DB, env.BLOBS);
    const options = { graceMs: 3_600_000, batch: 10, subrequests: 500 };
    for (let run = 0; run < 2; run++) {
      const dry = await collector.run({ ...options, dryRun: true });
      expect(ours(dry.marked)).toBe(BLOBS);
      expect(dry.subrequests).toBeLessThanOrEqual(500);
      expect(await marked()).toBe(0);
      expect(await env.DB.prepare("SELECT value FROM gc_state WHERE name = 'markable:after'").first()).toBeNull();
    }
    const real = await collector.run({ ...options, dryRun: false });
    expect(ours(real.marked)).toBe(BLOBS);
    expect(await marked()).toBe(BLOBS);
    // The walk ended: its cursor is gone, and the next pass starts again from the first blob, marking none twice.
    expect(await env.DB.prepare("SELECT value FROM gc_state WHERE name = 'markable:after'").first()).toBeNull();
    const again = await collector.run({ ...options, dryRun: false });
    expect(ours(again.marked)).toBe(0);
  });

  it("a budget that affords one page only takes one, and the next pass goes on from its cursor", async () => {
    const BLOBS = 25;
    const numbers = `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${BLOBS})`;
    await env.DB.prepare(
      `${numbers} INSERT INTO blobs (digest, size, object_key, created_at) SELECT 'sha256:' || printf('%064x', i + 9200000), 1, 'blobs/review-tight/' || i, 0 FROM n`,
    ).run();
    const marked = async () =>
      (await env.DB.prepare("SELECT COUNT(*) AS n FROM blobs WHERE object_key GLOB 'blobs/review-tight/*' AND deleting_at IS NOT NULL").first<{ n: number }>())!.n;
    const collector = new GarbageCollector(env.DB, env.BLOBS);
    let passes = 0;
    while ((await marked()) < BLOBS) {
      // Unmark, deletable, then the walk's first page: 6 calls; the next page would leave less than the sweeps need.
      const report = await collector.run({ dryRun: false, graceMs: 3_600_000, batch: 10, subrequests: 40 });
      expect(report.subrequests).toBeLessThanOrEqual(40);
      passes += 1;
      expect(passes).toBeLessThan(20);
    }
    expect(await marked()).toBe(BLOBS);
  });
});
