import { env, evictDurableObject, runInDurableObject } from "cloudflare:test";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { interleavings } from "../../src/storage/blob-records";
import { seams, type Step } from "../../src/uploads/seams";
import { call, expectError, MiB, pushBlob, randomBytes, sha256, startUpload } from "./helpers";

// Fault injection at every step boundary of an upload: each step that changes something outside the request (R2, D1,
// the session's storage; src/uploads/seams.ts) fails before it takes effect, or takes effect and its answer is lost,
// or takes effect and the Durable Object restarts. The client then retries as clients do: it repeats a failed POST
// or PUT, and after a failed PATCH asks where the upload stands (GET) and sends the rest from there. Every run must
// end with the blob stored and pulled back byte for byte, the session gone, no multipart upload left open and no
// object that no row names; at every point in between, GET on the upload answers what the session stores.

type Fault = "fails" | "answer lost" | "restart";
const FAULTS: Fault[] = ["fails", "answer lost", "restart"];

type Range = [from: number, to: number];
type ClientRequest = { patch: Range; streamed?: boolean } | { put: Range | null };

interface Scenario {
  size: number;
  /** Pushed into another repository first, so that completion links the stored blob. */
  storedElsewhere?: boolean;
  requests: ClientRequest[];
  /** The steps a run without faults takes, in order (after the POST's own). */
  steps: Step[];
}

const SCENARIOS: Record<string, Scenario> = {
  "chunks across parts, the last in the PUT": {
    size: 11 * MiB + 5,
    requests: [{ patch: [0, 6 * MiB] }, { patch: [6 * MiB, 9 * MiB] }, { put: [9 * MiB, 11 * MiB + 5] }],
    steps: [
      // PATCH 0-6 MiB: the multipart upload, saved at once; part 1; the state with 1 MiB pending
      "r2.createMultipart", "session.commit", "r2.uploadPart", "session.commit",
      // PATCH 6-9 MiB: kept as pieces
      "session.commit",
      // PUT with the last 2 MiB: part 2 and the state; then the digest looked up, the last part, completion,
      // assembled saved, the D1 record, recorded saved
      "r2.uploadPart", "session.commit", "d1.findStored", "r2.uploadPart", "r2.complete", "session.commit", "d1.record", "session.commit",
    ],
  },
  "one body of unknown length, then an empty PUT": {
    size: 7 * MiB,
    requests: [{ patch: [0, 7 * MiB], streamed: true }, { put: null }],
    steps: [
      // part 1, then part 2 streaming with a copy kept until the body ends short of it
      "r2.createMultipart", "session.commit", "r2.uploadPart", "r2.uploadPart", "session.commit",
      "d1.findStored", "r2.uploadPart", "r2.complete", "session.commit", "d1.record", "session.commit",
    ],
  },
  "a small blob in one put": {
    size: 3000,
    requests: [{ patch: [0, 1000] }, { put: [1000, 3000] }],
    steps: ["session.commit", "session.commit", "d1.findStored", "r2.put", "session.commit", "d1.record", "session.commit"],
  },
  "a blob already stored, linked": {
    size: 3000,
    storedElsewhere: true,
    requests: [{ patch: [0, 3000] }, { put: null }],
    steps: ["session.commit", "d1.findStored", "d1.link", "session.commit"],
  },
};

const POST_STEPS: Step[] = ["session.commit"];

/** The fault to inject: at the index-th step of the run (counting the POST's), of the given kind. */
interface Injection {
  index: number;
  fault: Fault;
}

class Run {
  readonly steps: Step[] = [];
  fired = false;
  restartPending = false;
  readonly uploadIds = new Set<string>();
  /** Multipart upload ids seen in the session's state, with the key they are for. */
  readonly multipartIds = new Map<string, string>();

  constructor(injection: Injection | null) {
    seams.fault = (step) => {
      const index = this.steps.push(step) - 1;
      if (!injection || index !== injection.index) return;
      this.fired = true;
      if (injection.fault === "fails") throw new Error(`injected: ${step} fails`);
      return () => {
        if (injection.fault === "restart") this.restartPending = true;
        throw new Error(`injected: ${step} ${injection.fault}`);
      };
    };
  }

