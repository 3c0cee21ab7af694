// What a client that breaks off mid-body, or lies about its body's length, leaves behind: raw HTTP over a socket,
// because well-behaved clients (fetch, curl) cannot be made to misbehave.
import { createHash, randomBytes } from "node:crypto";
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MIN_PART_BYTES, startRegistry, type Registry } from "./harness";

let registry: Registry;

beforeAll(async () => {
  registry = await startRegistry({ vars: { UPLOAD_PART_BYTES: String(MIN_PART_BYTES) } });
});

afterAll(async () => {
  await registry?.stop();
});

const digestOf = (bytes: Uint8Array) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/** Sends a request head declaring `declared` body bytes, then only `body`, then closes the connection. */
async function sendShort(method: string, path: string, declared: number, body: Uint8Array): Promise<void> {
  const port = Number(new URL(registry.url).port);
  await new Promise<void>((done, reject) => {
    const socket = connect(port, "127.0.0.1", () => {
      socket.write(
        `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/octet-stream\r\n` +
          `Content-Length: ${declared}\r\n\r\n`,
      );
      socket.write(body, () => setTimeout(() => socket.destroy(), 500));
    });
    socket.on("error", reject);
    socket.on("close", () => done());
  });
}

async function uploadOffset(location: string): Promise<number> {
  const response = await fetch(`${registry.url}${location}`);
  expect(response.status).toBe(204);
  return Number(response.headers.get("Range")!.split("-")[1]) + 1;
}

describe("a client that disconnects mid-body", () => {
  it("keeps what arrived: the session reports it and the client resumes from there", async () => {
    const bytes = new Uint8Array(randomBytes(8 * 1024 * 1024));
    const start = await fetch(`${registry.url}/v2/e2e/interrupted/blobs/uploads/`, { method: "POST" });
    const location = start.headers.get("Location")!;
    await sendShort("PATCH", location, bytes.byteLength, bytes.subarray(0, 6 * 1024 * 1024));

    // The session settles on the bytes it received (possibly fewer than were sent, never more).
    let offset = -1;
    for (let tries = 0; tries < 40; tries++) {
      const now = await uploadOffset(location);
      if (now === offset && now > 0) break;
      offset = now;
      await sleep(250);
    }
    expect(offset).toBeGreaterThan(0);
    expect(offset).toBeLessThanOrEqual(6 * 1024 * 1024);

    const rest = bytes.subarray(offset);
    const resumed = await fetch(`${registry.url}${location}`, {
      method: "PATCH",
      headers: { "Content-Range": `${offset}-${bytes.byteLength - 1}`, "Content-Type": "application/octet-stream" },
      body: rest,
    });
    expect(resumed.status).toBe(202);
    const digest = digestOf(bytes);
    const done = await fetch(`${registry.url}${location}?digest=${digest}`, { method: "PUT" });
    expect(done.status).toBe(201);
    const pulled = new Uint8Array(await (await fetch(`${registry.url}/v2/e2e/interrupted/blobs/${digest}`)).arrayBuffer());
    expect(digestOf(pulled)).toBe(digest);
  });
});

describe("a Content-Length that lies", () => {
  it("stores nothing for a monolithic upload whose body is shorter than declared", async () => {
    const bytes = new Uint8Array(randomBytes(4096));
    const digest = digestOf(bytes);
    await sendShort("POST", `/v2/e2e/liar/blobs/uploads/?digest=${digest}`, 8192, bytes);
    await sleep(500);
    const response = await fetch(`${registry.url}/v2/e2e/liar/blobs/${digest}`);
    expect(response.status).toBe(404);
    expect(((await response.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("BLOB_UNKNOWN");
    // The registry is still healthy and the honest push works.
    const honest = await fetch(`${registry.url}/v2/e2e/liar/blobs/uploads/?digest=${digest}`, { method: "POST", body: bytes });
    expect(honest.status).toBe(201);
  });
});
