// A security review of the audit log, webhooks and signature verdicts: each test is an attack that must fail.
import { createExecutionContext, createMessageBatch, env, getQueueResult } from "cloudflare:test";
import { beforeAll, describe, expect, it, vi } from "vitest";
import type { Env } from "../../src/config";
import worker from "../../src/index";
import type { WebhookMessage } from "../../src/webhooks/events";
import { call as callOpen, expectError, OCI_MANIFEST, ORIGIN, pushBlob, pushImage, pushManifest } from "./helpers";
import { FakeIssuer, useFakeIssuers } from "./fake-issuer";
import { certificate, cosignSign, ecKey, integer, notationEnvelope, oid, pem, rawToDer, seq, simpleSigningPayload, spkiOf, tlv, type Issued, type KeyPair } from "./signature-fixtures";
import { ADMIN, basic, bearer, call, claimsOf, createToken, randomAddress, SERVICE, tokenEnv } from "./token-auth";

interface Row {
  actor: string;
  client: string | null;
  action: string;
  repository: string | null;
  target: string | null;
  result: string;
  detail: string | null;
}

async function rowsOf(client: string): Promise<Row[]> {
  const { results } = await env.DB.prepare("SELECT actor, client, action, repository, target, result, detail FROM audit_events WHERE client = ? ORDER BY id").bind(client).all<Row>();
  return results;
}

let puller: { id: string; token: string };
let deleter: { id: string; token: string };

beforeAll(async () => {
  puller = await createToken("review-puller", [{ repository: "review/*", actions: ["pull"] }]);
  deleter = await createToken("review-deleter", [{ repository: "webhooks/*", actions: ["pull", "push", "delete"] }]);
});

describe("no secret in an audit row", () => {
  it("a failed login with the secret in the user name (curl -u \"$TOKEN:\") does not store the secret", async () => {
    const client = randomAddress();
    // The admin token as the Basic user name, with an empty password: the Stripe-style convention some tools use.
    await expectError(await call("/admin/usage", { auth: basic("", ADMIN), client }), 401, "UNAUTHORIZED");
    // An access token as the user name at the token endpoint, a wrong password.
    await expectError(await call(`/token?service=${SERVICE}&scope=repository:review/x:pull`, { auth: basic("wrong", puller.token), client }), 401, "UNAUTHORIZED");
    const rows = await rowsOf(client);
    expect(rows.length).toBe(2);
    const secretPart = puller.token.split("_").at(-1)!;
    for (const row of rows) {
      const text = JSON.stringify(row);
      expect(text).not.toContain(ADMIN);
      expect(text).not.toContain(ADMIN.slice(0, 16));
      expect(text).not.toContain(secretPart.slice(0, 16));
    }
  });
});

describe("audit flooding", () => {
  it("a pull-only access token fetching bearer tokens in a loop writes a bounded number of login rows", async () => {
    const client = randomAddress();
    for (let i = 0; i < 75; i++) {
      const response = await call(`/token?service=${SERVICE}&scope=repository:review/x:pull`, { auth: basic(puller.token), client });
      expect(response.status).toBe(200);
    }
    const logins = (await rowsOf(client)).filter((row) => row.action === "login");
    expect(logins.length).toBeGreaterThan(0);
    expect(logins.length).toBeLessThanOrEqual(60);
  });
});

describe("bearer token actor", () => {
  it("a token whose actor claim was altered is refused", async () => {
    const response = await call(`/token?service=${SERVICE}&scope=repository:review/x:pull`, { auth: basic(puller.token) });
    const { token } = (await response.json()) as { token: string };
    expect(claimsOf(token).actor).toBe(puller.id);
    const [header, , signature] = token.split(".");
    const payload = btoa(JSON.stringify({ ...claimsOf(token), actor: "admin" })).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
    await expectError(await call("/v2/review/x/tags/list", { auth: bearer(`${header}.${payload}.${signature}`) }), 401, "UNAUTHORIZED");
  });
});

