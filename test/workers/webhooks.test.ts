// Webhooks: events produced to the real local queue (registry-events, wrangler.toml) by pushes, tag moves, deletes
// and pulls, consumed by the Worker's queue handler and POSTed, signed, to receivers that this file answers (the
// consumer's outbound fetch is routed to them). vitest.config.ts configures two endpoints: "ci" for webhooks/* (push,
// delete) and "audit" for webhooks/team/* (push, delete, pull), with retries at once (WEBHOOKS_RETRY_SECONDS=0).
import { createExecutionContext, createMessageBatch, env, getQueueResult, waitOnExecutionContext } from "cloudflare:test";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { configOf, ConfigError, parseConfig, type Env } from "../../src/config";
import worker from "../../src/index";
import { WebhookRecords } from "../../src/storage/webhook-records";
import { retryDelaySeconds } from "../../src/webhooks/deliver";
import type { RegistryEvent, WebhookMessage } from "../../src/webhooks/events";
import { call, OCI_MANIFEST, ORIGIN, pushImage, pushManifest, sha256 } from "./helpers";
import { basic, call as callWithToken, createToken } from "./token-auth";

const SECRETS: Record<string, string> = { "hooks.test": "ci-secret-for-tests", "audit.test": "audit-secret-for-tests" };
const ADMIN = { Authorization: "Bearer admin-token-for-tests-0123456789abcdef" };

interface Delivery {
  host: string;
  url: string;
  headers: Headers;
  body: string;
  event: RegistryEvent;
  attempt: number;
  at: number;
}

/** What a receiver answers a delivery: a status, or a connection that fails. */
type Answer = number | "down";

const receivers = {
  deliveries: [] as Delivery[],
  /** Answers by event id (or by repository), the first for the first attempt, and so on; 200 once they run out. */
  scripts: new Map<string, Answer[]>(),
  /** Answers every delivery for a repository gets. */
  always: new Map<string, Answer>(),
  of(host: string, filter: (event: RegistryEvent) => boolean = () => true) {
    return this.deliveries.filter((delivery) => delivery.host === host && filter(delivery.event));
  },
};

async function hmacHex(secret: string, text: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return [...new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(text)))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The receiver's check, as the README tells receivers to do it: HMAC over "<t>.<body>", and a fresh timestamp. */
async function verified(secret: string, header: string | null, body: string): Promise<boolean> {
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header ?? "");
  if (!match) return false;
  if (Math.abs(Date.now() / 1000 - Number(match[1])) > 300) return false;
  return match[2] === (await hmacHex(secret, `${match[1]}.${body}`));
}

beforeAll(() => {
  const realFetch = globalThis.fetch;
  vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
    const request = new Request(input, init);
    const url = new URL(request.url);
    const secret = SECRETS[url.host];
    if (!secret) return realFetch(input, init);
    const body = await request.text();
    const signature = request.headers.get("X-Registry-Signature");
    if (!(await verified(secret, signature, body))) return new Response("bad signature", { status: 401 });
    const event = (JSON.parse(body) as { events: RegistryEvent[] }).events[0]!;
    receivers.deliveries.push({ host: url.host, url: request.url, headers: request.headers, body, event, attempt: Number(request.headers.get("X-Registry-Delivery-Attempt")), at: Date.now() });
    const answer = receivers.scripts.get(event.id)?.shift() ?? receivers.always.get(event.target.repository) ?? 200;
    if (answer === "down") throw new TypeError("Network connection lost.");
    return new Response(null, { status: answer });
  });
});
afterAll(() => vi.restoreAllMocks());
beforeEach(() => {
  receivers.deliveries = [];
  receivers.scripts.clear();
  receivers.always.clear();
});

async function until<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const started = Date.now();
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((done) => setTimeout(done, 100));
  }
}

/** Waits for the queue to go quiet: what else it would deliver, it delivers within a batch timeout (1 s) or two. */
const settle = () => new Promise((done) => setTimeout(done, 2500));

interface EndpointStatus {
  name: string;
  url: string;
  delivered: number;
  failed: number;
  deadLettered: number;
  lastSuccess: { at: string } | null;
  lastFailure: { at: string; status: number | null; error: string | null } | null;
  recentDeadLetters: { eventId: string; action: string; repository: string; lastStatus: number | null; lastError: string | null; event: RegistryEvent }[];
}

async function status(name: string): Promise<EndpointStatus> {
  const response = await call("/admin/webhooks", { headers: ADMIN });
  expect(response.status).toBe(200);
  const { endpoints } = (await response.json()) as { endpoints: EndpointStatus[] };
  return endpoints.find((endpoint) => endpoint.name === name)!;
}

