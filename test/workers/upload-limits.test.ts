import { env, runInDurableObject } from "cloudflare:test";
import { afterEach, describe, expect, it } from "vitest";
import { configOf, ConfigError } from "../../src/config";
import { MAX_PIECES } from "../../src/uploads/parts";
import { seams } from "../../src/uploads/seams";
import { call, expectError, MiB, randomBytes, sha256, startUpload } from "./helpers";

const stubOf = (location: string) => env.UPLOADS.get(env.UPLOADS.idFromName(location.split("/").at(-1)!));

interface StoredState {
  phase: string;
  offset: number;
  partSize: number;
  parts: number;
  pending: { key: string; size: number }[];
  multipartId: string | null;
  [field: string]: unknown;
}

/** The session's persisted state, its size as stored (JSON, an upper bound of its structured-clone size) and its keys. */
function storedState(location: string) {
  return runInDurableObject(stubOf(location), async (_instance, state) => {
    const session = (await state.storage.get<StoredState>("session"))!;
    return { session, bytes: JSON.stringify(session).length, keys: (await state.storage.list()).size };
  });
}

async function patch(location: string, bytes: Uint8Array, start?: number) {
  const headers: Record<string, string> = { "Content-Type": "application/octet-stream" };
  if (start !== undefined) headers["Content-Range"] = `${start}-${start + bytes.byteLength - 1}`;
  return call(location, { method: "PATCH", headers, body: bytes });
}

function streamOf(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      controller.enqueue(bytes.slice());
      controller.close();
    },
  });
}

async function offsetOf(location: string): Promise<number> {
  const response = await call(location);
  expect(response.status).toBe(204);
  return Number(response.headers.get("Range")!.split("-")[1]) + 1;
}

async function pullsBack(repository: string, bytes: Uint8Array) {
  const digest = await sha256(bytes);
  const response = await call(`/v2/${repository}/blobs/${digest}`);
  expect(response.status).toBe(200);
  const pulled = new Uint8Array(await response.arrayBuffer());
  expect(pulled.byteLength).toBe(bytes.byteLength);
  expect(await sha256(pulled)).toBe(digest);
}

afterEach(() => {
  delete seams.maxParts;
});

describe("small chunks keep the session's state bounded", () => {
  it("completes an upload of 50,000 one-byte PATCHes, its state never past the same small size", { timeout: 600_000 }, async () => {
    const count = 50_000;
    const bytes = randomBytes(count);
    const location = await startUpload("limits/one-byte");
    const started = Date.now();
    let largest = 0;
    for (let at = 0; at < count; at++) {
      const response = await patch(location, bytes.subarray(at, at + 1), at);
      if (response.status !== 202) expect(response.status, `PATCH ${at}: ${await response.text()}`).toBe(202);
      if (at % 5000 === 4999 || at < 3 * 64) {
        const { session, bytes: size, keys } = await storedState(location);
        expect(session.offset).toBe(at + 1);
        expect(session.pending.length).toBeLessThanOrEqual(MAX_PIECES);
        // The state, its pieces and nothing else: as many keys at 50,000 chunks as at 100.
        expect(keys).toBe(session.pending.length + 1);
        largest = Math.max(largest, size);
      }
    }
    const elapsed = Date.now() - started;
    console.log(`${count} one-byte PATCHes: ${elapsed} ms (${(elapsed / count).toFixed(2)} ms each); largest state ${largest} bytes`);
    expect(largest).toBeLessThan(8 * 1024);
    const digest = await sha256(bytes);
    expect((await call(`${location}?digest=${digest}`, { method: "PUT" })).status).toBe(201);
    await pullsBack("limits/one-byte", bytes);
  });
});

describe("R2's cap of 10,000 parts", () => {
  it("refuses a chunk that would need part 10,001 with 413, before reading it, and keeps every byte stored", async () => {
    // Seeded at 9,999 full parts (50 GB of real parts is out of reach in a test): refusing needs only their count,
    // so the production cap itself is what refuses. Part 10,000 is real, in a real multipart upload.
    const location = await startUpload("limits/cap-seeded");
    const uploadId = location.split("/").at(-1)!;
    const multipart = await env.BLOBS.createMultipartUpload(`uploads/${uploadId}/data`);
    const full = 9_999 * 5 * MiB;
    await runInDurableObject(stubOf(location), async (_instance, state) => {
      const session = (await state.storage.get<StoredState>("session"))!;
      await state.storage.put("session", { ...session, offset: full, parts: 9_999, multipartId: multipart.uploadId });
    });

    const over = await patch(location, randomBytes(5 * MiB + 1), full);
    const body = await expectError(over, 413, "REQUEST_TOO_LARGE");
    expect(body.errors[0]!.message).toMatch(/at most 10000 parts/);
    expect(over.headers.get("Range")).toBe(`0-${full - 1}`);
    expect(await offsetOf(location)).toBe(full);

    // Exactly the 10,000th part fits; past it, nothing does, declared or streamed.
    expect((await patch(location, randomBytes(5 * MiB), full)).status).toBe(202);
    expect(await offsetOf(location)).toBe(full + 5 * MiB);
    await expectError(await patch(location, randomBytes(1), full + 5 * MiB), 413, "REQUEST_TOO_LARGE");
    const streamed = await call(location, { method: "PATCH", body: streamOf(randomBytes(10)), duplex: "half" } as RequestInit);
    await expectError(streamed, 413, "REQUEST_TOO_LARGE");
    const { session } = await storedState(location);
    expect(session).toMatchObject({ offset: full + 5 * MiB, parts: 10_000, pending: [] });
    expect((await call(location, { method: "DELETE" })).status).toBe(204);
  });

  it("with the cap lowered to 3 parts: the fourth is refused up front or as it streams, and the upload still completes whole", async () => {
    // The cap made reachable (seams.maxParts) so that the refused upload can be completed and pulled back.
    seams.maxParts = 3;
    const repository = "limits/cap-lowered";
    const bytes = randomBytes(15 * MiB);
    const location = await startUpload(repository);
    expect((await patch(location, bytes.subarray(0, 10 * MiB), 0)).status).toBe(202);

    const declared = await patch(location, randomBytes(5 * MiB + 1), 10 * MiB);
    await expectError(declared, 413, "REQUEST_TOO_LARGE");
    expect(declared.headers.get("Range")).toBe(`0-${10 * MiB - 1}`);
    // Unknown length: the third part fills and goes to R2, then the byte past the cap refuses the request, unsaved.
    const tooMuch = new Uint8Array(5 * MiB + 1);
    tooMuch.set(bytes.subarray(10 * MiB));
    const streamed = await call(location, { method: "PATCH", body: streamOf(tooMuch), duplex: "half" } as RequestInit);
    await expectError(streamed, 413, "REQUEST_TOO_LARGE");
    expect(await offsetOf(location)).toBe(10 * MiB);

    expect((await patch(location, bytes.subarray(10 * MiB), 10 * MiB)).status).toBe(202);
    await expectError(await patch(location, randomBytes(1), 15 * MiB), 413, "REQUEST_TOO_LARGE");
    // A last byte in the completing PUT is refused alike, and the session kept.
    const longer = new Uint8Array(15 * MiB + 1);
    longer.set(bytes);
    const withBody = await call(`${location}?digest=${await sha256(longer)}`, { method: "PUT", body: longer.subarray(15 * MiB) });
    await expectError(withBody, 413, "REQUEST_TOO_LARGE");
    const digest = await sha256(bytes);
    expect(await offsetOf(location)).toBe(15 * MiB);
    expect((await call(`${location}?digest=${digest}`, { method: "PUT" })).status).toBe(201);
    await pullsBack(repository, bytes);
  });
});

