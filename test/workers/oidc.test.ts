import { env } from "cloudflare:test";
import { SignJWT } from "jose";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { IssuerKeys } from "../../src/auth/issuer-keys";
import { verifyOidcToken } from "../../src/auth/oidc";
import { parseConfig, type Env } from "../../src/config";
import { base64url, FakeIssuer, useFakeIssuers } from "./fake-issuer";
import { expectError, sha256 } from "./helpers";
import { basic, bearer, call, claimsOf, createToken, randomAddress, SERVICE, tokenEnv } from "./token-auth";

// OIDC workload identity federation: a CI job's OIDC token, sent as the password of user "oidc", exchanged at /token
// for a registry token with what the trust policies grant, verified against the issuer's keys found by discovery.

const github = new FakeIssuer("https://actions.issuer.test");
const gitlab = new FakeIssuer("https://gitlab.issuer.test");
// One issuer per key-cache test: the Worker keeps each issuer's keys per isolate, and these tests count fetches.
const rotating = new FakeIssuer("https://rotating.issuer.test");
const guessed = new FakeIssuer("https://guessed.issuer.test");
const flaky = new FakeIssuer("https://flaky.issuer.test");
const impostor = new FakeIssuer("https://impostor.issuer.test");
const bloated = new FakeIssuer("https://bloated.issuer.test");
useFakeIssuers(github, gitlab, rotating, guessed, flaky, impostor, bloated);

const AUDIENCE = "registry.test";

/** What a GitHub workflow of `repository` on `ref` gets (the claims a policy can name). */
const githubClaims = (repository: string, ref = "refs/heads/main", extra: object = {}) => ({
  aud: AUDIENCE,
  sub: `repo:${repository}:ref:${ref}`,
  repository,
  repository_owner: repository.split("/")[0],
  ref,
  ref_type: "branch",
  job_workflow_ref: `${repository}/.github/workflows/release.yml@${ref}`,
  ...extra,
});

const policies = [
  {
    name: "app releases",
    issuer: github.origin,
    audience: AUDIENCE,
    claims: { repository: "my-org/app", ref: "refs/heads/main" },
    scopes: [{ repository: "my-org/app", actions: ["pull", "push"] }],
  },
  {
    name: "other releases",
    issuer: github.origin,
    audience: AUDIENCE,
    claims: { repository: "my-org/other", ref: "refs/heads/main", environment: "production" },
    scopes: [{ repository: "my-org/other", actions: ["pull", "push"] }],
  },
  {
    issuer: gitlab.origin,
    audience: AUDIENCE,
    claims: { project_path: "my-group/*", ref_type: "branch", ref_protected: "true", ref: ["main", "release/*"] },
    scopes: [{ repository: "my-group/*", actions: ["pull", "push"] }],
  },
  ...[rotating, guessed, flaky, impostor, bloated].map((issuer) => ({
    issuer: issuer.origin,
    audience: AUDIENCE,
    claims: { repository: "my-org/app" },
    scopes: [{ repository: "my-org/app", actions: ["pull"] }],
  })),
];

const oidcEnv = { ...tokenEnv, OIDC_TRUST_POLICIES: JSON.stringify(policies) };

/** GET /token for the scopes with the OIDC token as the Basic password of user "oidc". */
function exchange(token: string, scopes: string[], init: { client?: string; user?: string } = {}) {
  const query = new URLSearchParams({ service: SERVICE });
  for (const scope of scopes) query.append("scope", scope);
  return call(`/token?${query}`, { auth: basic(token, init.user ?? "oidc"), client: init.client, env: oidcEnv });
}

async function grantedAccess(token: string, scopes: string[]) {
  const response = await exchange(token, scopes);
  expect(response.status, await response.clone().text()).toBe(200);
  const body = (await response.json()) as { token: string; expires_in: number };
  return { ...body, claims: claimsOf(body.token) };
}

beforeAll(async () => {
  for (const issuer of [github, gitlab, rotating, guessed, flaky, impostor, bloated]) await issuer.newKey();
});

