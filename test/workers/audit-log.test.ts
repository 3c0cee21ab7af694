import { env } from "cloudflare:test";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { configOf, ConfigError, type Env } from "../../src/config";
import { GarbageCollector } from "../../src/gc/collector";
import { RetentionRules } from "../../src/gc/retention";
import { AuditRecords } from "../../src/storage/audit-records";
import { manifestInterleavings } from "../../src/storage/manifest-records";
import { FakeIssuer, useFakeIssuers } from "./fake-issuer";
import { callerOf, mirrorEnvWith, publish, UPSTREAM, useFakeUpstream } from "./fake-upstream";
import { expectError, ORIGIN, pushImage, sha256 } from "./helpers";
import { ADMIN, basic, bearer, call, createToken, randomAddress, SERVICE, tokenEnv } from "./token-auth";

// The audit log (README: "Audit log"): a row for every change and refusal, written in the batch of the change, read
// through GET /admin/audit and the web UI's /audit (the admin's only), and kept AUDIT_RETENTION_DAYS.

interface Row {
  id: number;
  at: number;
  actor: string;
  client: string | null;
  action: string;
  repository: string | null;
  target: string | null;
  result: string;
  detail: Record<string, unknown> | null;
}

/** The rows matching the SQL condition, oldest first, with their detail parsed. */
async function rows(where: string, ...params: unknown[]): Promise<Row[]> {
  const { results } = await env.DB.prepare(`SELECT * FROM audit_events WHERE ${where} ORDER BY id`).bind(...params).all<Row & { detail: string | null }>();
  return results.map((row) => ({ ...row, detail: row.detail === null ? null : (JSON.parse(row.detail) as Record<string, unknown>) }));
}

const ofRepository = (repository: string) => rows("repository = ?", repository);

/** The row's fields but its id, checking that its time is between `since` and now. */
function fields(row: Row | undefined, since: number) {
  expect(row, "no such audit row").toBeDefined();
  const { id, at, ...rest } = row!;
  expect(id).toBeGreaterThan(0);
  expect(at).toBeGreaterThanOrEqual(since);
  expect(at).toBeLessThanOrEqual(Date.now());
  return rest;
}

const json = { "Content-Type": "application/json" };
const MANIFEST = "application/vnd.oci.image.manifest.v1+json";

/** PUT of a manifest through the token-auth Worker, by `auth` from `client`. */
function put(repository: string, reference: string, body: string, auth: string, client: string) {
  return call(`/v2/${repository}/manifests/${reference}`, { method: "PUT", headers: { "Content-Type": MANIFEST }, body, auth, client });
}

let pusher: { id: string; token: string };
let puller: { id: string; token: string };
const PUSHER_ADDRESS = "203.0.113.10";

beforeAll(async () => {
  pusher = await createToken("audit-pusher", [{ repository: "audit/*", actions: ["pull", "push", "delete"] }, { repository: "frozen/*", actions: ["pull", "push", "delete"] }]);
  puller = await createToken("audit-puller", [{ repository: "audit/*", actions: ["pull"] }]);
});