  /**
   * After a request: a Durable Object "restarted" at the fault is evicted (its instance torn down, storage kept). A
   * real crash would stop it at the same point; ctx.abort() itself takes the test runtime down with it.
   */
  async settle(location: string | null): Promise<void> {
    if (location) await this.observe(location);
    if (!this.restartPending || !location) return;
    this.restartPending = false;
    await evictDurableObject(stubOf(location)).catch(() => undefined);
  }

  /** GET on the upload agrees with what the session stores; multipart ids are noted, to check they end closed. */
  private async observe(location: string): Promise<void> {
    this.uploadIds.add(uploadIdOf(location));
    const stored = await storedSession(location);
    const status = await call(location);
    if (!stored) {
      await expectError(status, 404, "BLOB_UPLOAD_UNKNOWN");
      return;
    }
    expect(status.status).toBe(204);
    expect(status.headers.get("Range")).toBe(`0-${Math.max(offsetOfStored(stored) - 1, 0)}`);
    const key = `uploads/${uploadIdOf(location)}/data`;
    if (stored.phase === "receiving" && stored.multipartId) this.multipartIds.set(stored.multipartId, key);
    if (stored.phase === "recorded" && stored.unused && "multipartId" in stored.unused) this.multipartIds.set(stored.unused.multipartId, key);
  }
}

interface StoredSession {
  phase: "receiving" | "assembled" | "recorded";
  offset: number;
  size: number;
  record: { size: number };
  multipartId?: string | null;
  unused?: { multipartId: string } | { objectKey: string } | null;
}

const uploadIdOf = (location: string) => location.split("/").at(-1)!;
const stubOf = (location: string) => env.UPLOADS.get(env.UPLOADS.idFromName(uploadIdOf(location)));

function offsetOfStored(state: StoredSession): number {
  return state.phase === "receiving" ? state.offset : state.phase === "assembled" ? state.size : state.record.size;
}

function storedSession(location: string): Promise<StoredSession | undefined> {
  return runInDurableObject(stubOf(location), (_instance, state) => state.storage.get<StoredSession>("session"));
}

/** Where the upload stands, from its Range ("0-0" is 0 here: no scenario stops at one byte). */
async function offsetOf(location: string): Promise<number> {
  const response = await call(location);
  expect(response.status).toBe(204);
  const range = response.headers.get("Range")!;
  return range === "0-0" ? 0 : Number(range.split("-")[1]) + 1;
}

function bodyOf(bytes: Uint8Array, streamed: boolean): BodyInit {
  if (!streamed) return bytes;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      for (let at = 0; at < bytes.byteLength; at += 256 * 1024) controller.enqueue(bytes.slice(at, at + 256 * 1024));
      controller.close();
    },
  });
}

function send(location: string, method: "PATCH" | "PUT", bytes: Uint8Array, range: Range | null, digest?: string, streamed = false) {
  const url = digest ? `${location}?digest=${digest}` : location;
  if (!range) return call(url, { method });
  const chunk = bytes.subarray(range[0], range[1]);
  const headers: Record<string, string> = { "Content-Type": "application/octet-stream" };
  if (!streamed) headers["Content-Range"] = `${range[0]}-${range[1] - 1}`;
  return call(url, { method, headers, body: bodyOf(chunk, streamed), duplex: "half" } as RequestInit);
}

const ATTEMPTS = 4;

/** A PATCH, and after a failure: where does the upload stand (GET)? Then the rest of the chunk from there. */
async function patchResuming(run: Run, location: string, bytes: Uint8Array, [from, to]: Range, streamed: boolean) {
  let start = from;
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const response = await send(location, "PATCH", bytes, [start, to], undefined, streamed);
    const text = await response.text();
    await run.settle(location);
    if (response.status === 202) return;
    expect(response.status, text).toBeGreaterThanOrEqual(500);
    start = await offsetOf(location);
    if (start === to) return;
  }
  throw new Error(`PATCH ${from}-${to} did not go through in ${ATTEMPTS} attempts`);
}