describe("events", () => {
  it("a push is delivered once to each endpoint whose patterns match, signed, in Distribution's envelope", async () => {
    const manifest = await pushImage("webhooks/team/app");
    const digest = await pushManifest("webhooks/team/app", "v1", manifest);
    const body = JSON.stringify(manifest);

    const [ci] = await until("the ci delivery", () => receivers.of("hooks.test").length > 0 && receivers.of("hooks.test"));
    await until("the audit delivery", () => receivers.of("audit.test").length > 0);
    await settle();
    expect(receivers.of("hooks.test")).toHaveLength(1);
    expect(receivers.of("audit.test")).toHaveLength(1);

    expect(ci!.url).toBe("https://hooks.test/ci");
    expect(ci!.headers.get("Content-Type")).toBe("application/vnd.docker.distribution.events.v1+json");
    expect(ci!.headers.get("X-Registry-Event-Id")).toBe(ci!.event.id);
    expect(ci!.attempt).toBe(1);
    const envelope = JSON.parse(ci!.body) as { events: RegistryEvent[] };
    expect(envelope.events).toHaveLength(1);
    // Every field, and nothing else: no header of the request but its user agent, no credential.
    expect(envelope.events[0]).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      action: "push",
      target: {
        mediaType: OCI_MANIFEST,
        size: body.length,
        length: body.length,
        digest,
        repository: "webhooks/team/app",
        url: `${ORIGIN}/v2/webhooks/team/app/manifests/${digest}`,
        tag: "v1",
      },
      request: { id: expect.any(String), addr: expect.any(String), host: new URL(ORIGIN).host, method: "PUT", useragent: expect.any(String) },
      actor: { name: "anonymous" },
      source: { addr: new URL(ORIGIN).host, instanceID: expect.stringMatching(/^[0-9a-f-]{36}$/) },
    });
    // The same event, under the other endpoint's secret (the fake receiver refuses a bad signature with 401).
    expect(receivers.of("audit.test")[0]!.event).toEqual(envelope.events[0]);
    expect(receivers.of("audit.test")[0]!.url).toBe("https://audit.test/in?key=k1");
  });

  it("a push to a repository no pattern matches sends nothing; one matching a single endpoint goes there only", async () => {
    await pushManifest("elsewhere/app", "v1", await pushImage("elsewhere/app"));
    await pushManifest("webhooks/solo", "v1", await pushImage("webhooks/solo"));
    await until("the ci delivery", () => receivers.of("hooks.test").length > 0);
    await settle();
    expect(receivers.deliveries.map((delivery) => `${delivery.host} ${delivery.event.target.repository}`)).toEqual(["hooks.test webhooks/solo"]);
  });

  it("a tag move is a push of the tag; deleting a tag and a manifest are delete events", async () => {
    const first = await pushManifest("webhooks/moves", "latest", await pushImage("webhooks/moves"));
    const second = await pushManifest("webhooks/moves", "latest", await pushImage("webhooks/moves", [512]));
    expect((await call("/v2/webhooks/moves/manifests/latest", { method: "DELETE" })).status).toBe(202);
    expect((await call(`/v2/webhooks/moves/manifests/${first}`, { method: "DELETE" })).status).toBe(202);
    await until("four deliveries", () => receivers.of("hooks.test").length >= 4);
    await settle();
    const seen = receivers.of("hooks.test").map(({ event }) => ({ action: event.action, ...event.target }));
    expect(seen).toHaveLength(4);
    expect(seen).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ action: "push", digest: first, tag: "latest" }),
        expect.objectContaining({ action: "push", digest: second, tag: "latest" }),
        { action: "delete", repository: "webhooks/moves", tag: "latest", url: `${ORIGIN}/v2/webhooks/moves/manifests/latest` },
        { action: "delete", repository: "webhooks/moves", digest: first, url: `${ORIGIN}/v2/webhooks/moves/manifests/${first}` },
      ]),
    );
  });

  it("pulls go only to endpoints that list the pull action", async () => {
    const digest = await pushManifest("webhooks/team/pulled", "v1", await pushImage("webhooks/team/pulled"));
    await until("the push deliveries", () => receivers.deliveries.length >= 2);
    const pulled = await call("/v2/webhooks/team/pulled/manifests/v1", { headers: { Accept: OCI_MANIFEST } });
    expect(pulled.status).toBe(200);
    // A HEAD (a tag resolution) is no pull of the manifest.
    expect((await call("/v2/webhooks/team/pulled/manifests/v1", { method: "HEAD", headers: { Accept: OCI_MANIFEST } })).status).toBe(200);
    const [pull] = await until("the pull delivery", () => receivers.of("audit.test", (event) => event.action === "pull").length > 0 && receivers.of("audit.test", (event) => event.action === "pull"));
    await settle();
    expect(pull!.event.target).toMatchObject({ repository: "webhooks/team/pulled", digest, tag: "v1", mediaType: OCI_MANIFEST });
    expect(pull!.event.request.method).toBe("GET");
    expect(receivers.of("audit.test", (event) => event.action === "pull")).toHaveLength(1);
    expect(receivers.of("hooks.test", (event) => event.action === "pull")).toHaveLength(0);
  });

  it("names the caller by its access token's name, and carries none of its credentials", async () => {
    const { token } = await createToken("release-bot", [{ repository: "webhooks/*", actions: ["pull", "push"] }]);
    const auth = basic(token, "release-bot");
    const config = new TextEncoder().encode(JSON.stringify({ architecture: "amd64", os: "linux" }));
    const configDigest = await sha256(config);
    expect((await callWithToken(`/v2/webhooks/signed/blobs/uploads/?digest=${configDigest}`, { method: "POST", auth, body: config })).status).toBe(201);
    const manifest = JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: config.byteLength }, layers: [] });
    const put = await callWithToken("/v2/webhooks/signed/manifests/v1", { method: "PUT", auth, headers: { "Content-Type": OCI_MANIFEST, "User-Agent": "release-pipeline/1" }, body: manifest });
    expect(put.status).toBe(201);
    const delivery = await until("the delivery", () => receivers.of("hooks.test")[0]);
    expect(delivery.event.actor).toEqual({ name: "release-bot" });
    expect(delivery.event.request.useragent).toBe("release-pipeline/1");
    expect(delivery.body).not.toContain(token);
    expect(delivery.body).not.toContain(auth.slice("Basic ".length));
    expect(delivery.body).not.toMatch(/authorization|password|secret/i);
  });

  it("a push stands when the queue refuses the event, and the lost event is logged", async () => {
    const errors: string[] = [];
    const logged = vi.spyOn(console, "error").mockImplementation((...args) => void errors.push(args.join(" ")));
    const refusing = { ...env, EVENTS: { send: () => Promise.reject(new Error("queue unavailable")), sendBatch: () => Promise.reject(new Error("queue unavailable")) } } as unknown as Env;
    const manifest = await pushImage("webhooks/lost");
    const ctx = createExecutionContext();
    const response = await worker.fetch(new Request(`${ORIGIN}/v2/webhooks/lost/manifests/v1`, { method: "PUT", headers: { "Content-Type": OCI_MANIFEST }, body: JSON.stringify(manifest) }), refusing, ctx);
    await waitOnExecutionContext(ctx);
    logged.mockRestore();
    expect(response.status).toBe(201);
    expect((await call("/v2/webhooks/lost/manifests/v1", { method: "HEAD", headers: { Accept: OCI_MANIFEST } })).status).toBe(200);
    expect(errors.some((line) => line.includes('"event":"webhook-event-not-queued"') && line.includes("queue unavailable"))).toBe(true);
  });
});