describe("changes are recorded in the batch that makes them", () => {
  afterEach(() => {
    delete manifestInterleavings.beforeInsert;
  });

  it("records a push by tag, a tag moved to another digest (with the digest it left) and a push by digest", async () => {
    const repository = "audit/push";
    const since = Date.now();
    const first = JSON.stringify(await pushImage(repository));
    const second = JSON.stringify(await pushImage(repository));
    const [firstDigest, secondDigest] = [await sha256(first), await sha256(second)];
    const auth = basic(pusher.token);
    expect((await put(repository, "v1", first, auth, PUSHER_ADDRESS)).status).toBe(201);
    expect((await put(repository, "v1", second, auth, PUSHER_ADDRESS)).status).toBe(201);
    // The same tag and digest again: a push, but no move.
    expect((await put(repository, "v1", second, auth, PUSHER_ADDRESS)).status).toBe(201);
    expect((await put(repository, firstDigest, first, auth, PUSHER_ADDRESS)).status).toBe(201);

    const recorded = await ofRepository(repository);
    expect(recorded.map((row) => row.action)).toEqual(["manifest.push", "tag.move", "manifest.push", "manifest.push", "manifest.push"]);
    const by = { actor: pusher.id, client: PUSHER_ADDRESS, repository, result: "ok" };
    expect(fields(recorded[0], since)).toEqual({ ...by, action: "manifest.push", target: firstDigest, detail: { tag: "v1", mediaType: MANIFEST, size: first.length } });
    expect(fields(recorded[1], since)).toEqual({ ...by, action: "tag.move", target: "v1", detail: { from: firstDigest, to: secondDigest } });
    expect(fields(recorded[2], since)).toEqual({ ...by, action: "manifest.push", target: secondDigest, detail: { tag: "v1", mediaType: MANIFEST, size: second.length } });
    expect(fields(recorded[4], since)).toEqual({ ...by, action: "manifest.push", target: firstDigest, detail: { mediaType: MANIFEST, size: first.length } });
  });

  it("writes no row for a push that fails: a missing blob, a wrong digest, an invalid manifest", async () => {
    const repository = "audit/failed";
    const image = await pushImage(repository);
    const missing = JSON.stringify({ ...image, layers: [{ ...image.layers[0]!, digest: await sha256("never pushed") }] });
    const auth = basic(pusher.token);
    await expectError(await put(repository, "v1", missing, auth, PUSHER_ADDRESS), 400, "MANIFEST_BLOB_UNKNOWN");
    await expectError(await put(repository, await sha256("other"), JSON.stringify(image), auth, PUSHER_ADDRESS), 400, "DIGEST_INVALID");
    await expectError(await put(repository, "v1", "{not json", auth, PUSHER_ADDRESS), 400, "MANIFEST_INVALID");
    expect(await ofRepository(repository)).toEqual([]);
  });

  it("writes no push row when the manifest's insert finds a blob deleted since its checks (same batch, nothing stored)", async () => {
    const repository = "audit/raced";
    const image = await pushImage(repository);
    const layer = image.layers[0]!.digest;
    const auth = basic(pusher.token);
    manifestInterleavings.beforeInsert = async () => {
      delete manifestInterleavings.beforeInsert;
      expect((await call(`/v2/${repository}/blobs/${layer}`, { method: "DELETE", auth })).status).toBe(202);
    };
    await expectError(await put(repository, "v1", JSON.stringify(image), auth, PUSHER_ADDRESS), 400, "MANIFEST_BLOB_UNKNOWN");
    expect((await ofRepository(repository)).map((row) => [row.action, row.target])).toEqual([["blob.delete", layer]]);
  });

  it("records deletes: a tag (with its digest), a manifest (with the tags that went with it) and a blob", async () => {
    const repository = "audit/deletes";
    const since = Date.now();
    const image = await pushImage(repository);
    const body = JSON.stringify(image);
    const digest = await sha256(body);
    const auth = basic(pusher.token);
    for (const tag of ["a", "b", "c"]) expect((await put(repository, tag, body, auth, PUSHER_ADDRESS)).status).toBe(201);
    const client = randomAddress();
    expect((await call(`/v2/${repository}/manifests/a`, { method: "DELETE", auth, client })).status).toBe(202);
    expect((await call(`/v2/${repository}/manifests/${digest}`, { method: "DELETE", auth, client })).status).toBe(202);
    const layer = image.layers[0]!.digest;
    expect((await call(`/v2/${repository}/blobs/${layer}`, { method: "DELETE", auth, client })).status).toBe(202);
    // Deleting what is gone changes nothing and records nothing.
    await expectError(await call(`/v2/${repository}/manifests/a`, { method: "DELETE", auth, client }), 404, "MANIFEST_UNKNOWN");
    await expectError(await call(`/v2/${repository}/blobs/${layer}`, { method: "DELETE", auth, client }), 404, "BLOB_UNKNOWN");

    const deletes = (await ofRepository(repository)).filter((row) => row.action !== "manifest.push");
    const by = { actor: pusher.id, client, repository, result: "ok" };
    expect(deletes.map((row) => fields(row, since))).toEqual([
      { ...by, action: "tag.delete", target: "a", detail: { digest } },
      { ...by, action: "manifest.delete", target: digest, detail: { tags: ["b", "c"] } },
      { ...by, action: "blob.delete", target: layer, detail: null },
    ]);
  });

  it("records an access token's creation (never its secret) and revocation, once", async () => {
    const since = Date.now();
    const client = randomAddress();
    const scopes = [{ repository: "audit/*", actions: ["pull"] }];
    const created = await call("/admin/tokens", { method: "POST", auth: bearer(ADMIN), headers: json, body: JSON.stringify({ name: "audit-created", owner: "ops", scopes }), client });
    expect(created.status).toBe(201);
    const token = (await created.json()) as { id: string; token: string };
    expect((await call(`/admin/tokens/${token.id}`, { method: "DELETE", auth: bearer(ADMIN), client })).status).toBe(204);
    await expectError(await call(`/admin/tokens/${token.id}`, { method: "DELETE", auth: bearer(ADMIN), client }), 404, "NOT_FOUND");

    const recorded = await rows("target = ? AND action LIKE 'token.%'", token.id);
    expect(recorded.map((row) => fields(row, since))).toEqual([
      { actor: "admin", client, action: "token.create", repository: null, target: token.id, result: "ok", detail: { name: "audit-created", owner: "ops", scopes, expiresAt: null } },
      { actor: "admin", client, action: "token.revoke", repository: null, target: token.id, result: "ok", detail: null },
    ]);
    const secret = token.token.split("_")[2]!;
    expect((await rows("detail LIKE ?", `%${secret}%`)).length).toBe(0);
  });

  it("records the garbage collector's retention deletions, one row per tag and manifest, as gc", async () => {
    const repository = "audit/retained";
    const auth = basic(pusher.token);
    const bodies = [JSON.stringify(await pushImage(repository)), JSON.stringify(await pushImage(repository))];
    expect((await put(repository, "old", bodies[0]!, auth, PUSHER_ADDRESS)).status).toBe(201);
    await new Promise((done) => setTimeout(done, 5));
    expect((await put(repository, "new", bodies[1]!, auth, PUSHER_ADDRESS)).status).toBe(201);
    await env.DB.prepare("UPDATE manifests SET created_at = 0 WHERE repository = ?").bind(repository).run();
    const since = Date.now();
    const rules = RetentionRules.parse(JSON.stringify([{ repositories: "audit/retained", keepLastTags: 1, untaggedDays: 1 }]));
    const report = await new GarbageCollector(env.DB, env.BLOBS).run({ dryRun: false, graceMs: 86_400_000, batch: 500, retention: { rules, immutable: [] } });
    const oldDigest = await sha256(bodies[0]!);
    expect(report.retention.tags).toEqual([{ repository, tag: "old" }]);
    expect(report.retention.manifests.map((manifest) => manifest.digest)).toEqual([oldDigest]);
    const recorded = (await ofRepository(repository)).filter((row) => row.actor === "gc");
    const why = { reason: "retention", rule: 0, repositories: "audit/retained" };
    expect(recorded.map((row) => fields(row, since))).toEqual([
      { actor: "gc", client: null, action: "tag.delete", repository, target: "old", result: "ok", detail: { ...why, digest: oldDigest } },
      { actor: "gc", client: null, action: "manifest.delete", repository, target: oldDigest, result: "ok", detail: why },
    ]);
  });
});