afterEach(() => {
  vi.useRealTimers();
  for (const issuer of [github, gitlab, rotating, guessed, flaky, impostor, bloated]) issuer.fault = null;
});

describe("exchanging a CI job's OIDC token at /token", () => {
  it("grants a token whose claims match a policy the requested scopes that policy allows, and no more", async () => {
    const jwt = await github.sign(githubClaims("my-org/app"));
    const { token, claims, expires_in } = await grantedAccess(jwt, ["repository:my-org/app:pull,push,delete", "repository:my-org/other:pull"]);
    expect(claims.access).toEqual([{ type: "repository", name: "my-org/app", actions: ["pull", "push"] }]);
    expect(claims.sub).toBe("oidc:actions.issuer.test:repo:my-org/app:ref:refs/heads/main");
    // Never longer than the OIDC token itself is valid (five minutes here; TOKEN_TTL_SECONDS is 300 too).
    expect(expires_in).toBeLessThanOrEqual(300);
    expect(claims.exp as number).toBeLessThanOrEqual(claimsOf(jwt).exp as number);

    const blob = new TextEncoder().encode("pushed from CI");
    const pushed = await call(`/v2/my-org/app/blobs/uploads/?digest=${await sha256(blob)}`, { method: "POST", body: blob, auth: bearer(token), env: oidcEnv });
    expect(pushed.status).toBe(201);
    const elsewhere = await call(`/v2/my-org/other/blobs/uploads/?digest=${await sha256(blob)}`, { method: "POST", body: blob, auth: bearer(token), env: oidcEnv });
    expect(elsewhere.status).toBe(401);
  });

  it("takes the token as the password of user oidc in the password grant (POST /token) and as Basic on /v2/", async () => {
    const jwt = await github.sign(githubClaims("my-org/app"));
    const form = new URLSearchParams({ grant_type: "password", username: "oidc", password: jwt, service: SERVICE, scope: "repository:my-org/app:push" });
    const response = await call("/token", { method: "POST", body: form, env: oidcEnv });
    expect(response.status).toBe(200);
    expect(claimsOf(((await response.json()) as { token: string }).token).access).toEqual([{ type: "repository", name: "my-org/app", actions: ["push"] }]);
    expect((await call("/v2/", { auth: basic(jwt, "oidc"), env: oidcEnv })).status).toBe(200);
    expect((await call("/v2/my-org/app/tags/list", { auth: basic(jwt, "oidc"), env: oidcEnv })).status).not.toBe(403);
    expect((await call("/v2/my-org/other/tags/list", { auth: basic(jwt, "oidc"), env: oidcEnv })).status).toBe(403);
  });

  it("matches GitLab's claims against lists and wildcard patterns", async () => {
    const claims = { aud: AUDIENCE, sub: "project_path:my-group/api:ref_type:branch:ref:release/2", project_path: "my-group/api", ref_type: "branch", ref_protected: "true" };
    const release = await gitlab.sign({ ...claims, ref: "release/2" });
    expect((await grantedAccess(release, ["repository:my-group/api:push"])).claims.access).toEqual([{ type: "repository", name: "my-group/api", actions: ["push"] }]);
    for (const refused of [{ ...claims, ref: "feature" }, { ...claims, ref: "main", ref_protected: "false" }, { ...claims, ref: "main", ref_type: "tag" }]) {
      await expectError(await exchange(await gitlab.sign(refused), ["repository:my-group/api:push"]), 401, "UNAUTHORIZED");
    }
  });

  it("reserves the user name oidc: an access token sent with it is no OIDC token, and an OIDC token with another user is no access token", async () => {
    const { token } = await createToken("oidc-named", [{ repository: "my-org/*", actions: ["pull"] }]);
    await expectError(await exchange(token, ["repository:my-org/app:pull"]), 401, "UNAUTHORIZED");
    await expectError(await exchange(await github.sign(githubClaims("my-org/app")), ["repository:my-org/app:pull"], { user: "ci" }), 401, "UNAUTHORIZED");
  });
});