describe("failed deliveries", () => {
  it("a receiver that fails is retried until it answers; the admin API shows the failures and the success", async () => {
    const before = await status("ci");
    // The first two attempts fail (an error status, then a connection that breaks), the third succeeds.
    receivers.always.set("webhooks/flaky", 503);
    await pushManifest("webhooks/flaky", "v1", await pushImage("webhooks/flaky"));
    const first = await until("the first attempt", () => receivers.of("hooks.test")[0]);
    receivers.always.delete("webhooks/flaky");
    receivers.scripts.set(first.event.id, ["down"]);
    await until("a successful attempt", () => receivers.of("hooks.test").length >= 3);
    await settle();
    const attempts = receivers.of("hooks.test");
    expect(attempts.map((delivery) => delivery.attempt)).toEqual([1, 2, 3]);
    expect(new Set(attempts.map((delivery) => delivery.event.id)).size).toBe(1);
    // Each attempt is signed anew (its own timestamp); the body is the same event.
    expect(new Set(attempts.map((delivery) => delivery.body)).size).toBe(1);

    const after = await until("the status", async () => {
      const now = await status("ci");
      return now.delivered > before.delivered && now;
    });
    expect(after.delivered - before.delivered).toBe(1);
    expect(after.failed - before.failed).toBe(2);
    expect(after.lastSuccess).not.toBeNull();
    expect(after.lastFailure).toMatchObject({ status: null, error: expect.stringContaining("Network connection lost") });
    expect(after.url).toBe("https://hooks.test/ci");
    // The audit endpoint's URL is shown without its query (a receiver may take a key there).
    expect((await status("audit")).url).toBe("https://audit.test/in");
  });

  it("after max_retries the delivery goes to the dead-letter queue, which records it as given up", async () => {
    const before = await status("ci");
    receivers.always.set("webhooks/doomed", 500);
    const digest = await pushManifest("webhooks/doomed", "v1", await pushImage("webhooks/doomed"));
    const dead = await until(
      "the dead letter",
      async () => {
        const now = await status("ci");
        return now.deadLettered > before.deadLettered && now;
      },
      50_000,
    );
    // The first attempt and max_retries (10, wrangler.toml) more: then the queue gave up.
    expect(receivers.of("hooks.test").map((delivery) => delivery.attempt)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(dead.deadLettered - before.deadLettered).toBe(1);
    expect(dead.failed - before.failed).toBe(11);
    expect(dead.lastFailure).toMatchObject({ status: 500, error: "HTTP 500" });
    expect(dead.recentDeadLetters[0]).toMatchObject({
      eventId: receivers.of("hooks.test")[0]!.event.id,
      action: "push",
      repository: "webhooks/doomed",
      lastStatus: 500,
      lastError: "HTTP 500",
      event: expect.objectContaining({ target: expect.objectContaining({ digest, tag: "v1" }) }),
    });
  });
});

describe("the consumer's retry delays", () => {
  const message = (id: string, attempts: number, endpoint = "ci"): { id: string; timestamp: Date; attempts: number; body: WebhookMessage } => ({
    id,
    timestamp: new Date(),
    attempts,
    body: {
      endpoint,
      event: {
        id: crypto.randomUUID(),
        timestamp: new Date().toISOString(),
        action: "push",
        target: { repository: "webhooks/backoff", digest: "sha256:" + "0".repeat(64), tag: "v1" },
        request: { id: "r", addr: "", host: "registry.test", method: "PUT", useragent: "test" },
        actor: { name: "anonymous" },
        source: { addr: "registry.test", instanceID: "i" },
      },
    },
  });

  it("doubles from WEBHOOKS_RETRY_SECONDS with each attempt, up to an hour", async () => {
    expect([1, 2, 3, 4, 8, 12, 20].map((attempts) => retryDelaySeconds(attempts, 30))).toEqual([30, 60, 120, 240, 3600, 3600, 3600]);
    receivers.always.set("webhooks/backoff", 502);
    const slow = { ...env, WEBHOOKS_RETRY_SECONDS: "5" } as Env;
    const batch = createMessageBatch("registry-events", [message("a", 1), message("b", 2), message("c", 4), message("d", 1, "removed-since")]);
    // The test batch's getQueueResult does not report the delays asked for: the calls are watched instead.
    const retries = batch.messages.map((one) => vi.spyOn(one, "retry"));
    const ctx = createExecutionContext();
    await worker.queue(batch as MessageBatch<WebhookMessage>, slow);
    const result = await getQueueResult(batch, ctx);
    expect(result.retryMessages).toEqual([{ msgId: "a" }, { msgId: "b" }, { msgId: "c" }]);
    expect(retries.map((retry) => retry.mock.calls)).toEqual([[[{ delaySeconds: 5 }]], [[{ delaySeconds: 10 }]], [[{ delaySeconds: 40 }]], []]);
    // An endpoint no longer configured: nothing to deliver to, so the message goes.
    expect(result.explicitAcks).toEqual(["d"]);
  });

  it("a receiver that does not answer within timeoutSeconds is a failure, retried", async () => {
    const hanging = { ...env, WEBHOOKS: JSON.stringify([{ name: "slow", url: "https://slow.test/", repositories: ["*"], secretName: "WEBHOOK_CI_SECRET", timeoutSeconds: 0.2 }]) } as Env;
    const realFetch = globalThis.fetch;
    const hung = vi.spyOn(globalThis, "fetch").mockImplementation((input, init) => {
      const request = new Request(input, init);
      if (new URL(request.url).host !== "slow.test") return realFetch(input, init);
      return new Promise((_, reject) => request.signal.addEventListener("abort", () => reject(request.signal.reason)));
    });
    const batch = createMessageBatch("registry-events", [message("slow-1", 1, "slow")]);
    const retry = vi.spyOn(batch.messages[0]!, "retry");
    const ctx = createExecutionContext();
    const started = Date.now();
    await worker.queue(batch as MessageBatch<WebhookMessage>, hanging);
    const result = await getQueueResult(batch, ctx);
    hung.mockRestore();
    expect(Date.now() - started).toBeLessThan(2000);
    expect(result.retryMessages).toEqual([{ msgId: "slow-1" }]);
    // WEBHOOKS_RETRY_SECONDS=0 here (vitest.config.ts).
    expect(retry).toHaveBeenCalledWith({ delaySeconds: 0 });
    const slowStatus = await new WebhookRecords(env.DB).status(["slow"]);
    expect(slowStatus.get("slow")?.lastFailure).toMatchObject({ status: null, error: "no answer within 0.2 s" });
  });
});

describe("configuration", () => {
  const endpoint = { name: "ci", url: "https://ci.example.com/hooks", repositories: ["team/*"], secretName: "WEBHOOK_CI_SECRET" };
  const base = { AUTH_MODE: "open", EVENTS: env.EVENTS, DB: env.DB } as unknown as Env;
  const problems = (settings: Record<string, unknown>) => {
    try {
      configOf({ ...base, ...settings } as Env);
      return [];
    } catch (error) {
      if (error instanceof ConfigError) return error.issues;
      throw error;
    }
  };

  it("accepts an https endpoint whose secret is set; actions default to push and delete", () => {
    expect(problems({ WEBHOOKS: JSON.stringify([endpoint]), WEBHOOK_CI_SECRET: "s" })).toEqual([]);
    expect(parseConfig({ ...base, WEBHOOKS: JSON.stringify([endpoint]) }).WEBHOOKS[0]).toMatchObject({ actions: ["push", "delete"], timeoutSeconds: 10 });
  });

  it("refuses an http endpoint unless WEBHOOKS_ALLOW_HTTP allows a loopback one", () => {
    const http = { ...endpoint, url: "http://127.0.0.1:9000/hooks" };
    expect(problems({ WEBHOOKS: JSON.stringify([http]), WEBHOOK_CI_SECRET: "s" })).toEqual([
      "WEBHOOKS.0.url: must be https (WEBHOOKS_ALLOW_HTTP=true allows a loopback http receiver for tests)",
    ]);
    expect(problems({ WEBHOOKS: JSON.stringify([http]), WEBHOOK_CI_SECRET: "s", WEBHOOKS_ALLOW_HTTP: "true" })).toEqual([]);
    expect(problems({ WEBHOOKS: JSON.stringify([{ ...endpoint, url: "http://hooks.example.com/" }]), WEBHOOK_CI_SECRET: "s", WEBHOOKS_ALLOW_HTTP: "true" })).toEqual([
      "WEBHOOKS.0.url: must be https, or http on a loopback host (127.0.0.1, localhost, [::1])",
    ]);
  });

  it("refuses to start while the named secret is unset, naming it", () => {
    expect(problems({ WEBHOOKS: JSON.stringify([endpoint]) })).toEqual([
      'WEBHOOKS.0.secretName (endpoint "ci"): names the secret WEBHOOK_CI_SECRET, which is not set (wrangler secret put WEBHOOK_CI_SECRET)',
    ]);
  });

  it("refuses a secret outside WEBHOOK_…, an unknown field, a duplicate name, and endpoints without the EVENTS queue", () => {
    expect(problems({ WEBHOOKS: JSON.stringify([{ ...endpoint, secretName: "ADMIN_TOKEN" }]) })[0]).toMatch(/^WEBHOOKS\.0\.secretName: must name a secret whose name starts with WEBHOOK_/);
    expect(problems({ WEBHOOKS: JSON.stringify([{ ...endpoint, secret: "inline" }]), WEBHOOK_CI_SECRET: "s" })[0]).toMatch(/^WEBHOOKS\.0: Unrecognized key/);
    expect(problems({ WEBHOOKS: JSON.stringify([endpoint, endpoint]), WEBHOOK_CI_SECRET: "s" })).toEqual(["WEBHOOKS: two endpoints have the same name"]);
    expect(problems({ WEBHOOKS: "[{", WEBHOOK_CI_SECRET: "s" })).toEqual(["WEBHOOKS: not JSON"]);
    expect(problems({ WEBHOOKS: JSON.stringify([endpoint]), WEBHOOK_CI_SECRET: "s", EVENTS: undefined })).toEqual([
      "WEBHOOKS: lists endpoints, but the Worker has no EVENTS queue binding (wrangler.toml [[queues.producers]])",
    ]);
  });
});