describe("mirror eviction", () => {
  useFakeUpstream();
  const pull = callerOf(mirrorEnvWith([{ prefix: "evicted", upstream: UPSTREAM, library: true }]));

  it("records each evicted manifest as gc, and nothing for the mirror's fills", async () => {
    await publish("library/one", "1");
    await publish("library/two", "1");
    const digests: string[] = [];
    for (const name of ["one", "two"]) {
      const response = await pull(`/v2/evicted/${name}/manifests/1`);
      expect(response.status).toBe(200);
      digests.push(response.headers.get("Docker-Content-Digest")!);
    }
    expect(await rows("repository LIKE 'evicted/%'")).toEqual([]);
    const since = Date.now();
    const report = await new GarbageCollector(env.DB, env.BLOBS).run({ dryRun: false, graceMs: 3_600_000, batch: 100, mirrors: [{ prefix: "evicted", maxBytes: 0 }] });
    expect(report.evicted.map((entry) => entry.repository).sort()).toEqual(["evicted/one", "evicted/two"]);
    const recorded = await rows("repository LIKE 'evicted/%'");
    expect(recorded.map((row) => fields(row, since)).sort((a, b) => a.repository!.localeCompare(b.repository!))).toEqual(
      ["one", "two"].map((name, index) => ({
        actor: "gc",
        client: null,
        action: "manifest.delete",
        repository: `evicted/${name}`,
        target: digests[index],
        result: "ok",
        detail: { reason: "eviction", mirror: "evicted" },
      })),
    );
  });
});