describe("what an OIDC token must be", () => {
  /** Refused at /token, and (asked directly) for the reason the test means. */
  const refused = async (token: string, reason: RegExp) => {
    await expectError(await exchange(token, ["repository:my-org/app:push"]), 401, "UNAUTHORIZED");
    const verdict = await verifyOidcToken(parseConfig(oidcEnv as unknown as Env), token);
    expect("refused" in verdict && verdict.refused).toMatch(reason);
  };

  it("refuses a token for another audience, or with none", async () => {
    await refused(await github.sign(githubClaims("my-org/app", "refs/heads/main", { aud: "someone-else.example" })), /"aud" claim/);
    await refused(await github.sign(githubClaims("my-org/app", "refs/heads/main", { aud: undefined })), /"aud" claim/);
  });

  it("refuses a token from an issuer no policy names, and one claiming a trusted issuer but signed by another's key", async () => {
    const stranger = new FakeIssuer("https://stranger.issuer.test");
    const key = await stranger.newKey();
    await refused(await stranger.sign(githubClaims("my-org/app")), /no trust policy names its issuer/);
    // Same kid as the trusted key, so only the signature tells them apart.
    const forged = await new SignJWT({ ...githubClaims("my-org/app"), iss: github.origin, exp: Math.floor(Date.now() / 1000) + 300 })
      .setProtectedHeader({ alg: "RS256", kid: github.published[0]!.kid })
      .sign(key.privateKey);
    await refused(forged, /signature verification failed/);
  });

  it("refuses an expired token, one not yet valid, and one without exp", async () => {
    const now = Math.floor(Date.now() / 1000);
    await refused(await github.sign(githubClaims("my-org/app", "refs/heads/main", { iat: now - 900, nbf: now - 900, exp: now - 120 })), /"exp" claim timestamp check failed/);
    await refused(await github.sign(githubClaims("my-org/app", "refs/heads/main", { nbf: now + 600, exp: now + 900 })), /"nbf" claim timestamp check failed/);
    await refused(await github.sign(githubClaims("my-org/app", "refs/heads/main", { exp: undefined })), /missing required "exp" claim/);
  });

  it("refuses an unsigned token (alg none) and tokens signed with a shared secret (HS256), guessed or the issuer's public key", async () => {
    const claims = { ...githubClaims("my-org/app"), iss: github.origin, exp: Math.floor(Date.now() / 1000) + 300 };
    await refused(`${base64url({ alg: "none", typ: "JWT" })}.${base64url(claims)}.`, /"alg" \(Algorithm\) Header Parameter value not allowed/);
    await refused(`${base64url({ alg: "none", kid: github.published[0]!.kid })}.${base64url(claims)}.${base64url("x")}`, /"alg" \(Algorithm\) Header Parameter value not allowed/);
    const guess = await new SignJWT(claims).setProtectedHeader({ alg: "HS256", kid: github.published[0]!.kid }).sign(new TextEncoder().encode("secret"));
    await refused(guess, /"alg" \(Algorithm\) Header Parameter value not allowed/);
    // The classic confusion: the issuer's public key (which anyone can fetch) used as an HMAC secret.
    const publicKey = new TextEncoder().encode(JSON.stringify(github.published[0]!.publicJwk));
    await refused(await new SignJWT(claims).setProtectedHeader({ alg: "HS256", kid: github.published[0]!.kid }).sign(publicKey), /"alg" \(Algorithm\) Header Parameter value not allowed/);
  });

  it("refuses a token whose algorithm the policy does not accept, signed by a key the issuer publishes", async () => {
    const ecKey = await github.newKey("ES384");
    await refused(await github.sign(githubClaims("my-org/app"), { key: ecKey }), /"alg" \(Algorithm\) Header Parameter value not allowed/);
    github.published = github.published.filter((key) => key !== ecKey);
  });

  it("refuses what is not a JWT at all, and a password longer than any token", async () => {
    await refused("not-a-jwt", /not a JWT/);
    await refused(`${base64url({ alg: "RS256" })}.${base64url("x".repeat(20_000))}.sig`, /longer than 16384 characters/);
  });
});