describe("the part size belongs to the session", () => {
  it("keeps the part size it was created with when UPLOAD_PART_BYTES changes (a redeploy)", async () => {
    const repository = "limits/part-size";
    const bytes = randomBytes(14 * MiB);
    const location = await startUpload(repository);
    // Created under UPLOAD_PART_BYTES = 6 MiB; this deployment says 5 MiB.
    await runInDurableObject(stubOf(location), async (_instance, state) => {
      const session = (await state.storage.get<StoredState>("session"))!;
      expect(session.partSize).toBe(5 * MiB);
      await state.storage.put("session", { ...session, partSize: 6 * MiB });
    });
    expect((await patch(location, bytes.subarray(0, 7 * MiB), 0)).status).toBe(202);
    expect((await patch(location, bytes.subarray(7 * MiB), 7 * MiB)).status).toBe(202);
    const { session } = await storedState(location);
    expect(session.parts).toBe(2);
    expect(session.pending.reduce((sum, piece) => sum + piece.size, 0)).toBe(2 * MiB);
    expect((await call(`${location}?digest=${await sha256(bytes)}`, { method: "PUT" })).status).toBe(201);
    await pullsBack(repository, bytes);
  });

  it("continues sessions saved before it kept one: the part size its parts show, else the configured one", async () => {
    const repository = "limits/legacy";
    const toLegacy = (location: string) =>
      runInDurableObject(stubOf(location), async (_instance, state) => {
        const { phase: _phase, partSize: _partSize, parts, ...rest } = (await state.storage.get<StoredState>("session"))!;
        const uploaded = [];
        for (let number = 1; number <= parts; number++) {
          uploaded.push(await state.storage.get(`part:${number}`));
          await state.storage.delete(`part:${number}`);
        }
        await state.storage.put("session", { ...rest, parts: uploaded });
      });

    const withParts = randomBytes(12 * MiB);
    const first = await startUpload(repository);
    expect((await patch(first, withParts.subarray(0, 7 * MiB), 0)).status).toBe(202);
    await toLegacy(first);
    expect(await offsetOf(first)).toBe(7 * MiB);
    expect((await patch(first, withParts.subarray(7 * MiB), 7 * MiB)).status).toBe(202);
    expect((await storedState(first)).session).toMatchObject({ phase: "receiving", partSize: 5 * MiB, parts: 2 });
    expect((await call(`${first}?digest=${await sha256(withParts)}`, { method: "PUT" })).status).toBe(201);
    await pullsBack(repository, withParts);

    const small = randomBytes(3000);
    const second = await startUpload(repository);
    expect((await patch(second, small.subarray(0, 1000), 0)).status).toBe(202);
    await toLegacy(second);
    expect((await call(`${second}?digest=${await sha256(small)}`, { method: "PUT", body: small.subarray(1000) })).status).toBe(201);
    await pullsBack(repository, small);
  });
});

describe("UPLOAD_PART_BYTES", () => {
  it("is bounded to 5 MiB (R2's smallest part) .. 32 MiB (a part a body of unknown length holds in memory)", () => {
    const parse = (value: number) => configOf({ ...env, UPLOAD_PART_BYTES: String(value) });
    expect(parse(5 * MiB).UPLOAD_PART_BYTES).toBe(5 * MiB);
    expect(parse(32 * MiB).UPLOAD_PART_BYTES).toBe(32 * MiB);
    expect(() => parse(32 * MiB + 1)).toThrow(ConfigError);
    expect(() => parse(32 * MiB + 1)).toThrow(/UPLOAD_PART_BYTES/);
    expect(() => parse(5 * MiB - 1)).toThrow(/UPLOAD_PART_BYTES/);
  });
});