describe("refusals", () => {
  it("records a token without push refused (Basic: DENIED), on uploads and on the manifest", async () => {
    const repository = "audit/refused";
    const since = Date.now();
    const client = randomAddress();
    const auth = basic(puller.token);
    await expectError(await call(`/v2/${repository}/blobs/uploads/`, { method: "POST", auth, client }), 403, "DENIED");
    await expectError(await put(repository, "v1", "{}", auth, client), 403, "DENIED");
    await expectError(await call(`/v2/${repository}/manifests/v1`, { method: "DELETE", auth, client }), 403, "DENIED");
    const refused = await ofRepository(repository);
    const by = { actor: puller.id, client, repository, result: "denied" };
    const detail = (method: string) => ({ method, code: "DENIED", message: "requested access to the resource is denied" });
    expect(refused.map((row) => fields(row, since))).toEqual([
      { ...by, action: "blob.upload", target: null, detail: detail("POST") },
      { ...by, action: "manifest.push", target: "v1", detail: detail("PUT") },
      { ...by, action: "tag.delete", target: "v1", detail: detail("DELETE") },
    ]);
  });

  it("records a bearer token's missing scope (insufficient_scope), naming the token's id", async () => {
    const repository = "audit/bearer";
    const since = Date.now();
    const client = randomAddress();
    const granted = await call(`/token?service=${SERVICE}&scope=repository:${repository}:pull,push`, { auth: basic(puller.token), client });
    expect(granted.status).toBe(200);
    const { token } = (await granted.json()) as { token: string };
    await expectError(await call(`/v2/${repository}/blobs/uploads/`, { method: "POST", auth: bearer(token), client }), 401, "UNAUTHORIZED");
    const [row] = await ofRepository(repository);
    expect(fields(row, since)).toEqual({
      actor: puller.id,
      client,
      action: "blob.upload",
      repository,
      target: null,
      result: "denied",
      detail: { method: "POST", code: "UNAUTHORIZED", message: "authentication required" },
    });
  });

  it("records an immutable tag's refusal, and no push", async () => {
    const repository = "frozen/app";
    const frozen = { ...tokenEnv, IMMUTABLE_TAGS: "frozen/*" };
    const auth = basic(pusher.token);
    const first = JSON.stringify(await pushImage(repository));
    const second = JSON.stringify(await pushImage(repository));
    const client = randomAddress();
    const push = (body: string) => call(`/v2/${repository}/manifests/v1`, { method: "PUT", headers: { "Content-Type": MANIFEST }, body, auth, client, env: frozen });
    expect((await push(first)).status).toBe(201);
    const since = Date.now();
    await expectError(await push(second), 403, "DENIED");
    const recorded = (await ofRepository(repository)).filter((row) => row.at >= since);
    expect(recorded.map((row) => fields(row, since))).toEqual([
      {
        actor: pusher.id,
        client,
        action: "manifest.push",
        repository,
        target: "v1",
        result: "denied",
        detail: { method: "PUT", code: "DENIED", message: "tag v1 of frozen/app is immutable (IMMUTABLE_TAGS): push a new tag instead" },
      },
    ]);
  });

  it("records at most 60 refusals a minute per caller (per isolate): a job retrying a refused push in a loop", async () => {
    const looping = await createToken("audit-looping", [{ repository: "audit/*", actions: ["pull"] }]);
    for (let i = 0; i < 65; i++) {
      expect((await call("/v2/audit/looped/blobs/uploads/", { method: "POST", auth: basic(looping.token) })).status).toBe(403);
    }
    expect((await rows("actor = ?", looping.id)).length).toBe(60);
  });

  it("records nothing for anonymous callers, however many refusals they get", async () => {
    const repository = "audit/anonymous";
    for (let i = 0; i < 5; i++) {
      expect((await call(`/v2/${repository}/blobs/uploads/`, { method: "POST" })).status).toBe(401);
      expect((await put(repository, "v1", "{}", "", randomAddress())).status).toBe(401);
    }
    // An anonymous bearer token (the grant anyone gets) is no credential either.
    const granted = await call(`/token?service=${SERVICE}&scope=repository:${repository}:push`);
    const { token } = (await granted.json()) as { token: string };
    expect((await call(`/v2/${repository}/blobs/uploads/`, { method: "POST", auth: bearer(token) })).status).toBe(401);
    expect(await ofRepository(repository)).toEqual([]);
  });
});