describe("webhooks", () => {
  /** The token-auth Worker with an EVENTS queue that keeps what it is sent. */
  function capturing() {
    const sent: WebhookMessage[] = [];
    const events = { send: async () => undefined, sendBatch: async (messages: { body: WebhookMessage }[]) => void sent.push(...messages.map((m) => m.body)) };
    return { sent, env: { ...tokenEnv, EVENTS: events } };
  }

  it("a pusher's long User-Agent cannot make its push event too large to queue (Queues: 128 KB a message)", async () => {
    const repository = "webhooks/review-ua";
    const image = await pushImage(repository);
    const { sent, env: hooked } = capturing();
    const userAgent = `docker/27.0 ${"x".repeat(130_000)}`;
    const response = await call(`/v2/${repository}/manifests/v1`, {
      method: "PUT",
      headers: { "Content-Type": OCI_MANIFEST, "User-Agent": userAgent },
      body: JSON.stringify(image),
      auth: basic(deleter.token),
      env: hooked,
    });
    expect(response.status).toBe(201);
    expect(sent.length).toBe(1);
    const size = new TextEncoder().encode(JSON.stringify(sent[0])).byteLength;
    expect(size).toBeLessThan(16 * 1024);
    expect(sent[0]!.event.request.useragent.startsWith("docker/27.0 ")).toBe(true);
    // What the real queue does with a message of the size it was before: refuses it, and the event is lost.
    await expect(env.EVENTS!.sendBatch([{ body: { ...sent[0]!, event: { ...sent[0]!.event, request: { ...sent[0]!.event.request, useragent: userAgent } } } }])).rejects.toThrow();
  });

  it("a tag deleted in the web UI is a delete event, as one deleted through the API is", async () => {
    const repository = "webhooks/review-ui";
    const { sent, env: hooked } = capturing();
    for (const [tag, image] of [["v1", await pushImage(repository)], ["v2", await pushImage(repository, [512])]] as const) {
      const put = await call(`/v2/${repository}/manifests/${tag}`, { method: "PUT", headers: { "Content-Type": OCI_MANIFEST }, body: JSON.stringify(image), auth: basic(deleter.token), env: hooked });
      expect(put.status).toBe(201);
    }
    const login = await call("/login", { method: "POST", headers: { Origin: ORIGIN }, body: new URLSearchParams({ token: deleter.token, next: "/" }), env: hooked });
    expect(login.status).toBe(303);
    const cookie = login.headers.get("Set-Cookie")!.split(";")[0]!;
    const deleted = await call(`/r/${repository}/-/tags/v1/delete`, { method: "POST", headers: { Cookie: cookie, Origin: ORIGIN }, body: new URLSearchParams(), env: hooked });
    expect(deleted.status).toBe(303);
    expect((await call(`/v2/${repository}/manifests/v2`, { method: "DELETE", auth: basic(deleter.token), env: hooked })).status).toBe(202);
    const deletes = sent.filter((message) => message.event.action === "delete").map((message) => message.event.target.tag);
    expect(deletes).toEqual(["v1", "v2"]);
    const ui = sent.find((message) => message.event.target.tag === "v1")!;
    expect(ui.event.actor.name).toBe("review-deleter");
    expect(JSON.stringify(ui)).not.toContain(deleter.token.split("_").at(-1)!);
  });
});

describe("signature verdicts", () => {
  const b64url = (text: string) => btoa(text).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");

  it("a Notation envelope whose protected header nests its alg deeply is an invalid signature, not a 500 of the tag API", async () => {
    const repository = "review/deep-jws";
    const image = await pushImage(repository);
    const text = JSON.stringify(image);
    const digest = await pushManifest(repository, "v1", image);
    // JSON.parse takes 6,000 levels; JSON.stringify of them overflows the stack.
    const alg = "[".repeat(6000) + "]".repeat(6000);
    const protectedHeader = `{"cty":"application/vnd.cncf.notary.payload.v1+json","alg":${alg}}`;
    const envelope = JSON.stringify({ payload: b64url("{}"), protected: b64url(protectedHeader), header: { x5c: [] }, signature: "" });
    expect(envelope.length).toBeLessThan(64 * 1024);
    const envelopeDigest = await pushBlob(repository, envelope);
    const empty = await pushBlob(repository, "{}");
    await pushManifest(repository, "notation-deep", {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: "application/vnd.cncf.notary.signature",
      config: { mediaType: "application/vnd.oci.empty.v1+json", digest: empty, size: 2 },
      layers: [{ mediaType: "application/jose+json", digest: envelopeDigest, size: envelope.length }],
      subject: { mediaType: OCI_MANIFEST, digest, size: new TextEncoder().encode(text).byteLength },
    });
    const response = await callOpen(`/api/repositories/${repository}/tags`);
    expect(response.status, await response.clone().text()).toBe(200);
    const { tags } = (await response.json()) as { tags: { name: string; signature: { status: string } }[] };
    expect(tags.find((tag) => tag.name === "v1")?.signature.status).toBe("invalid");
    const page = await callOpen(`/r/${repository}`);
    expect(page.status).toBe(200);
  });
});

