import { env, evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { call, expectError, MiB, pushBlob, randomBytes, sha256, startUpload } from "./helpers";

function stubOf(location: string) {
  const uploadId = location.split("/").at(-1)!;
  return env.UPLOADS.get(env.UPLOADS.idFromName(uploadId));
}

async function patch(location: string, bytes: Uint8Array, start?: number) {
  const headers: Record<string, string> = { "Content-Type": "application/octet-stream" };
  if (start !== undefined) headers["Content-Range"] = `${start}-${start + bytes.byteLength - 1}`;
  return call(location, { method: "PATCH", headers, body: bytes });
}

async function uploadInChunks(repository: string, bytes: Uint8Array, chunkSizes: number[]) {
  const location = await startUpload(repository);
  let offset = 0;
  for (const size of chunkSizes) {
    const response = await patch(location, bytes.subarray(offset, offset + size), offset);
    expect(response.status).toBe(202);
    offset += size;
    expect(response.headers.get("Range")).toBe(`0-${offset - 1}`);
  }
  expect(offset).toBe(bytes.byteLength);
  return location;
}

/** A request body of unknown length (no Content-Length), in 256 KiB chunks, as docker streams a layer. */
function streamOf(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      for (let at = 0; at < bytes.byteLength; at += 256 * 1024) controller.enqueue(bytes.slice(at, at + 256 * 1024));
      controller.close();
    },
  });
}

/** A request body that sends the first `cut` bytes, then fails as a dropped connection does. */
function breaksOffAfter(bytes: Uint8Array, cut: number): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (at >= cut) {
        controller.error(new Error("connection lost"));
        return;
      }
      controller.enqueue(bytes.slice(at, Math.min(at + 256 * 1024, cut)));
      at += 256 * 1024;
    },
  });
}

/** A request body that sends the first `cut` bytes and then simply ends, short of what it declared. */
function endsAfter(bytes: Uint8Array, cut: number): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (at >= cut) {
        controller.close();
        return;
      }
      controller.enqueue(bytes.slice(at, Math.min(at + 256 * 1024, cut)));
      at += 256 * 1024;
    },
  });
}

async function offsetOf(location: string): Promise<number> {
  const response = await call(location);
  expect(response.status).toBe(204);
  return Number(response.headers.get("Range")!.split("-")[1]) + 1;
}

/** Sends the rest of `bytes` from `offset`, completes the upload and checks what is served. */
async function completeFrom(location: string, bytes: Uint8Array, offset: number, repository: string) {
  expect((await patch(location, bytes.subarray(offset), offset)).status).toBe(202);
  const digest = await sha256(bytes);
  expect((await call(`${location}?digest=${digest}`, { method: "PUT" })).status).toBe(201);
  expect(await sha256(await readBlob(repository, digest))).toBe(digest);
}

async function readBlob(repository: string, digest: string) {
  const response = await call(`/v2/${repository}/blobs/${digest}`);
  expect(response.status).toBe(200);
  return new Uint8Array(await response.arrayBuffer());
}

describe("starting an upload (POST)", () => {
  it("returns 202 with an unguessable Location, a Range and chunk length hints", async () => {
    const response = await call("/v2/uploads/start/blobs/uploads/", { method: "POST" });
    expect(response.status).toBe(202);
    expect(response.headers.get("Location")).toMatch(/^\/v2\/uploads\/start\/blobs\/uploads\/[0-9a-f-]{36}$/);
    expect(response.headers.get("Range")).toBe("0-0");
    expect(Number(response.headers.get("OCI-Chunk-Min-Length"))).toBeGreaterThan(0);
    expect(response.headers.get("OCI-Chunk-Max-Length")).toBe(String(12 * MiB));
  });
});