/** The PUT, repeated as it was after a failure; after a 416, the rest is sent from where the upload stands. */
async function putRetrying(run: Run, location: string, bytes: Uint8Array, digest: string, range: Range | null): Promise<Response> {
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const response = await send(location, "PUT", bytes, range, digest);
    await run.settle(location);
    if (response.status === 201) return response;
    if (response.status === 416) {
      await patchResuming(run, location, bytes, [await offsetOf(location), bytes.byteLength], false);
      range = null;
      continue;
    }
    expect(response.status, await response.text()).toBeGreaterThanOrEqual(500);
  }
  throw new Error(`PUT did not go through in ${ATTEMPTS} attempts`);
}

/** Pushes the scenario's blob as a client does, retrying what fails; returns where it ended. */
async function push(run: Run, scenario: Scenario, repository: string, bytes: Uint8Array) {
  const digest = await sha256(bytes);
  let location: string | null = null;
  for (let attempt = 0; attempt < ATTEMPTS && !location; attempt++) {
    const response = await call(`/v2/${repository}/blobs/uploads/`, { method: "POST" });
    if (response.status === 202) location = response.headers.get("Location");
    else expect(response.status).toBeGreaterThanOrEqual(500);
    await run.settle(null);
  }
  expect(location).not.toBeNull();
  let completed: Response | null = null;
  for (const request of scenario.requests) {
    if ("patch" in request) await patchResuming(run, location!, bytes, request.patch, request.streamed ?? false);
    else completed = await putRetrying(run, location!, bytes, digest, request.put);
  }
  return { location: location!, digest, completed: completed! };
}

/** Everything a finished push must leave: the blob whole, nothing of the session, nothing unreferenced. */
async function expectCleanEnd(run: Run, repository: string, bytes: Uint8Array, pushed: Awaited<ReturnType<typeof push>>) {
  expect(pushed.completed.headers.get("Docker-Content-Digest")).toBe(pushed.digest);
  const pulled = await call(`/v2/${repository}/blobs/${pushed.digest}`);
  expect(pulled.status).toBe(200);
  const pulledBytes = new Uint8Array(await pulled.arrayBuffer());
  expect(pulledBytes.byteLength).toBe(bytes.byteLength);
  expect(await sha256(pulledBytes)).toBe(pushed.digest);

  for (const uploadId of run.uploadIds) {
    const stub = env.UPLOADS.get(env.UPLOADS.idFromName(uploadId));
    const left = await runInDurableObject(stub, async (_instance, state) => ({
      keys: (await state.storage.list()).size,
      alarm: await state.storage.getAlarm(),
    }));
    // The upload that completed left nothing; one the client gave up on (a POST whose answer was lost) expires.
    if (uploadId === uploadIdOf(pushed.location)) expect(left.keys).toBe(0);
    else if (left.keys > 0) expect(left.alarm).not.toBeNull();
    const objects = (await env.BLOBS.list({ prefix: `uploads/${uploadId}/` })).objects.map((object) => object.key);
    const named = await env.DB.prepare("SELECT object_key FROM blobs WHERE object_key IN (SELECT value FROM json_each(?))")
      .bind(JSON.stringify(objects))
      .all<{ object_key: string }>();
    expect(objects.sort()).toEqual(named.results.map((row) => row.object_key).sort());
  }
  for (const [multipartId, key] of run.multipartIds) {
    const multipart = env.BLOBS.resumeMultipartUpload(key, multipartId);
    await expect(multipart.uploadPart(1, new Uint8Array(10)), `multipart ${multipartId} left open`).rejects.toThrow();
  }
}

let quiet: ReturnType<typeof vi.spyOn>;
beforeEach(() => {
  // The registry logs each injected failure as an unhandled error; keep the rest.
  const error = console.error.bind(console);
  quiet = vi.spyOn(console, "error").mockImplementation((...args: unknown[]) => {
    if (!args.some((arg) => String(arg).includes("injected"))) error(...args);
  });
});

afterEach(() => {
  delete seams.fault;
  delete interleavings.beforeRecord;
  quiet.mockRestore();
});