describe("claims that match another repository's policy", () => {
  it("grant nothing of that repository", async () => {
    // my-org/app's workflow asks for my-org/other: only the app policy trusts it, and it grants nothing there.
    const app = await github.sign(githubClaims("my-org/app"));
    expect((await grantedAccess(app, ["repository:my-org/other:pull,push"])).claims.access).toEqual([]);
    // my-org/other's policy wants its production environment: the same repository without it is trusted by none.
    await expectError(await exchange(await github.sign(githubClaims("my-org/other")), ["repository:my-org/other:push"]), 401, "UNAUTHORIZED");
    const production = await github.sign(githubClaims("my-org/other", "refs/heads/main", { environment: "production" }));
    expect((await grantedAccess(production, ["repository:my-org/other:push", "repository:my-org/app:push"])).claims.access).toEqual([
      { type: "repository", name: "my-org/other", actions: ["push"] },
    ]);
  });

  it("do not match by prefix, by case, or through a claim of another type", async () => {
    for (const claims of [
      githubClaims("my-org/app-fork"),
      githubClaims("My-Org/app"),
      githubClaims("my-org/app", "refs/heads/main-hotfix"),
      githubClaims("my-org/app", "refs/heads/feature"),
      { ...githubClaims("my-org/app"), repository: ["my-org/app"] },
    ]) {
      await expectError(await exchange(await github.sign(claims), ["repository:my-org/app:push"]), 401, "UNAUTHORIZED");
    }
  });
});

describe("the issuer's keys", () => {
  it("are fetched once through discovery and kept", async () => {
    const before = rotating.calls.length;
    for (let i = 0; i < 3; i++) await grantedAccess(await rotating.sign(githubClaims("my-org/app")), ["repository:my-org/app:pull"]);
    expect(rotating.calls.slice(before)).toEqual(["GET /.well-known/openid-configuration", "GET /keys"]);
  });

  it("are fetched again once when the issuer rotates to a key with a new kid, and the old key goes with the set", async () => {
    await grantedAccess(await rotating.sign(githubClaims("my-org/app")), ["repository:my-org/app:pull"]);
    const old = rotating.published[0]!;
    const fetched = rotating.keySetFetches();
    // Past the refresh cooldown since the first fetch (a minute), as a real rotation would be.
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + 61_000 });
    const fresh = await rotating.newKey("RS256", false);
    rotating.published = [fresh];
    for (let i = 0; i < 3; i++) await grantedAccess(await rotating.sign(githubClaims("my-org/app"), { key: fresh }), ["repository:my-org/app:pull"]);
    expect(rotating.keySetFetches()).toBe(fetched + 1);
    // The retired key is no longer in the set the Worker holds.
    await expectError(await exchange(await rotating.sign(githubClaims("my-org/app"), { key: old }), ["repository:my-org/app:pull"]), 401, "UNAUTHORIZED");
    expect(rotating.keySetFetches()).toBe(fetched + 1);
  });

  it("are fetched again at most once a minute for tokens with unknown kids", async () => {
    await grantedAccess(await guessed.sign(githubClaims("my-org/app")), ["repository:my-org/app:pull"]);
    const start = Date.now();
    vi.useFakeTimers({ toFake: ["Date"], now: start + 61_000 });
    const fetched = guessed.keySetFetches();
    const unknownKid = () => guessed.sign(githubClaims("my-org/app"), { kid: crypto.randomUUID() });
    const attempts = await Promise.all(Array.from({ length: 5 }, async () => exchange(await unknownKid(), ["repository:my-org/app:pull"])));
    expect(attempts.map((response) => response.status)).toEqual([401, 401, 401, 401, 401]);
    for (let i = 0; i < 5; i++) await expectError(await exchange(await unknownKid(), ["repository:my-org/app:pull"]), 401, "UNAUTHORIZED");
    expect(guessed.keySetFetches()).toBe(fetched + 1);
    // A minute later, one more.
    vi.setSystemTime(start + 122_000);
    for (let i = 0; i < 3; i++) await expectError(await exchange(await unknownKid(), ["repository:my-org/app:pull"]), 401, "UNAUTHORIZED");
    expect(guessed.keySetFetches()).toBe(fetched + 2);
    // Known keys go on working meanwhile.
    await grantedAccess(await guessed.sign(githubClaims("my-org/app")), ["repository:my-org/app:pull"]);
  });

  it("are kept past their ten minutes while the issuer is down, at most an hour, and the issuer is asked at most once a minute", async () => {
    const start = Date.now();
    await grantedAccess(await flaky.sign(githubClaims("my-org/app")), ["repository:my-org/app:pull"]);
    flaky.fault = "down";
    vi.useFakeTimers({ toFake: ["Date"], now: start + 11 * 60_000 });
    const before = flaky.calls.length;
    for (let i = 0; i < 3; i++) await grantedAccess(await flaky.sign(githubClaims("my-org/app")), ["repository:my-org/app:pull"]);
    expect(flaky.calls.length).toBe(before + 1);
    vi.setSystemTime(start + 61 * 60_000);
    const gone = await exchange(await flaky.sign(githubClaims("my-org/app")), ["repository:my-org/app:pull"]);
    const body = await expectError(gone, 502, "UPSTREAM_UNAVAILABLE");
    expect(body.errors[0]!.message).toContain(flaky.origin);
    expect(gone.headers.get("Retry-After")).toBe("60");
    // Back up: the next fetch, a minute after the last attempt, finds the keys again.
    flaky.fault = null;
    vi.setSystemTime(start + 62 * 60_000);
    await grantedAccess(await flaky.sign(githubClaims("my-org/app")), ["repository:my-org/app:pull"]);
  });

  it("are refused when the discovery document names another issuer, or the key set is larger than any real one (502)", async () => {
    impostor.fault = "other-issuer";
    await expectError(await exchange(await impostor.sign(githubClaims("my-org/app")), ["repository:my-org/app:pull"]), 502, "UPSTREAM_UNAVAILABLE");
    expect(impostor.keySetFetches()).toBe(0);
    bloated.fault = "huge";
    await expectError(await exchange(await bloated.sign(githubClaims("my-org/app")), ["repository:my-org/app:pull"]), 502, "UPSTREAM_UNAVAILABLE");
  });
});