describe("logins", () => {
  const issuer = new FakeIssuer("https://audit.issuer.test");
  useFakeIssuers(issuer);
  const policies = [{ issuer: issuer.origin, audience: "registry.test", claims: { repository: "my-org/app" }, scopes: [{ repository: "audit/*", actions: ["pull"] }] }];
  const oidcEnv = { ...tokenEnv, OIDC_TRUST_POLICIES: JSON.stringify(policies) };

  beforeAll(async () => {
    await issuer.newKey();
  });

  it("records a login at /token: an access token's id, or a CI job's OIDC identity", async () => {
    const since = Date.now();
    const client = randomAddress();
    expect((await call(`/token?service=${SERVICE}&scope=repository:audit/x:pull`, { auth: basic(puller.token), client })).status).toBe(200);
    const grant = new URLSearchParams({ grant_type: "password", username: "ci", password: puller.token, service: SERVICE });
    expect((await call("/token", { method: "POST", body: grant, client })).status).toBe(200);
    const jwt = await issuer.sign({ aud: "registry.test", sub: "repo:my-org/app:ref:refs/heads/main", repository: "my-org/app" });
    expect((await call(`/token?service=${SERVICE}&scope=repository:audit/x:pull`, { auth: basic(jwt, "oidc"), client, env: oidcEnv })).status).toBe(200);
    // An anonymous token is no login.
    expect((await call(`/token?service=${SERVICE}`, { client })).status).toBe(200);

    const logins = await rows("action = 'login' AND client = ?", client);
    const ok = { client, action: "login", repository: null, target: null, result: "ok", detail: { place: "token" } };
    expect(logins.map((row) => fields(row, since))).toEqual([
      { ...ok, actor: puller.id },
      { ...ok, actor: puller.id },
      { ...ok, actor: `oidc:${issuer.origin}#repo:my-org/app:ref:refs/heads/main` },
    ]);
  });

  it("records failed logins once per secret and window, the block that follows, and admin-token failures", async () => {
    // The local rate limiter counts in fixed 60 s windows of the clock: the count must not straddle two.
    const intoWindow = Date.now() % 60_000;
    if (intoWindow > 45_000) await new Promise((done) => setTimeout(done, 60_500 - intoWindow));
    const since = Date.now();
    const client = randomAddress();
    const wrong = `${puller.token.slice(0, -1)}${puller.token.endsWith("A") ? "B" : "A"}`;
    for (let i = 0; i < 3; i++) expect((await call(`/token?service=${SERVICE}`, { auth: basic(wrong, "robot"), client })).status).toBe(401);
    expect((await call("/admin/audit", { auth: bearer("not-the-admin-token-not-the-admin-token"), client })).status).toBe(401);
    expect((await call("/login", { method: "POST", headers: { Origin: ORIGIN }, body: new URLSearchParams({ token: "a-wrong-token" }), client })).status).toBe(401);
    // The limit is 10 per client and minute: 7 more distinct guesses reach it, the next one is blocked.
    for (let i = 0; i < 7; i++) expect((await call(`/token?service=${SERVICE}`, { auth: basic(`guess-${i}`), client })).status).toBe(401);
    expect((await call(`/token?service=${SERVICE}`, { auth: basic("guess-last"), client })).status).toBe(429);

    const failures = await rows("action = 'login' AND client = ?", client);
    const failed = { actor: "anonymous", client, action: "login", repository: null, result: "failed" };
    expect(failures.map((row) => fields(row, since))).toEqual([
      { ...failed, target: puller.id, detail: { place: "token", user: "robot" } },
      { ...failed, target: "admin", detail: { place: "admin", user: "" } },
      { ...failed, target: null, detail: { place: "web", user: "web" } },
      ...Array.from({ length: 7 }, () => ({ ...failed, target: null, detail: { place: "token", user: "ci" } })),
      { ...failed, result: "denied", target: null, detail: { place: "token", user: "ci", reason: "too many failed logins" } },
    ]);
    expect((await rows("detail LIKE ?", `%${wrong.slice(-20)}%`)).length).toBe(0);
  });

  it("records a web UI login with the admin token", async () => {
    const since = Date.now();
    const client = randomAddress();
    const response = await call("/login", { method: "POST", headers: { Origin: ORIGIN }, body: new URLSearchParams({ token: ADMIN, next: "/audit" }), client });
    expect(response.status).toBe(303);
    const [row] = await rows("action = 'login' AND client = ?", client);
    expect(fields(row, since)).toEqual({ actor: "admin", client, action: "login", repository: null, target: null, result: "ok", detail: { place: "web" } });
  });
});