describe.each(Object.entries(SCENARIOS))("%s", (name, scenario) => {
  const slug = name.replace(/[^a-z]+/g, "-").replace(/^-|-$/g, "");
  const prepare = async () => {
    const bytes = randomBytes(scenario.size);
    if (scenario.storedElsewhere) await pushBlob(`faults/elsewhere`, bytes);
    return bytes;
  };

  it("takes exactly these steps when nothing fails", async () => {
    const repository = `faults/${slug}/clean`;
    const bytes = await prepare();
    const run = new Run(null);
    const pushed = await push(run, scenario, repository, bytes);
    expect(run.steps).toEqual([...POST_STEPS, ...scenario.steps]);
    // The multipart uploads whose closing expectCleanEnd checks: one for a blob of more than a part.
    expect(run.multipartIds.size).toBe(scenario.size > 5 * MiB ? 1 : 0);
    await expectCleanEnd(run, repository, bytes, pushed);
  });

  const boundaries = [...POST_STEPS, ...scenario.steps].flatMap((step, index) =>
    FAULTS.map((fault) => ({ step, index, fault })),
  );
  it.each(boundaries)("step $index ($step) $fault: the client's retry finishes the upload", async ({ index, fault }) => {
    const repository = `faults/${slug}/${index}-${fault.replace(" ", "-")}`;
    const bytes = await prepare();
    const run = new Run({ index, fault });
    const pushed = await push(run, scenario, repository, bytes);
    expect(run.fired).toBe(true);
    await expectCleanEnd(run, repository, bytes, pushed);
  });
});

describe("completion after a transient failure", () => {
  it("a D1 failure between the multipart completion and the record: GET reports every byte, the retried PUT completes", async () => {
    const repository = "faults/d1-after-complete";
    const bytes = randomBytes(6 * MiB);
    const digest = await sha256(bytes);
    const location = await startUpload(repository);
    expect((await send(location, "PATCH", bytes, [0, bytes.byteLength])).status).toBe(202);
    let failures = 1;
    seams.fault = (step) => {
      if (step === "d1.record" && failures-- > 0) throw new Error("injected: D1 unavailable");
    };
    expect((await call(`${location}?digest=${digest}`, { method: "PUT" })).status).toBe(500);
    expect(await offsetOf(location)).toBe(bytes.byteLength);
    expect(await storedSession(location)).toMatchObject({ phase: "assembled", size: bytes.byteLength });
    const retried = await call(`${location}?digest=${digest}`, { method: "PUT" });
    expect(retried.status).toBe(201);
    expect(retried.headers.get("Docker-Content-Digest")).toBe(digest);
    expect(await sha256(new Uint8Array(await (await call(`/v2/${repository}/blobs/${digest}`)).arrayBuffer()))).toBe(digest);
    await expectError(await call(location), 404, "BLOB_UPLOAD_UNKNOWN");
  });

  it("a PATCH to an upload that has all its bytes answers 416 with its Range, and the PUT still completes it", async () => {
    const repository = "faults/patch-when-assembled";
    const bytes = randomBytes(3000);
    const digest = await sha256(bytes);
    const location = await startUpload(repository);
    expect((await send(location, "PATCH", bytes, [0, 3000])).status).toBe(202);
    seams.fault = (step) => {
      if (step === "d1.record") throw new Error("injected: D1 unavailable");
    };
    expect((await call(`${location}?digest=${digest}`, { method: "PUT" })).status).toBe(500);
    delete seams.fault;
    const more = await call(location, { method: "PATCH", headers: { "Content-Range": "3000-3009" }, body: randomBytes(10) });
    await expectError(more, 416, "RANGE_INVALID");
    expect(more.headers.get("Range")).toBe("0-2999");
    expect((await call(`${location}?digest=${digest}`, { method: "PUT" })).status).toBe(201);
  });

  it("POST then PUT of the whole blob: a D1 failure keeps the session, and the repeated PUT completes", async () => {
    const repository = "faults/whole-d1";
    const bytes = randomBytes(2000);
    const digest = await sha256(bytes);
    const location = await startUpload(repository);
    let failures = 1;
    interleavings.beforeRecord = async () => {
      if (failures-- > 0) throw new Error("injected: D1 unavailable");
    };
    expect((await call(`${location}?digest=${digest}`, { method: "PUT", body: bytes })).status).toBe(500);
    expect(await offsetOf(location)).toBe(0);
    expect((await call(`${location}?digest=${digest}`, { method: "PUT", body: bytes })).status).toBe(201);
    expect(await sha256(new Uint8Array(await (await call(`/v2/${repository}/blobs/${digest}`)).arrayBuffer()))).toBe(digest);
  });
});