describe("fetching the issuer's keys", () => {
  it("gives up on a key set whose body stalls once the timeout passes", async () => {
    const stalling = new FakeIssuer(flaky.origin);
    const keys = new IssuerKeys({ timeoutMs: 200, fetcher: async (input, init) => stalling.app.fetch(new Request(input, init)) });
    await stalling.newKey();
    stalling.fault = "stall";
    const started = Date.now();
    const token = await stalling.sign(githubClaims("my-org/app"));
    await expect(verifyOidcToken(parseConfig(oidcEnv as unknown as Env), token, keys)).rejects.toThrow(/took longer than 200 ms/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("gives up on an issuer whose answer never comes once the timeout passes", async () => {
    const silent = new FakeIssuer(flaky.origin);
    const keys = new IssuerKeys({ timeoutMs: 200, fetcher: () => new Promise<Response>(() => {}) });
    await silent.newKey();
    await expect(verifyOidcToken(parseConfig(oidcEnv as unknown as Env), await silent.sign(githubClaims("my-org/app")), keys)).rejects.toThrow(/took longer than 200 ms/);
  });

  it("stops waiting for a fetch another request started and never finished (that request was cancelled), and fetches anew", async () => {
    const issuer = new FakeIssuer(flaky.origin);
    await issuer.newKey();
    let clock = Date.now();
    let cancelled = true;
    // While `cancelled`, fetches never settle, as those of a request whose client went away (its timers stop too).
    const keys = new IssuerKeys({
      timeoutMs: 60_000,
      now: () => clock,
      fetcher: (input, init) => (cancelled ? new Promise<Response>(() => {}) : Promise.resolve(issuer.app.fetch(new Request(input, init)))),
    });
    const config = parseConfig(oidcEnv as unknown as Env);
    const token = await issuer.sign(githubClaims("my-org/app"));
    void verifyOidcToken(config, token, keys);
    cancelled = false;
    clock += 121_000;
    expect(await verifyOidcToken(config, token, keys)).toHaveProperty("credential");
  });

  it("follows no redirect", async () => {
    const moved = new FakeIssuer(flaky.origin);
    moved.fault = "redirect";
    const keys = new IssuerKeys({ fetcher: async (input, init) => moved.app.fetch(new Request(input, init)) });
    await moved.newKey();
    const token = await moved.sign(githubClaims("my-org/app"));
    await expect(verifyOidcToken(parseConfig(oidcEnv as unknown as Env), token, keys)).rejects.toThrow(/answered 302/);
  });
});

describe("failed OIDC logins", () => {
  it("count against the failed-login limit like any other secret", async () => {
    const client = randomAddress();
    for (let i = 0; i < 10; i++) {
      const wrong = await github.sign(githubClaims("my-org/app", "refs/heads/main", { aud: `guess-${i}` }));
      await expectError(await exchange(wrong, ["repository:my-org/app:pull"], { client }), 401, "UNAUTHORIZED");
    }
    const valid = await github.sign(githubClaims("my-org/app"));
    const blocked = await exchange(valid, ["repository:my-org/app:pull"], { client });
    await expectError(blocked, 429, "TOOMANYREQUESTS");
    expect(blocked.headers.get("Retry-After")).not.toBeNull();
    expect((await exchange(valid, ["repository:my-org/app:pull"], { client: randomAddress() })).status).toBe(200);
  });
});

describe("OIDC_TRUST_POLICIES", () => {
  const parse = (settings: Record<string, string>) => () => parseConfig({ ...env, AUTH_MODE: "open", ...settings } as unknown as Env);
  const policy = (extra: object = {}) => JSON.stringify([{ ...policies[0], ...extra }]);

  it("is checked at startup, naming the setting", () => {
    expect(parse({ OIDC_TRUST_POLICIES: "[{" })).toThrow(/OIDC_TRUST_POLICIES: not JSON/);
    expect(parse({ OIDC_TRUST_POLICIES: policy({ claims: {} }) })).toThrow(/OIDC_TRUST_POLICIES\.0\.claims: name at least one claim/);
    expect(parse({ OIDC_TRUST_POLICIES: policy({ claims: { repository: "*" } }) })).toThrow(/OIDC_TRUST_POLICIES\.0\.claims: at least one claim pattern/);
    expect(parse({ OIDC_TRUST_POLICIES: policy({ scopes: [] }) })).toThrow(/OIDC_TRUST_POLICIES\.0\.scopes/);
    expect(parse({ OIDC_TRUST_POLICIES: policy({ algorithms: ["HS256"] }) })).toThrow(/OIDC_TRUST_POLICIES\.0\.algorithms/);
    expect(parse({ OIDC_TRUST_POLICIES: policy() })().OIDC_TRUST_POLICIES[0]!.algorithms).toEqual(["RS256", "ES256"]);
  });

  it("takes https issuers only, unless OIDC_ALLOW_HTTP_ISSUERS allows a loopback one", () => {
    expect(parse({ OIDC_TRUST_POLICIES: policy({ issuer: "http://127.0.0.1:9999" }) })).toThrow(/OIDC_TRUST_POLICIES\.0\.issuer: must be https/);
    expect(parse({ OIDC_TRUST_POLICIES: policy({ issuer: "http://127.0.0.1:9999" }), OIDC_ALLOW_HTTP_ISSUERS: "true" })().OIDC_TRUST_POLICIES).toHaveLength(1);
    expect(parse({ OIDC_TRUST_POLICIES: policy({ issuer: "http://ci.example.com" }), OIDC_ALLOW_HTTP_ISSUERS: "true" })).toThrow(/issuer: must be https, or http on a loopback host/);
  });
});