describe("POST then PUT (monolithic through a session)", () => {
  it("stores the body of the PUT", async () => {
    const bytes = randomBytes(2000);
    const digest = await sha256(bytes);
    const location = await startUpload("uploads/post-put");
    const response = await call(`${location}?digest=${digest}`, { method: "PUT", body: bytes });
    expect(response.status).toBe(201);
    expect(response.headers.get("Location")).toBe(`/v2/uploads/post-put/blobs/${digest}`);
    expect(response.headers.get("Docker-Content-Digest")).toBe(digest);
    expect(await sha256(await readBlob("uploads/post-put", digest))).toBe(digest);
  });

  it("stores a PUT body larger than a part in one piece, and forgets the session after a wrong digest", async () => {
    const bytes = randomBytes(6 * MiB + 3);
    const digest = await sha256(bytes);
    const location = await startUpload("uploads/post-put-large");
    expect((await call(`${location}?digest=${digest}`, { method: "PUT", body: bytes })).status).toBe(201);
    expect(await sha256(await readBlob("uploads/post-put-large", digest))).toBe(digest);
    await expectError(await call(location), 404, "BLOB_UPLOAD_UNKNOWN");

    const wrong = await startUpload("uploads/post-put-large");
    const refused = await call(`${wrong}?digest=${await sha256("other")}`, { method: "PUT", body: bytes.subarray(1) });
    await expectError(refused, 400, "DIGEST_INVALID");
    await expectError(await call(wrong), 404, "BLOB_UPLOAD_UNKNOWN");
  });

  it("completes a zero-length blob with an empty PUT", async () => {
    const digest = await sha256(new Uint8Array(0));
    const location = await startUpload("uploads/empty");
    expect((await call(`${location}?digest=${digest}`, { method: "PUT" })).status).toBe(201);
    expect((await readBlob("uploads/empty", digest)).byteLength).toBe(0);
  });
});

describe("chunked upload (PATCH with Content-Range)", () => {
  it("assembles 1 MiB chunks that cross R2 part boundaries", async () => {
    const bytes = randomBytes(11 * MiB + 123);
    const sizes = [...Array(11).fill(MiB), 123];
    const location = await uploadInChunks("uploads/chunked", bytes, sizes);
    const digest = await sha256(bytes);
    expect((await call(`${location}?digest=${digest}`, { method: "PUT" })).status).toBe(201);
    expect(await sha256(await readBlob("uploads/chunked", digest))).toBe(digest);
  });

  it("re-cuts uneven chunks (3 MiB, 4 MiB, 7 MiB, 1 byte) into equal parts", async () => {
    const bytes = randomBytes(14 * MiB + 1);
    const location = await uploadInChunks("uploads/uneven", bytes, [3 * MiB, 4 * MiB, 7 * MiB, 1]);
    const digest = await sha256(bytes);
    expect((await call(`${location}?digest=${digest}`, { method: "PUT" })).status).toBe(201);
    expect(await sha256(await readBlob("uploads/uneven", digest))).toBe(digest);
  });

  it("takes hundreds of 1-byte chunks, then larger ones that cross a part boundary", async () => {
    const tiny = 300;
    const bytes = randomBytes(tiny + 3 * MiB + 4 * MiB + 17);
    const location = await uploadInChunks("uploads/one-byte", bytes, [...Array(tiny).fill(1), 3 * MiB, 4 * MiB, 17]);
    const digest = await sha256(bytes);
    expect((await call(`${location}?digest=${digest}`, { method: "PUT" })).status).toBe(201);
    expect(await sha256(await readBlob("uploads/one-byte", digest))).toBe(digest);
    // Nothing of the session is left behind: its pending pieces went into the parts and the session is gone.
    expect(await runInDurableObject(stubOf(location), async (_instance, state) => (await state.storage.list()).size)).toBe(0);
  });

  it("returns 416 and keeps the session when a chunk leaves a gap or overlaps", async () => {
    const bytes = randomBytes(3000);
    const location = await startUpload("uploads/gap");
    expect((await patch(location, bytes.subarray(0, 1000), 0)).status).toBe(202);
    const uploadId = location.split("/").at(-1)!;
    const stored = async () => (await env.BLOBS.list({ prefix: `uploads/${uploadId}/` })).objects.map((object) => object.key);
    const before = await stored();
    const gap = await patch(location, bytes.subarray(2000), 2000);
    await expectError(gap, 416, "RANGE_INVALID");
    expect(gap.headers.get("Range")).toBe("0-999");
    const overlap = await patch(location, bytes.subarray(500, 1500), 500);
    expect(overlap.status).toBe(416);
    const status = await call(location);
    expect(status.status).toBe(204);
    expect(status.headers.get("Range")).toBe("0-999");
    expect(await stored()).toEqual(before);
    // The session is intact: the right chunk continues it.
    expect((await patch(location, bytes.subarray(1000), 1000)).status).toBe(202);
    const digest = await sha256(bytes);
    expect((await call(`${location}?digest=${digest}`, { method: "PUT" })).status).toBe(201);
    expect(await sha256(await readBlob("uploads/gap", digest))).toBe(digest);
  });

  it("refuses a chunk whose Content-Range and Content-Length disagree, leaving the session as it was", async () => {
    const location = await startUpload("uploads/liar");
    const response = await call(location, {
      method: "PATCH",
      headers: { "Content-Range": "0-99", "Content-Type": "application/octet-stream" },
      body: randomBytes(50),
    });
    expect(response.status).toBe(416);
    expect((await call(location)).headers.get("Range")).toBe("0-0");
  });
});