describe("signature verdicts across repositories", () => {
  it("a signature pushed to a repository the attacker can push to changes no verdict of a repository it cannot, whose verdicts it cannot read", async () => {
    const release = await ecKey();
    const trust = [{ repositories: ["review/sig-*"], cosignKeys: [{ name: "release", pem: pem("PUBLIC KEY", await spkiOf(release)) }] }];
    const signedEnv = { ...tokenEnv, SIGNATURE_TRUST: JSON.stringify(trust) };
    const attacker = await createToken("review-sig-attacker", [{ repository: "review/sig-attacker", actions: ["pull", "push"] }]);
    const admin = basic(ADMIN);
    const as = (auth: string) => async (path: string, init: RequestInit = {}) => call(path, { ...init, auth, env: signedEnv });
    const byAdmin = as(admin);
    const byAttacker = as(basic(attacker.token));

    async function blob(send: typeof byAdmin, repository: string, text: string) {
      const digest = `sha256:${[...new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)))].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
      expect((await send(`/v2/${repository}/blobs/uploads/?digest=${digest}`, { method: "POST", body: new TextEncoder().encode(text) })).status).toBe(201);
      return { digest, size: new TextEncoder().encode(text).byteLength };
    }
    async function put(send: typeof byAdmin, repository: string, reference: string, body: object) {
      const text = JSON.stringify(body);
      const response = await send(`/v2/${repository}/manifests/${reference}`, { method: "PUT", headers: { "Content-Type": OCI_MANIFEST }, body: text });
      expect(response.status, await response.clone().text()).toBe(201);
      return { mediaType: OCI_MANIFEST, digest: response.headers.get("Docker-Content-Digest")!, size: new TextEncoder().encode(text).byteLength };
    }
    async function image(send: typeof byAdmin, repository: string) {
      const config = await blob(send, repository, JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } }));
      const layer = await blob(send, repository, "the same layer bytes in both repositories");
      return put(send, repository, "v1", {
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
        layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...layer }],
      });
    }
    const victim = await image(byAdmin, "review/sig-victim");
    // The attacker pushes the same image (same digest) into its own repository, and a signature of it.
    const copy = await image(byAttacker, "review/sig-attacker");
    expect(copy.digest).toBe(victim.digest);
    const stranger = await ecKey();
    const payload = simpleSigningPayload(victim.digest, "registry.test/review/sig-victim");
    const layer = await blob(byAttacker, "review/sig-attacker", payload);
    const empty = await blob(byAttacker, "review/sig-attacker", "{}");
    const signatureManifest = (signature: string) => ({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: "application/vnd.dev.cosign.artifact.sig.v1+json",
      config: { mediaType: "application/vnd.oci.empty.v1+json", ...empty },
      layers: [{ mediaType: "application/vnd.dev.cosign.simplesigning.v1+json", ...layer, annotations: { "dev.cosignproject.cosign/signature": signature } }],
      subject: victim,
    });
    await put(byAttacker, "review/sig-attacker", "stranger-sig", signatureManifest(await cosignSign(stranger, new TextEncoder().encode(payload))));
    await put(byAttacker, "review/sig-attacker", `${victim.digest.replace(":", "-")}.sig`, signatureManifest(await cosignSign(stranger, new TextEncoder().encode(payload))));
    // Pushing into the victim's repository is refused.
    expect((await byAttacker(`/v2/review/sig-victim/manifests/sig`, { method: "PUT", headers: { "Content-Type": OCI_MANIFEST }, body: JSON.stringify(signatureManifest("AAAA")) })).status).toBe(403);

    const verdict = async (send: typeof byAdmin, repository: string) => {
      const response = await send(`/api/repositories/${repository}/tags`);
      return { status: response.status, body: response.status === 200 ? ((await response.json()) as { tags: { name: string; signature: { status: string } }[] }) : null };
    };
    const victimView = await verdict(byAdmin, "review/sig-victim");
    expect(victimView.body!.tags.find((tag) => tag.name === "v1")!.signature.status).toBe("unsigned");
    const attackerView = await verdict(byAttacker, "review/sig-attacker");
    expect(attackerView.body!.tags.find((tag) => tag.name === "v1")!.signature.status).toBe("invalid");
    // The victim's verdicts are not the attacker's to read, and the answer is the one a missing repository gets.
    const refused = await verdict(byAttacker, "review/sig-victim");
    const missing = await verdict(byAttacker, "review/sig-nothing-here");
    expect(refused.status).toBe(403);
    expect(missing.status).toBe(refused.status);
    expect(refused.body).toBeNull();
  });
});

describe("the audit log is the admin's only", () => {
  it("an access token with every scope, as a password, a bearer token or a web UI session, is refused the API and the page", async () => {
    const everything = await createToken("admin", [{ repository: "*", actions: ["pull", "push", "delete"] }]);
    await expectError(await call("/admin/audit", { auth: basic(everything.token) }), 401, "UNAUTHORIZED");
    await expectError(await call("/admin/audit", { auth: bearer(everything.token) }), 401, "UNAUTHORIZED");
    const granted = await call(`/token?service=${SERVICE}&scope=repository:review/x:pull,push,delete`, { auth: basic(everything.token) });
    const { token } = (await granted.json()) as { token: string };
    await expectError(await call("/admin/audit", { auth: bearer(token) }), 401, "UNAUTHORIZED");
    const login = await call("/login", { method: "POST", headers: { Origin: ORIGIN }, body: new URLSearchParams({ token: everything.token, next: "/" }) });
    const cookie = login.headers.get("Set-Cookie")!.split(";")[0]!;
    const page = await call("/audit", { headers: { Cookie: cookie } });
    expect(page.status).toBe(404);
    // Named "admin", it is still logged by its id.
    const client = randomAddress();
    await call(`/token?service=${SERVICE}&scope=repository:review/x:pull`, { auth: basic(everything.token), client });
    const [row] = await rowsOf(client);
    expect(row?.actor).toBe(everything.id);
  });
});

describe("bad audit queries", () => {
  it("are a 400 with the OCI error JSON from the API and a 400 page from the UI, never a 500", async () => {
    const queries = ["limit=0", "limit=abc", "limit=99999999999", "since=2026-13-01", "since=2026-02-30T25:00", "cursor=x", "cursor=1.2.3", "action=nope", "until=99999999999999999", "since=2026-05-01T12:00:00.1234Z", `repository=${"a".repeat(300)}`, `actor=${"a".repeat(301)}`, "since=%00", "since=2026-05-01T12:00+99:99"];
    const login = await call("/login", { method: "POST", headers: { Origin: ORIGIN }, body: new URLSearchParams({ token: ADMIN, next: "/" }) });
    const cookie = login.headers.get("Set-Cookie")!.split(";")[0]!;
    for (const query of queries) {
      const response = await call(`/admin/audit?${query}`, { auth: bearer(ADMIN) });
      expect(response.status, query).toBe(400);
      const body = (await response.json()) as { errors: { code: string }[] };
      expect(["REQUEST_INVALID", "PAGINATION_NUMBER_INVALID"], query).toContain(body.errors[0]!.code);
      expect((await call(`/audit?${query}`, { headers: { Cookie: cookie } })).status, query).toBe(400);
    }
  });
});

describe("sessions and bearer tokens are not each other", () => {
  it("the admin's web UI session is no bearer token, and a bearer token is no session", async () => {
    const login = await call("/login", { method: "POST", headers: { Origin: ORIGIN }, body: new URLSearchParams({ token: ADMIN, next: "/" }) });
    const session = login.headers.get("Set-Cookie")!.split(";")[0]!.split("=")[1]!;
    await expectError(await call("/v2/review/x/tags/list", { auth: bearer(session) }), 401, "UNAUTHORIZED");
    await expectError(await call("/admin/audit", { auth: bearer(session) }), 401, "UNAUTHORIZED");
    const granted = await call(`/token?service=${SERVICE}&scope=repository:review/x:pull`, { auth: basic(ADMIN) });
    const { token } = (await granted.json()) as { token: string };
    expect(claimsOf(token).actor).toBe("admin");
    expect((await call("/audit", { headers: { Cookie: `registry_session=${token}` } })).status).toBe(404);
  });
});

describe("webhook delivery", () => {
  it("a receiver's redirect is not followed: the signed event goes to the configured URL only, and the attempt failed", async () => {
    const hooked = { ...env, WEBHOOKS: JSON.stringify([{ name: "moved", url: "https://moved.test/hook", repositories: ["*"], secretName: "WEBHOOK_CI_SECRET" }]) } as Env;
    const seen: { url: string; redirect: string | undefined }[] = [];
    const realFetch = globalThis.fetch;
    const spy = vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
      const request = new Request(input, init);
      const host = new URL(request.url).host;
      if (host !== "moved.test" && host !== "elsewhere.test") return realFetch(input, init);
      seen.push({ url: request.url, redirect: init?.redirect });
      return new Response(null, { status: 307, headers: { Location: "https://elsewhere.test/steal" } });
    });
    try {
      const event = {
        id: crypto.randomUUID(),
        timestamp: new Date().toISOString(),
        action: "push" as const,
        target: { repository: "review/moved", digest: "sha256:" + "0".repeat(64), tag: "v1" },
        request: { id: "r", addr: "", host: "registry.test", method: "PUT", useragent: "test" },
        actor: { name: "anonymous" },
        source: { addr: "registry.test", instanceID: "i" },
      };
      const batch = createMessageBatch("registry-events", [{ id: "m1", timestamp: new Date(), attempts: 1, body: { endpoint: "moved", event } }]);
      const ctx = createExecutionContext();
      await worker.queue(batch as MessageBatch<WebhookMessage>, hooked);
      const result = await getQueueResult(batch, ctx);
      expect(seen).toEqual([{ url: "https://moved.test/hook", redirect: "manual" }]);
      expect(result.retryMessages).toEqual([{ msgId: "m1" }]);
    } finally {
      spy.mockRestore();
    }
  });
});

describe("Notation chains", () => {
  // DER pieces the fixtures keep to themselves.
  const set = (...items: Uint8Array[]) => tlv(0x31, ...items);
  const bool = (value: boolean) => tlv(0x01, new Uint8Array([value ? 0xff : 0]));
  const octets = (bytes: Uint8Array) => tlv(0x04, bytes);
  const bits = (bytes: Uint8Array) => tlv(0x03, new Uint8Array([0]), bytes);
  const utf8 = (text: string) => tlv(0x0c, new TextEncoder().encode(text));
  const generalized = (millis: number) => tlv(0x18, new TextEncoder().encode(new Date(millis).toISOString().slice(0, 19).replace(/[-:T]/g, "") + "Z"));
  const name = (cn: string) => seq(set(seq(oid("2.5.4.10"), utf8("Signature Tests"))), set(seq(oid("2.5.4.3"), utf8(cn))));

  /** A CA certificate issued by `issuer` with one more extension, critical: one this verifier does not process. */
  async function constrainedIntermediate(subject: string, key: KeyPair, issuer: Issued): Promise<Issued> {
    const algorithm = seq(oid("1.2.840.10045.4.3.2"));
    const now = Date.now();
    const tbs = seq(
      tlv(0xa0, integer(2)),
      integer(4242),
      algorithm,
      name(issuer.name),
      seq(generalized(now - 86_400_000), generalized(now + 86_400_000 * 365)),
      name(subject),
      await spkiOf(key),
      tlv(0xa3, seq(
        seq(oid("2.5.29.19"), bool(true), octets(seq(bool(true), integer(0)))),
        seq(oid("2.5.29.15"), bool(true), octets(bits(new Uint8Array([0x06])))),
        // nameConstraints, critical: permitted only names under example.com (which nothing here checks).
        seq(oid("2.5.29.30"), bool(true), octets(seq(tlv(0xa0, seq(tlv(0x82, new TextEncoder().encode("example.com"))))))),
      )),
    );
    const signature = rawToDer(new Uint8Array(await crypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, issuer.key.privateKey, tbs)));
    const der = seq(tbs, algorithm, bits(signature));
    return { der, pem: pem("CERTIFICATE", der), name: subject, key };
  }

  it("a chain with a certificate whose critical extension the verifier does not process is invalid (RFC 5280 4.2)", async () => {
    const root = await certificate({ subject: "Review Root", key: await ecKey(), ca: true });
    const intermediate = await constrainedIntermediate("Review Constrained Intermediate", await ecKey(), root);
    const leaf = await certificate({ subject: "Review Signer", key: await ecKey(), ca: false, codeSigning: true, issuer: intermediate });
    const trust = [{ repositories: ["review/notation-*"], notationRoots: [{ name: "review-root", pem: root.pem }] }];
    const signedEnv = { ...env, AUTH_MODE: "open", SIGNATURE_TRUST: JSON.stringify(trust) };
    const send = (path: string, init: RequestInit = {}) => call(path, { ...init, env: signedEnv });
    const repository = "review/notation-constrained";
    const image = await pushImage(repository);
    const text = JSON.stringify(image);
    const digest = await pushManifest(repository, "v1", image);
    const subject = { mediaType: OCI_MANIFEST, digest, size: new TextEncoder().encode(text).byteLength };
    const envelope = await notationEnvelope({ chain: [leaf, intermediate, root], target: subject });
    const envelopeDigest = await pushBlob(repository, envelope);
    const empty = await pushBlob(repository, "{}");
    const put = await send(`/v2/${repository}/manifests/notation-constrained`, {
      method: "PUT",
      headers: { "Content-Type": OCI_MANIFEST },
      body: JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: "application/vnd.cncf.notary.signature",
        config: { mediaType: "application/vnd.oci.empty.v1+json", digest: empty, size: 2 },
        layers: [{ mediaType: "application/jose+json", digest: envelopeDigest, size: new TextEncoder().encode(envelope).byteLength }],
        subject,
      }),
    });
    expect(put.status).toBe(201);
    const response = await send(`/api/repositories/${repository}/tags`);
    expect(response.status).toBe(200);
    const { tags } = (await response.json()) as { tags: { name: string; signature: { status: string; problems?: { reason: string }[] } }[] };
    const verdict = tags.find((tag) => tag.name === "v1")!.signature;
    expect(verdict.status).toBe("invalid");
    expect(verdict.problems?.[0]?.reason).toContain("2.5.29.30");
  });
});

describe("OIDC actors", () => {
  const issuer = new FakeIssuer("https://review.issuer.test");
  useFakeIssuers(issuer);
  const policies = [{ issuer: issuer.origin, audience: "registry.test", claims: { repository: "my-org/app" }, scopes: [{ repository: "review/*", actions: ["pull"] }] }];
  const oidcEnv = { ...tokenEnv, OIDC_TRUST_POLICIES: JSON.stringify(policies) };

  beforeAll(async () => {
    await issuer.newKey();
  });

  it("two CI identities whose subjects differ only past 200 characters are two actors in the audit log and in their tokens", async () => {
    const prefix = `repo:my-org/app:ref:refs/heads/release/${"a".repeat(200)}`;
    const actors: string[] = [];
    for (const branch of ["-victim", "-attacker"]) {
      const client = randomAddress();
      const jwt = await issuer.sign({ aud: "registry.test", sub: `${prefix}${branch}`, repository: "my-org/app" });
      const response = await call(`/token?service=${SERVICE}&scope=repository:review/x:pull`, { auth: basic(jwt, "oidc"), client, env: oidcEnv });
      expect(response.status).toBe(200);
      const { token } = (await response.json()) as { token: string };
      const [row] = await rowsOf(client);
      expect(row?.actor).toBe(claimsOf(token).actor);
      expect(row!.actor.length).toBeLessThanOrEqual(300);
      actors.push(row!.actor);
    }
    expect(actors[0]).not.toBe(actors[1]);
  });
});

describe("failed-login flooding", () => {
  it("failed logins from every /64 of one /48 write a bounded number of rows a minute (per isolate)", { timeout: 60_000 }, async () => {
    const prefix = `2001:db8:${(0x4000 + Math.floor(Math.random() * 0xbfff)).toString(16)}`;
    for (let i = 0; i < 660; i++) {
      const response = await call(`/token?service=${SERVICE}&scope=repository:review/x:pull`, { auth: basic(`ocr_${"a".repeat(16)}_${"b".repeat(43)}`), client: `${prefix}:${i.toString(16)}::1` });
      expect(response.status).toBe(401);
    }
    const { results } = await env.DB.prepare("SELECT count(*) AS n FROM audit_events WHERE client LIKE ?").bind(`${prefix}:%`).all<{ n: number }>();
    expect(results[0]!.n).toBeGreaterThan(0);
    expect(results[0]!.n).toBeLessThanOrEqual(600);
  });
});