describe("an assembled upload waiting for its record", () => {
  /** An upload stopped between assembly and record (D1 failing), its object as old as `storedAt` says. */
  async function assembledLongAgo(repository: string, bytes: Uint8Array) {
    const digest = await sha256(bytes);
    const location = await startUpload(repository);
    expect((await send(location, "PATCH", bytes, [0, bytes.byteLength])).status).toBe(202);
    seams.fault = (step) => {
      if (step === "d1.record") throw new Error("injected: D1 unavailable");
    };
    expect((await call(`${location}?digest=${digest}`, { method: "PUT" })).status).toBe(500);
    delete seams.fault;
    const objectKey = await runInDurableObject(stubOf(location), async (_instance, state) => {
      const session = (await state.storage.get<{ objectKey: string }>("session"))!;
      await state.storage.put("session", { ...session, storedAt: 0 });
      return session.objectKey;
    });
    return { location, digest, objectKey };
  }

  it("is copied afresh before it is recorded when the collector could take it (older than half the grace window)", async () => {
    const repository = "faults/assembled-old";
    const bytes = randomBytes(6 * MiB);
    const { location, digest, objectKey } = await assembledLongAgo(repository, bytes);
    expect((await call(`${location}?digest=${digest}`, { method: "PUT" })).status).toBe(201);
    const row = await env.DB.prepare("SELECT object_key FROM blobs WHERE digest = ?").bind(digest).first<{ object_key: string }>();
    expect(row!.object_key).not.toBe(objectKey);
    expect(await env.BLOBS.head(objectKey)).toBeNull();
    expect(await sha256(new Uint8Array(await (await call(`/v2/${repository}/blobs/${digest}`)).arrayBuffer()))).toBe(digest);
  });

  it("answers 400 BLOB_UPLOAD_INVALID and forgets the session when the collector took it", async () => {
    const repository = "faults/assembled-collected";
    const bytes = randomBytes(3000);
    const { location, digest, objectKey } = await assembledLongAgo(repository, bytes);
    await env.BLOBS.delete(objectKey);
    await expectError(await call(`${location}?digest=${digest}`, { method: "PUT" }), 400, "BLOB_UPLOAD_INVALID");
    await expectError(await call(location), 404, "BLOB_UPLOAD_UNKNOWN");
    await expectError(await call(`/v2/${repository}/blobs/${digest}`), 404, "BLOB_UNKNOWN");
  });

  it("cancelled, deletes its object unless a record whose answer was lost names it", async () => {
    const bytes = randomBytes(3000);
    const digest = await sha256(bytes);
    const unrecorded = await startUpload("faults/cancel-unrecorded");
    expect((await send(unrecorded, "PATCH", bytes, [0, 3000])).status).toBe(202);
    seams.fault = (step) => {
      if (step === "d1.record") throw new Error("injected: D1 unavailable");
    };
    expect((await call(`${unrecorded}?digest=${digest}`, { method: "PUT" })).status).toBe(500);
    expect((await call(unrecorded, { method: "DELETE" })).status).toBe(204);
    expect((await env.BLOBS.list({ prefix: `uploads/${uploadIdOf(unrecorded)}/` })).objects).toEqual([]);

    const recorded = await startUpload("faults/cancel-recorded");
    expect((await send(recorded, "PATCH", bytes, [0, 3000])).status).toBe(202);
    seams.fault = (step) => {
      if (step === "d1.record") return () => { throw new Error("injected: D1's answer lost"); };
    };
    expect((await call(`${recorded}?digest=${digest}`, { method: "PUT" })).status).toBe(500);
    expect((await call(recorded, { method: "DELETE" })).status).toBe(204);
    expect(await sha256(new Uint8Array(await (await call(`/v2/faults/cancel-recorded/blobs/${digest}`)).arrayBuffer()))).toBe(digest);
  });
});