describe("admin runs", () => {
  it("records a GC run and a pre-warming run by the admin, with what they did", async () => {
    const since = Date.now();
    const client = randomAddress();
    const gc = await call("/admin/gc?dryRun=true", { method: "POST", auth: bearer(ADMIN), client });
    expect(gc.status).toBe(200);
    const report = (await gc.json()) as { subrequests: number; marked: unknown[] };
    expect((await call("/admin/mirrors/prewarm", { method: "POST", auth: bearer(ADMIN), client })).status).toBe(200);
    const [gcRow, prewarmRow] = await rows("client = ? AND action LIKE 'admin.%'", client);
    expect(fields(gcRow, since)).toMatchObject({ actor: "admin", client, action: "admin.gc", repository: null, target: null, result: "ok" });
    expect(gcRow!.detail).toMatchObject({ dryRun: true, marked: report.marked.length, subrequests: report.subrequests });
    expect(fields(prewarmRow, since)).toEqual({ actor: "admin", client, action: "admin.prewarm", repository: null, target: null, result: "ok", detail: { mirrors: [] } });
  });
});

describe("GET /admin/audit", () => {
  const repository = "audit/listed";
  const audit = (query: string, auth = bearer(ADMIN)) => call(`/admin/audit${query}`, { auth });
  type Listing = { events: { id: number; at: string; action: string; actor: string; repository: string; target: string }[]; next: string | null };

  beforeAll(async () => {
    // Twelve rows a millisecond apart, from two actors, of two actions.
    const records = new AuditRecords(env.DB);
    const start = Date.now() - 60_000;
    for (let i = 0; i < 12; i++) {
      const by = { id: i % 3 === 0 ? "lister-b" : "lister-a", client: "192.0.2.1" };
      await records.insert(by, { action: i % 2 === 0 ? "manifest.push" : "tag.delete", repository, target: `t${i}` }, undefined, start + i).run();
    }
  });

  it("pages newest first with a cursor and a Link header to the next page, the same filters kept", async () => {
    const seen: string[] = [];
    let next: string | null = `?repository=${repository}&limit=5`;
    let pages = 0;
    while (next) {
      const response = await audit(next);
      expect(response.status).toBe(200);
      const page = (await response.json()) as Listing;
      seen.push(...page.events.map((event) => event.target));
      const link = response.headers.get("Link");
      if (page.next) {
        expect(link).toBe(`</admin/audit?repository=${encodeURIComponent(repository)}&limit=5&cursor=${page.next}>; rel="next"`);
        next = link!.slice(link!.indexOf("?"), link!.indexOf(">"));
      } else {
        expect(link).toBeNull();
        next = null;
      }
      pages++;
    }
    expect(seen).toEqual(Array.from({ length: 12 }, (_, i) => `t${11 - i}`));
    expect(pages).toBe(3);
  });

  it("filters by action, actor and time, alone or together", async () => {
    const targets = async (query: string) => ((await (await audit(`?repository=${repository}&${query}`)).json()) as Listing).events.map((event) => event.target);
    expect(await targets("action=tag.delete")).toEqual(["t11", "t9", "t7", "t5", "t3", "t1"]);
    expect(await targets("actor=lister-b")).toEqual(["t9", "t6", "t3", "t0"]);
    expect(await targets("actor=lister-b&action=manifest.push")).toEqual(["t6", "t0"]);
    const listed = ((await (await audit(`?repository=${repository}`)).json()) as Listing).events;
    const at = (target: string) => listed.find((event) => event.target === target)!.at;
    expect(await targets(`since=${encodeURIComponent(at("t8"))}`)).toEqual(["t11", "t10", "t9", "t8"]);
    expect(await targets(`since=${Date.parse(at("t2"))}&until=${Date.parse(at("t4"))}`)).toEqual(["t4", "t3", "t2"]);
    const byAction = ((await (await audit("?action=tag.delete&actor=lister-a&limit=200")).json()) as Listing).events;
    expect(byAction.every((event) => event.action === "tag.delete" && event.actor === "lister-a")).toBe(true);
    expect(byAction.map((event) => event.target).filter((target) => target.startsWith("t"))).toEqual(["t11", "t7", "t5", "t1"]);
  });

  it("reads a bounded number of rows per page: sparse matches come back over short pages that say where to go on", async () => {
    const sparse = "audit/sparse";
    const records = new AuditRecords(env.DB);
    const start = Date.now() - 30_000;
    await records.insert({ id: "sparse", client: null }, { action: "tag.delete", repository: sparse, target: "the-one" }, undefined, start).run();
    await env.DB.batch(Array.from({ length: 600 }, (_, i) => records.insert({ id: "sparse", client: null }, { action: "manifest.push", repository: sparse, target: `p${i}` }, undefined, start + 1 + i)));
    const first = (await (await audit(`?repository=${sparse}&action=tag.delete`)).json()) as Listing;
    // 600 newer rows of another action: the first page reads 500 of them, finds none, and says where it stopped.
    expect(first.events).toEqual([]);
    expect(first.next).not.toBeNull();
    const second = (await (await audit(`?repository=${sparse}&action=tag.delete&cursor=${first.next}`)).json()) as Listing;
    expect(second.events.map((event) => event.target)).toEqual(["the-one"]);
    expect(second.next).toBeNull();
  });

  it("answers bad queries with a 400 naming the parameter", async () => {
    await expectError(await audit("?limit=0"), 400, "PAGINATION_NUMBER_INVALID");
    await expectError(await audit("?limit=abc"), 400, "PAGINATION_NUMBER_INVALID");
    const body = await expectError(await audit("?action=manifest.steal"), 400, "REQUEST_INVALID");
    expect(JSON.stringify(body.errors[0]!.detail)).toContain("action");
    await expectError(await audit("?cursor=nope"), 400, "REQUEST_INVALID");
    await expectError(await audit("?since=yesterday"), 400, "REQUEST_INVALID");
    await expectError(await audit(`?repository=${"x".repeat(300)}`), 400, "REQUEST_INVALID");
  });

  it("answers only the admin token: none, an access token or a wrong token get 401", async () => {
    await expectError(await call("/admin/audit"), 401, "UNAUTHORIZED");
    await expectError(await audit("", basic(pusher.token)), 401, "UNAUTHORIZED");
    await expectError(await audit("", bearer(pusher.token)), 401, "UNAUTHORIZED");
    const granted = await call(`/token?service=${SERVICE}&scope=repository:audit/x:pull`, { auth: basic(pusher.token) });
    await expectError(await audit("", bearer(((await granted.json()) as { token: string }).token)), 401, "UNAUTHORIZED");
  });
});

