// Webhooks under `wrangler dev`, whose local queues (registry-events and its dead-letter queue) run the Worker's
// queue handler: a real HTTP receiver on loopback checks each delivery's HMAC the way the README tells receivers to,
// skopeo pushes, and a receiver that is stopped for a while gets every event once it is back.
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { mustRun } from "../support/command";
import { buildImage, type BuiltImage } from "../support/oci-layout";
import { registryForFile } from "./fixture";
import type { Registry } from "./harness";

const SECRET = "e2e-webhook-secret-0123456789";
const ADMIN_TOKEN = "e2e-admin-token-0123456789abcdef0123";

interface Received {
  at: number;
  attempt: number;
  event: {
    id: string;
    action: string;
    target: { repository: string; digest?: string; tag?: string; mediaType?: string; size?: number };
    request: { method: string; useragent: string };
    actor: { name: string };
  };
}

/** The receiver's check of a delivery: the signature over "<t>.<body>" under the shared secret, and a recent t. */
function verify(header: string | undefined, body: string, now = Date.now() / 1000): boolean {
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header ?? "");
  if (!match || Math.abs(now - Number(match[1])) > 300) return false;
  const expected = createHmac("sha256", SECRET).update(`${match[1]}.${body}`).digest();
  return timingSafeEqual(expected, Buffer.from(match[2]!, "hex"));
}

/** A webhook receiver on a loopback port; stop() and start() it again on the same port. */
function receiver() {
  const received: Received[] = [];
  const refused: string[] = [];
  let server: Server | null = null;
  let port = 0;
  const start = () =>
    new Promise<void>((resolve) => {
      server = createServer((request, response) => {
        const chunks: Buffer[] = [];
        request.on("data", (chunk: Buffer) => chunks.push(chunk));
        request.on("end", () => {
          const body = Buffer.concat(chunks).toString("utf8");
          if (request.headers["content-type"] !== "application/vnd.docker.distribution.events.v1+json" || !verify(request.headers["x-registry-signature"] as string, body)) {
            refused.push(body);
            response.writeHead(401).end();
            return;
          }
          const { events } = JSON.parse(body) as { events: Received["event"][] };
          for (const event of events) received.push({ at: Date.now(), attempt: Number(request.headers["x-registry-delivery-attempt"]), event });
          response.writeHead(204).end();
        });
      });
      server.listen(port, "127.0.0.1", () => {
        port = (server!.address() as AddressInfo).port;
        resolve();
      });
    });
  const stop = () =>
    new Promise<void>((resolve) => {
      server?.closeAllConnections();
      server?.close(() => resolve());
      server = null;
    });
  return { received, refused, start, stop, url: () => `http://127.0.0.1:${port}/hooks/registry` };
}

const hooks = receiver();
await hooks.start();
afterAll(() => hooks.stop());

let registry: Registry;
let work: string;

registryForFile(
  "oci-e2e-webhooks-",
  {
    vars: {
      ADMIN_TOKEN,
      WEBHOOKS: JSON.stringify([{ name: "e2e", url: hooks.url(), repositories: ["e2e/*"], actions: ["push", "delete"], secretName: "WEBHOOK_E2E_SECRET" }]),
      WEBHOOK_E2E_SECRET: SECRET,
      WEBHOOKS_ALLOW_HTTP: "true",
      // 1 s, 2 s, 4 s, ... between attempts: a receiver down for seconds, not minutes.
      WEBHOOKS_RETRY_SECONDS: "1",
    },
  },
  (started, dir) => {
    registry = started;
    work = dir;
  },
);

async function until<T>(what: string, probe: () => T | undefined | false, timeoutMs = 60_000): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((done) => setTimeout(done, 100));
  }
}

const skopeo = (...args: string[]) => mustRun("skopeo", ["--insecure-policy", "--tmpdir", work, ...args], { timeoutMs: 150_000 });
const copy = (source: string, tag: string) =>
  skopeo("copy", "--retry-times", "0", "--dest-tls-verify=false", `oci:${source}:v1`, `docker://${registry.host}/e2e/hooked:${tag}`);

describe("webhooks under wrangler dev", () => {
  let image: BuiltImage;

  it("a skopeo push is delivered to the receiver, signed", async () => {
    image = await buildImage(join(work, "src"), { layers: [1024, 4096], tag: "v1" });
    await copy(join(work, "src"), "v1");
    const pushed = Date.now();
    const delivery = await until("the push event", () => hooks.received.find(({ event }) => event.action === "push" && event.target.tag === "v1"));
    console.log(`push event received ${delivery.at - pushed} ms after skopeo finished`);
    expect(delivery.attempt).toBe(1);
    expect(delivery.event.target).toMatchObject({ repository: "e2e/hooked", digest: image.manifest.digest, tag: "v1", mediaType: image.manifest.mediaType, size: image.manifest.size });
    expect(delivery.event.request.method).toBe("PUT");
    expect(delivery.event.request.useragent).toMatch(/skopeo|containers/i);
    expect(delivery.event.actor.name).toBe("anonymous");
    expect(hooks.refused).toEqual([]);
  });

  it("a receiver that is stopped for a while gets every event after it is back, and the admin API shows the failures", async () => {
    const before = hooks.received.length;
    await hooks.stop();
    await copy(join(work, "src"), "v2");
    const deleted = await fetch(`${registry.url}/v2/e2e/hooked/manifests/v1`, { method: "DELETE" });
    expect(deleted.status).toBe(202);
    const stoppedAt = Date.now();
    // Long enough for the first attempts (at once, then after 1 s and 2 s) to find nobody listening.
    await new Promise((done) => setTimeout(done, 4000));
    expect(hooks.received.length).toBe(before);
    await hooks.start();
    const restartedAt = Date.now();

    const push = await until("the v2 push", () => hooks.received.find(({ event }) => event.action === "push" && event.target.tag === "v2"));
    const deletion = await until("the v1 delete", () => hooks.received.find(({ event }) => event.action === "delete" && event.target.tag === "v1"));
    console.log(
      `receiver down ${restartedAt - stoppedAt} ms; after the restart the push came in ${push.at - restartedAt} ms (attempt ${push.attempt}), the delete in ${deletion.at - restartedAt} ms (attempt ${deletion.attempt})`,
    );
    expect(push.attempt).toBeGreaterThan(1);
    expect(deletion.attempt).toBeGreaterThan(1);
    expect(push.event.target.digest).toBe(image.manifest.digest);

    const status = await fetch(`${registry.url}/admin/webhooks`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(status.status).toBe(200);
    const [endpoint] = ((await status.json()) as { endpoints: { name: string; delivered: number; failed: number; deadLettered: number; lastFailure: { error: string } | null }[] }).endpoints;
    console.log(`status: ${JSON.stringify(endpoint)}`);
    expect(endpoint).toMatchObject({ name: "e2e", deadLettered: 0 });
    expect(endpoint!.delivered).toBe(hooks.received.length);
    expect(endpoint!.failed).toBeGreaterThanOrEqual(push.attempt - 1 + deletion.attempt - 1);
    expect(endpoint!.lastFailure?.error).toBeTruthy();
    // Every event once (a retry after a lost answer could repeat one: receivers dedupe by id; here none was lost).
    expect(new Set(hooks.received.map(({ event }) => event.id)).size).toBe(hooks.received.length);
  });
});