describe("streamed upload (PATCH without Content-Range)", () => {
  it("appends whole streamed bodies, as docker and skopeo send them", async () => {
    const bytes = randomBytes(6 * MiB + 7);
    const location = await startUpload("uploads/streamed");
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let at = 0; at < bytes.byteLength; at += 256 * 1024) controller.enqueue(bytes.slice(at, at + 256 * 1024));
        controller.close();
      },
    });
    const response = await call(location, { method: "PATCH", body: stream, duplex: "half" } as RequestInit);
    expect(response.status).toBe(202);
    expect(response.headers.get("Range")).toBe(`0-${bytes.byteLength - 1}`);
    const digest = await sha256(bytes);
    expect((await call(`${location}?digest=${digest}`, { method: "PUT" })).status).toBe(201);
    expect(await sha256(await readBlob("uploads/streamed", digest))).toBe(digest);
  });

  it("keeps every byte of a body of unknown length that breaks off mid-part, and resumes from there", async () => {
    const bytes = randomBytes(9 * MiB);
    const location = await startUpload("uploads/broken-unknown");
    await call(location, { method: "PATCH", body: breaksOffAfter(bytes, 7 * MiB), duplex: "half" } as RequestInit).catch(() => undefined);
    const offset = await offsetOf(location);
    // One 5 MiB part was filled; what arrived of the second is stored as a piece.
    expect(offset).toBeGreaterThan(5 * MiB);
    expect(offset).toBeLessThanOrEqual(7 * MiB);
    await completeFrom(location, bytes, offset, "uploads/broken-unknown");
  });

  it("falls back to the last full part when a body of declared length breaks off while streaming a part", async () => {
    const bytes = randomBytes(12 * MiB);
    const location = await startUpload("uploads/broken-declared");
    await call(location, {
      method: "PATCH",
      headers: { "Content-Length": String(bytes.byteLength) },
      body: breaksOffAfter(bytes, 7 * MiB),
      duplex: "half",
    } as RequestInit).catch(() => undefined);
    // The second part was streaming to R2 with no copy kept: the session is back at the end of the first.
    expect(await offsetOf(location)).toBe(5 * MiB);
    await completeFrom(location, bytes, 5 * MiB, "uploads/broken-declared");
  });

  // A body of unknown length that starts the blob is hashed natively, and that hash cannot take more bytes: a second
  // streamed PATCH leaves bytes no hash covers, checked on the assembled object (a put R2 checks, or a read back).
  for (const [name, sizes] of [
    ["multipart object", [7 * MiB, 5 * MiB + 3]],
    ["single put", [MiB, MiB + 3]],
  ] as const) {
    it(`checks the digest of two streamed PATCHes on the assembled object (${name}), refusing a wrong one`, async () => {
      const repository = `uploads/two-streams-${sizes[0]}`;
      const bytes = randomBytes(sizes[0] + sizes[1]);
      const digest = await sha256(bytes);
      const wrongBytes = bytes.slice();
      wrongBytes[sizes[0] + 1]! ^= 1;
      for (const [sent, claimed] of [
        [wrongBytes, digest],
        [bytes, digest],
      ] as const) {
        const location = await startUpload(repository);
        for (const [from, to] of [
          [0, sizes[0]],
          [sizes[0], sent.byteLength],
        ] as const) {
          const response = await call(location, { method: "PATCH", body: streamOf(sent.subarray(from, to)), duplex: "half" } as RequestInit);
          expect(response.status).toBe(202);
          expect(response.headers.get("Range")).toBe(`0-${to - 1}`);
        }
        const completed = await call(`${location}?digest=${claimed}`, { method: "PUT" });
        const uploadId = location.split("/").at(-1)!;
        if (sent === wrongBytes) {
          await expectError(completed, 400, "DIGEST_INVALID");
          await expectError(await call(`/v2/${repository}/blobs/${digest}`), 404, "BLOB_UNKNOWN");
          await expectError(await call(location), 404, "BLOB_UPLOAD_UNKNOWN");
          expect((await env.BLOBS.list({ prefix: `uploads/${uploadId}/` })).objects).toEqual([]);
        } else {
          expect(completed.status).toBe(201);
          expect(await sha256(await readBlob(repository, digest))).toBe(digest);
        }
      }
    });
  }

  it("refuses a wrong digest for one streamed PATCH (hashed natively) before assembling anything", async () => {
    const bytes = randomBytes(6 * MiB + 5);
    const location = await startUpload("uploads/streamed-wrong");
    expect((await call(location, { method: "PATCH", body: streamOf(bytes), duplex: "half" } as RequestInit)).status).toBe(202);
    const wrong = await sha256(bytes.subarray(1));
    await expectError(await call(`${location}?digest=${wrong}`, { method: "PUT" }), 400, "DIGEST_INVALID");
    await expectError(await call(location), 404, "BLOB_UPLOAD_UNKNOWN");
    const uploadId = location.split("/").at(-1)!;
    expect((await env.BLOBS.list({ prefix: `uploads/${uploadId}/` })).objects).toEqual([]);
  });

  it("refuses a body over the configured limit with 413 and leaves the session as it was", async () => {
    const location = await startUpload("uploads/too-big");
    const response = await patch(location, randomBytes(13 * MiB));
    await expectError(response, 413, "REQUEST_TOO_LARGE");
    expect((await call(location)).headers.get("Range")).toBe("0-0");
  });
});