describe("the web UI's audit page", () => {
  /** Logs in through the form and returns the session cookie. */
  async function login(secret: string): Promise<string> {
    const response = await call("/login", { method: "POST", headers: { Origin: ORIGIN }, body: new URLSearchParams({ token: secret, next: "/" }) });
    expect(response.status).toBe(303);
    return response.headers.get("Set-Cookie")!.split(";")[0]!;
  }

  it("shows the admin the log with its filters and a link to older events", async () => {
    const cookie = await login(ADMIN);
    const response = await call(`/audit?repository=audit/listed&limit=5`, { headers: { Cookie: cookie } });
    expect(response.status).toBe(200);
    const page = await response.text();
    expect(page).toContain("<h1>Audit log</h1>");
    expect(page.match(/<tr data-id=/g)?.length).toBe(5);
    expect(page).toContain('value="audit/listed"');
    expect(page).toMatch(/id="audit-next" href="\/audit\?repository=audit%2Flisted&amp;limit=5&amp;cursor=\d+\.\d+"/);
    // A link to it in the header, for the admin only.
    expect(page).toContain('id="audit-link"');
    const bad = await call(`/audit?since=yesterday`, { headers: { Cookie: cookie } });
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain("since: not a time");
  });

  it("records a refused tag delete from the web UI", async () => {
    const since = Date.now();
    const cookie = await login(puller.token);
    const client = randomAddress();
    const refused = await call("/r/audit/push/-/tags/v1/delete", { method: "POST", headers: { Cookie: cookie, Origin: ORIGIN }, body: new URLSearchParams(), client });
    expect(refused.status).toBe(403);
    const [row] = await rows("client = ?", client);
    expect(fields(row, since)).toEqual({
      actor: puller.id,
      client,
      action: "tag.delete",
      repository: "audit/push",
      target: "v1",
      result: "denied",
      detail: { place: "web", code: "DENIED", message: "You may not delete tags of audit/push." },
    });
  });

  it("is not there for anyone else: an anonymous visitor or an access token's session get 404", async () => {
    const anonymous = await call("/audit");
    expect(anonymous.status).toBe(404);
    expect(await anonymous.text()).not.toContain("audit/listed");
    const cookie = await login(pusher.token);
    const member = await call("/audit?repository=audit/listed", { headers: { Cookie: cookie } });
    expect(member.status).toBe(404);
    const text = await member.text();
    expect(text).not.toContain("t11");
    expect(text).not.toContain('id="audit-link"');
  });
});

describe("retention (AUDIT_RETENTION_DAYS)", () => {
  afterAll(async () => {
    await env.DB.prepare("DELETE FROM audit_events WHERE actor = 'retention-test'").run();
  });

  it("deletes only rows older than the setting, a bounded number per pass, going on in the next", async () => {
    const records = new AuditRecords(env.DB);
    const by = { id: "retention-test", client: null };
    const day = 86_400_000;
    const now = Date.now();
    // 45 rows 40 days old, 5 rows 20 days old.
    await env.DB.batch([
      ...Array.from({ length: 45 }, (_, i) => records.insert(by, { action: "login", target: `old${i}` }, undefined, now - 40 * day + i)),
      ...Array.from({ length: 5 }, (_, i) => records.insert(by, { action: "login", target: `kept${i}` }, undefined, now - 20 * day + i)),
    ]);
    const older = async () => (await rows("actor = 'retention-test' AND at < ?", now - 30 * day)).length;
    // Other tests' rows are recent: all these counts are this test's.
    const collector = new GarbageCollector(env.DB, env.BLOBS);
    const pass = (dryRun = false) => collector.run({ dryRun, graceMs: 86_400_000, batch: 2, now, auditRetentionDays: 30 });

    const dry = await pass(true);
    expect(dry.auditEventsDeleted).toBe(2);
    expect(await older()).toBe(45);

    // 20 batches of 2 per pass: 40 go, and the pass says there is more.
    const first = await pass();
    expect(first.auditEventsDeleted).toBe(40);
    expect(first.more).toBe(true);
    expect(await older()).toBe(5);
    const second = await pass();
    expect(second.auditEventsDeleted).toBe(5);
    expect(await older()).toBe(0);
    expect((await rows("actor = 'retention-test'")).map((row) => row.target)).toEqual(["kept0", "kept1", "kept2", "kept3", "kept4"]);
  });

  it("stops within the pass's subrequest budget", async () => {
    const records = new AuditRecords(env.DB);
    const now = Date.now();
    await env.DB.batch(Array.from({ length: 30 }, (_, i) => records.insert({ id: "retention-test", client: null }, { action: "login" }, undefined, now - 100 * 86_400_000 + i)));
    const report = await new GarbageCollector(env.DB, env.BLOBS).run({ dryRun: false, graceMs: 86_400_000, batch: 1, now, subrequests: 20, auditRetentionDays: 30 });
    expect(report.subrequests).toBeLessThanOrEqual(20);
    expect(report.auditEventsDeleted).toBeGreaterThan(0);
    expect(report.auditEventsDeleted).toBeLessThan(30);
    expect(report.more).toBe(true);
  });

  it("is validated at startup, naming the setting", () => {
    for (const value of ["-1", "1.5", "forever", "40000"]) {
      const bad = { ...env, AUDIT_RETENTION_DAYS: value } as Env;
      expect(() => configOf(bad)).toThrow(ConfigError);
      expect(() => configOf(bad)).toThrow(/AUDIT_RETENTION_DAYS/);
    }
    expect(configOf({ ...env } as Env).AUDIT_RETENTION_DAYS).toBe(90);
    expect(configOf({ ...env, AUDIT_RETENTION_DAYS: "0" } as Env).AUDIT_RETENTION_DAYS).toBe(0);
  });
});