describe("completing an upload (PUT ?digest=)", () => {
  it("rejects a wrong digest, discards the bytes and forgets the session", async () => {
    const location = await startUpload("uploads/wrong");
    await patch(location, randomBytes(6 * MiB), 0);
    const wrong = await sha256("something else");
    await expectError(await call(`${location}?digest=${wrong}`, { method: "PUT" }), 400, "DIGEST_INVALID");
    await expectError(await call(`/v2/uploads/wrong/blobs/${wrong}`), 404, "BLOB_UNKNOWN");
    await expectError(await call(location), 404, "BLOB_UPLOAD_UNKNOWN");
    const uploadId = location.split("/").at(-1)!;
    expect((await env.BLOBS.list({ prefix: `uploads/${uploadId}/` })).objects).toEqual([]);
  });

  it("keeps the session when the final PUT's body ends early: 416 with the Range stored, and a resume finishes it", async () => {
    const repository = "uploads/put-cut-off";
    const bytes = randomBytes(9 * MiB);
    const digest = await sha256(bytes);
    const location = await startUpload(repository);
    expect((await patch(location, bytes.subarray(0, 3 * MiB), 0)).status).toBe(202);
    // The last 6 MiB declared, 4 MiB sent: the part that began streaming is kept only up to the part boundary.
    const cut = await call(`${location}?digest=${digest}`, {
      method: "PUT",
      headers: { "Content-Range": `${3 * MiB}-${9 * MiB - 1}`, "Content-Length": String(6 * MiB) },
      body: endsAfter(bytes.subarray(3 * MiB), 4 * MiB),
      duplex: "half",
    } as RequestInit).catch(() => null);
    if (cut) {
      const body = await expectError(cut, 416, "RANGE_INVALID");
      expect(body.errors[0]!.message).toMatch(/resume/);
      expect(cut.headers.get("Range")).toBe(`0-${(await offsetOf(location)) - 1}`);
    }
    const offset = await offsetOf(location);
    expect(offset).toBeGreaterThanOrEqual(3 * MiB);
    expect(offset).toBeLessThanOrEqual(7 * MiB);
    await completeFrom(location, bytes, offset, repository);
  });

  it("keeps the session when a whole-blob PUT after POST ends early, and the repeated PUT completes", async () => {
    const repository = "uploads/whole-cut";
    const bytes = randomBytes(3 * MiB);
    const digest = await sha256(bytes);
    const location = await startUpload(repository);
    const cut = await call(`${location}?digest=${digest}`, {
      method: "PUT",
      headers: { "Content-Length": String(bytes.byteLength) },
      body: endsAfter(bytes, 2 * MiB),
      duplex: "half",
    } as RequestInit).catch(() => null);
    if (cut) {
      await expectError(cut, 416, "RANGE_INVALID");
      expect(cut.headers.get("Range")).toBe("0-0");
    }
    // The session is still there, holding nothing ("0-0", as Distribution says it).
    const status = await call(location);
    expect([status.status, status.headers.get("Range")]).toEqual([204, "0-0"]);
    const again = await call(`${location}?digest=${digest}`, { method: "PUT", headers: { "Content-Length": String(bytes.byteLength) }, body: bytes });
    expect(again.status).toBe(201);
    expect(await sha256(new Uint8Array(await (await call(`/v2/${repository}/blobs/${digest}`)).arrayBuffer()))).toBe(digest);
  });

  it("completes a PUT repeated after its body was taken (its answer lost): the bytes already have the digest", async () => {
    const repository = "uploads/put-repeated";
    const bytes = randomBytes(7 * MiB);
    const digest = await sha256(bytes);
    const location = await startUpload(repository);
    expect((await patch(location, bytes.subarray(0, 6 * MiB), 0)).status).toBe(202);
    // As if a PUT carrying the last MiB had been taken and its answer lost: the session has every byte.
    expect((await patch(location, bytes.subarray(6 * MiB), 6 * MiB)).status).toBe(202);
    const repeated = await call(`${location}?digest=${digest}`, {
      method: "PUT",
      headers: { "Content-Range": `${6 * MiB}-${7 * MiB - 1}` },
      body: bytes.subarray(6 * MiB),
    });
    expect(repeated.status).toBe(201);
    expect(await sha256(await readBlob(repository, digest))).toBe(digest);
  });

  it("requires the digest parameter and refuses a malformed one", async () => {
    const location = await startUpload("uploads/nodigest");
    await expectError(await call(location, { method: "PUT" }), 400, "DIGEST_INVALID");
    await expectError(await call(`${location}?digest=sha256:short`, { method: "PUT" }), 400, "DIGEST_INVALID");
    // The session survives a refused completion.
    expect((await call(location)).status).toBe(204);
  });

  it("answers a PUT to an already completed upload with BLOB_UPLOAD_UNKNOWN", async () => {
    const bytes = randomBytes(100);
    const digest = await sha256(bytes);
    const location = await startUpload("uploads/twice");
    expect((await call(`${location}?digest=${digest}`, { method: "PUT", body: bytes })).status).toBe(201);
    await expectError(await call(`${location}?digest=${digest}`, { method: "PUT", body: bytes }), 404, "BLOB_UPLOAD_UNKNOWN");
  });

  it("verifies sha512 digests of multipart uploads", async () => {
    const bytes = randomBytes(6 * MiB);
    const hash = new Uint8Array(await crypto.subtle.digest("SHA-512", bytes));
    const digest = `sha512:${[...hash].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
    const location = await startUpload("uploads/sha512");
    await patch(location, bytes, 0);
    expect((await call(`${location}?digest=${digest}`, { method: "PUT" })).status).toBe(201);
    expect(await sha256(await readBlob("uploads/sha512", digest))).toBe(await sha256(bytes));
  });
});

describe("upload sessions are bound to their repository", () => {
  it("answers another repository's upload id with BLOB_UPLOAD_UNKNOWN and leaves it untouched", async () => {
    const location = await startUpload("owner/repo");
    const uploadId = location.split("/").at(-1)!;
    const foreign = `/v2/intruder/repo/blobs/uploads/${uploadId}`;
    await expectError(await patch(foreign, randomBytes(10), 0), 404, "BLOB_UPLOAD_UNKNOWN");
    await expectError(await call(foreign), 404, "BLOB_UPLOAD_UNKNOWN");
    await expectError(await call(foreign, { method: "DELETE" }), 404, "BLOB_UPLOAD_UNKNOWN");
    await expectError(await call(`${foreign}?digest=${await sha256("")}`, { method: "PUT" }), 404, "BLOB_UPLOAD_UNKNOWN");
    expect((await call(location)).status).toBe(204);
  });

  it("answers a made-up upload id with BLOB_UPLOAD_UNKNOWN", async () => {
    await expectError(await call("/v2/app/blobs/uploads/not-an-id"), 404, "BLOB_UPLOAD_UNKNOWN");
    await expectError(await call(`/v2/app/blobs/uploads/${crypto.randomUUID()}`), 404, "BLOB_UPLOAD_UNKNOWN");
  });
});

describe("cancelling and expiry", () => {
  it("DELETE mid-upload aborts the multipart upload, removes everything stored and forgets the id", async () => {
    const bytes = randomBytes(7 * MiB);
    const location = await startUpload("uploads/cancel");
    // One full part in the multipart upload, 2 MiB pending.
    expect((await patch(location, bytes, 0)).status).toBe(202);
    const multipartId = await runInDurableObject(stubOf(location), async (_instance, state) => {
      return (await state.storage.get<{ multipartId: string }>("session"))!.multipartId;
    });
    expect(multipartId).toBeTruthy();
    expect((await call(location, { method: "DELETE" })).status).toBe(204);

    await expectError(await call(location), 404, "BLOB_UPLOAD_UNKNOWN");
    await expectError(await patch(location, randomBytes(10), 7 * MiB), 404, "BLOB_UPLOAD_UNKNOWN");
    await expectError(await call(`${location}?digest=${await sha256(bytes)}`, { method: "PUT" }), 404, "BLOB_UPLOAD_UNKNOWN");
    await expectError(await call(location, { method: "DELETE" }), 404, "BLOB_UPLOAD_UNKNOWN");
    const uploadId = location.split("/").at(-1)!;
    expect((await env.BLOBS.list({ prefix: `uploads/${uploadId}/` })).objects).toEqual([]);
    const aborted = env.BLOBS.resumeMultipartUpload(`uploads/${uploadId}/data`, multipartId);
    await expect(aborted.uploadPart(2, randomBytes(10))).rejects.toThrow();
  });

  it("an abandoned session expires through its alarm, aborting its multipart upload", async () => {
    const location = await startUpload("uploads/abandoned");
    await patch(location, randomBytes(7 * MiB), 0);
    const stub = stubOf(location);
    const multipartId = await runInDurableObject(stub, async (_instance, state) => {
      const session = await state.storage.get<{ multipartId: string; touchedAt: number }>("session");
      // Age the session past its time to live.
      await state.storage.put("session", { ...session, touchedAt: 0 });
      return session!.multipartId;
    });
    expect(multipartId).toBeTruthy();
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    await expectError(await call(location), 404, "BLOB_UPLOAD_UNKNOWN");
    const uploadId = location.split("/").at(-1)!;
    expect((await env.BLOBS.list({ prefix: `uploads/${uploadId}/` })).objects).toEqual([]);
    const aborted = env.BLOBS.resumeMultipartUpload(`uploads/${uploadId}/data`, multipartId);
    await expect(aborted.uploadPart(2, randomBytes(10))).rejects.toThrow();
  });

  it("a session touched recently is not expired by its alarm", async () => {
    const location = await startUpload("uploads/active");
    expect(await runDurableObjectAlarm(stubOf(location))).toBe(true);
    expect((await call(location)).status).toBe(204);
  });
});

describe("sessions survive their Durable Object being evicted", () => {
  it("continues exactly where it was after an eviction between every chunk", async () => {
    const bytes = randomBytes(12 * MiB + 5);
    const location = await startUpload("uploads/evicted");
    const sizes = [2 * MiB, 4 * MiB, 3 * MiB, 3 * MiB, 5];
    let offset = 0;
    for (const size of sizes) {
      await evictDurableObject(stubOf(location)).catch(() => undefined);
      expect((await patch(location, bytes.subarray(offset, offset + size), offset)).status).toBe(202);
      offset += size;
    }
    await evictDurableObject(stubOf(location)).catch(() => undefined);
    const digest = await sha256(bytes);
    expect((await call(`${location}?digest=${digest}`, { method: "PUT" })).status).toBe(201);
    expect(await sha256(await readBlob("uploads/evicted", digest))).toBe(digest);
  });
});

describe("concurrent uploads of the same blob", () => {
  it("all succeed and the bytes are stored once", async () => {
    const bytes = randomBytes(6 * MiB);
    const digest = await sha256(bytes);
    const repositories = ["race/a", "race/b", "race/c", "race/a"];
    const results = await Promise.all(
      repositories.map(async (repository) => {
        const location = await startUpload(repository);
        await patch(location, bytes, 0);
        return call(`${location}?digest=${digest}`, { method: "PUT" });
      }),
    );
    expect(results.map((response) => response.status)).toEqual([201, 201, 201, 201]);
    for (const repository of new Set(repositories)) expect(await sha256(await readBlob(repository, digest))).toBe(digest);
    // One copy of the bytes in R2: the one D1 points to. Losers of the race deleted theirs.
    const row = await env.DB.prepare("SELECT object_key FROM blobs WHERE digest = ?").bind(digest).first<{ object_key: string }>();
    const copies: string[] = [];
    for (const object of (await env.BLOBS.list({ prefix: "uploads/" })).objects) {
      if (object.size !== bytes.byteLength) continue;
      const stored = await env.BLOBS.get(object.key);
      if ((await sha256(new Uint8Array(await stored!.arrayBuffer()))) === digest) copies.push(object.key);
    }
    expect(copies).toEqual([row!.object_key]);
  });
});

describe("cross-repository mount", () => {
  it("mounts a blob from a repository that holds it: 201", async () => {
    const digest = await pushBlob("mount/source", "mounted bytes");
    const response = await call(`/v2/mount/target/blobs/uploads/?mount=${digest}&from=mount/source`, { method: "POST" });
    expect(response.status).toBe(201);
    expect(response.headers.get("Location")).toBe(`/v2/mount/target/blobs/${digest}`);
    expect(response.headers.get("Docker-Content-Digest")).toBe(digest);
    expect((await call(`/v2/mount/target/blobs/${digest}`)).status).toBe(200);
  });

  it("falls back to an upload session (202) when the source does not hold the blob", async () => {
    const digest = await pushBlob("mount/elsewhere", "not in source");
    for (const from of ["mount/empty-source", "INVALID..name"]) {
      const response = await call(`/v2/mount/fallback/blobs/uploads/?mount=${digest}&from=${from}`, { method: "POST" });
      expect(response.status).toBe(202);
      expect(response.headers.get("Location")).toMatch(/\/v2\/mount\/fallback\/blobs\/uploads\//);
    }
    await expectError(await call(`/v2/mount/fallback/blobs/${digest}`), 404, "BLOB_UNKNOWN");
  });
});
