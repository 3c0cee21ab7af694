import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { decodeProtectedHeader, exportJWK, generateKeyPair, importPKCS8, SignJWT } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import worker from "../../src/index";
import { ORIGIN, pushBlob, pushImage, pushManifest, randomBytes, sha256, startUpload } from "./helpers";
import { ADMIN, basic, bearer, call, createToken, SERVICE, tokenEnv } from "./token-auth";

/** A bearer token from /token for the given scopes, authenticated with `password` (anonymous without). */
async function tokenFor(password: string | null, ...scopes: string[]): Promise<Response> {
  const query = new URLSearchParams({ service: SERVICE });
  for (const scope of scopes) query.append("scope", scope);
  return call(`/token?${query}`, password === null ? {} : { auth: basic(password) });
}

async function bearerFor(password: string | null, ...scopes: string[]): Promise<string> {
  const response = await tokenFor(password, ...scopes);
  expect(response.status).toBe(200);
  return bearer(((await response.json()) as { token: string }).token);
}

let image: Awaited<ReturnType<typeof pushImage>>;
let imageDigest: string;
const credentials: Record<string, string> = {};

beforeAll(async () => {
  // Content is seeded through the open registry (same storage).
  image = await pushImage("team/app");
  imageDigest = await pushManifest("team/app", "v1", image);
  await pushManifest("public/base", "latest", await pushImage("public/base"));
  await pushManifest("other/thing", "latest", await pushImage("other/thing"));

  credentials.pull = (await createToken("puller", [{ repository: "team/app", actions: ["pull"] }])).token;
  credentials.push = (await createToken("pusher", [{ repository: "team/*", actions: ["pull", "push"] }])).token;
  credentials.delete = (await createToken("deleter", [{ repository: "team/app", actions: ["pull", "push", "delete"] }])).token;
  credentials.other = (await createToken("other", [{ repository: "other/*", actions: ["pull", "push", "delete"] }])).token;
  const revoked = await createToken("revoked", [{ repository: "team/*", actions: ["pull", "push", "delete"] }]);
  expect((await call(`/admin/tokens/${revoked.id}`, { method: "DELETE", auth: bearer(ADMIN) })).status).toBe(204);
  credentials.revoked = revoked.token;
  credentials.expired = (await createToken("expired", [{ repository: "team/*", actions: ["pull", "push", "delete"] }], { expiresInDays: 1 / 86_400 })).token;
  await new Promise((done) => setTimeout(done, 1100));
});

describe("the token endpoint", () => {
  it("answers GET /v2/ without credentials with a Bearer challenge naming the realm and service", async () => {
    const response = await call("/v2/");
    expect(response.status).toBe(401);
    expect(response.headers.get("WWW-Authenticate")).toBe(`Bearer realm="${ORIGIN}/token",service="${SERVICE}"`);
    expect(((await response.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("UNAUTHORIZED");
    expect((await call("/v2/", { auth: await bearerFor(null) })).status).toBe(200);
  });

  it("challenges a request with the scope it needs", async () => {
    const response = await call("/v2/team/app/blobs/uploads/", { method: "POST" });
    expect(response.status).toBe(401);
    expect(response.headers.get("WWW-Authenticate")).toContain(`scope="repository:team/app:pull,push"`);
  });

  it("issues a short-lived ES256 token with a kid, granting only the held subset of what was asked", async () => {
    const response = await tokenFor(credentials.pull!, "repository:team/app:pull,push,delete", "repository:other/thing:pull");
    const body = (await response.json()) as { token: string; access_token: string; expires_in: number; issued_at: string };
    expect(body.access_token).toBe(body.token);
    expect(body.expires_in).toBe(300);
    expect(Date.parse(body.issued_at)).toBeGreaterThan(Date.now() - 60_000);
    const header = decodeProtectedHeader(body.token);
    expect(header.alg).toBe("ES256");
    expect(header.kid).toBeTruthy();
    const claims = JSON.parse(atob(body.token.split(".")[1]!.replaceAll("-", "+").replaceAll("_", "/"))) as Record<string, unknown>;
    expect(claims.access).toEqual([{ type: "repository", name: "team/app", actions: ["pull"] }]);
    expect(claims.aud).toBe(SERVICE);
    expect(claims.iss).toBe(SERVICE);
    expect((claims.exp as number) - (claims.iat as number)).toBe(300);
  });

  it("merges scopes that name the same repository twice", async () => {
    const token = await bearerFor(credentials.push!, "repository:team/merged:pull,push", "repository:team/merged:pull");
    const claims = JSON.parse(atob(token.split(".")[1]!.replaceAll("-", "+").replaceAll("_", "/")));
    expect(claims.access).toEqual([{ type: "repository", name: "team/merged", actions: ["pull", "push"] }]);
    expect((await call("/v2/team/merged/blobs/uploads/", { method: "POST", auth: token })).status).toBe(202);
  });

  it("adds up the grants of a token that lists a repository twice", async () => {
    const token = await new SignJWT({
      access: [
        { type: "repository", name: "team/twice", actions: ["pull", "push"] },
        { type: "repository", name: "team/twice", actions: ["pull"] },
      ],
    })
      .setProtectedHeader({ alg: "ES256" })
      .setIssuer(SERVICE)
      .setAudience(SERVICE)
      .setSubject("x")
      .setIssuedAt()
      .setExpirationTime("5m")
      .sign(await importPKCS8(env.TOKEN_SIGNING_KEY!, "ES256"));
    expect((await call("/v2/team/twice/blobs/uploads/", { method: "POST", auth: bearer(token) })).status).toBe(202);
  });

  it("gives anonymous callers pull on public repositories only", async () => {
    const response = await tokenFor(null, "repository:public/base:pull,push", "repository:team/app:pull");
    const claims = JSON.parse(atob(((await response.json()) as { token: string }).token.split(".")[1]!.replaceAll("-", "+").replaceAll("_", "/")));
    expect(claims.access).toEqual([{ type: "repository", name: "public/base", actions: ["pull"] }]);
  });

  it("refuses wrong, expired and revoked credentials, and tokens for another service", async () => {
    for (const password of ["wrong", credentials.revoked!, credentials.expired!, `${credentials.pull!.slice(0, -1)}x`]) {
      expect((await tokenFor(password, "repository:team/app:pull")).status).toBe(401);
    }
    expect((await call(`/token?service=elsewhere&scope=repository:team/app:pull`, { auth: basic(credentials.pull!) })).status).toBe(400);
  });

  it("supports the OAuth2 password grant", async () => {
    const response = await call("/token", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "password", username: "ci", password: credentials.push!, service: SERVICE, scope: "repository:team/app:push" }),
    });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { access_token: string }).access_token).toBeTruthy();
  });

  it("rate limits failed authentications per client with 429 and Retry-After", async () => {
    const client = { "CF-Connecting-IP": "203.0.113.7" };
    const statuses: number[] = [];
    for (let attempt = 0; attempt < 12; attempt++) {
      const response = await call("/token?scope=repository:team/app:pull", { auth: basic(`guess-${attempt}`), headers: client });
      statuses.push(response.status);
      if (response.status === 429) expect(response.headers.get("Retry-After")).toBe("60");
    }
    expect(statuses.slice(0, 10).every((status) => status === 401)).toBe(true);
    expect(statuses.slice(10)).toEqual([429, 429]);
    // Another client is not affected.
    expect((await call("/token?scope=repository:team/app:pull", { auth: basic("nope"), headers: { "CF-Connecting-IP": "203.0.113.8" } })).status).toBe(401);
  });
});

type Identity = "anonymous" | "pull" | "push" | "delete" | "other" | "expired" | "revoked";
const ALLOWED: Record<Identity, Set<string>> = {
  anonymous: new Set(),
  pull: new Set(["pull"]),
  push: new Set(["pull", "push"]),
  delete: new Set(["pull", "push", "delete"]),
  other: new Set(),
  expired: new Set(),
  revoked: new Set(),
};

interface Case {
  action: "pull" | "push" | "delete";
  name: string;
  run: (auth: string | undefined) => Promise<Response>;
  success: number[];
}

function cases(tag: string): Case[] {
  return [
    { action: "pull", name: "GET manifest", run: (auth) => call("/v2/team/app/manifests/v1", { auth }), success: [200] },
    { action: "pull", name: "HEAD manifest", run: (auth) => call(`/v2/team/app/manifests/${imageDigest}`, { method: "HEAD", auth }), success: [200] },
    { action: "pull", name: "GET blob", run: (auth) => call(`/v2/team/app/blobs/${image.config.digest}`, { auth }), success: [200] },
    { action: "pull", name: "GET tags", run: (auth) => call("/v2/team/app/tags/list", { auth }), success: [200] },
    { action: "pull", name: "GET referrers", run: (auth) => call(`/v2/team/app/referrers/${imageDigest}`, { auth }), success: [200] },
    { action: "push", name: "POST upload", run: (auth) => call("/v2/team/app/blobs/uploads/", { method: "POST", auth }), success: [202] },
    {
      action: "push",
      name: "monolithic blob",
      run: async (auth) => {
        const bytes = randomBytes(32);
        return call(`/v2/team/app/blobs/uploads/?digest=${await sha256(bytes)}`, { method: "POST", body: bytes, auth });
      },
      success: [201],
    },
    {
      action: "push",
      name: "PUT manifest",
      run: (auth) => call(`/v2/team/app/manifests/${tag}-pushed`, { method: "PUT", body: JSON.stringify(image), headers: { "Content-Type": image.mediaType }, auth }),
      success: [201],
    },
    {
      action: "push",
      name: "PATCH and GET an upload",
      run: async (auth) => {
        const location = await startUpload("team/app");
        const patched = await call(location, { method: "PATCH", body: randomBytes(10), auth });
        if (patched.status !== 202) return patched;
        return call(location, { auth });
      },
      success: [204],
    },
    { action: "delete", name: "DELETE tag", run: (auth) => call(`/v2/team/app/manifests/${tag}`, { method: "DELETE", auth }), success: [202] },
    {
      action: "delete",
      name: "DELETE blob",
      run: async (auth) => call(`/v2/team/app/blobs/${await pushBlob("team/app", `blob of ${tag}`)}`, { method: "DELETE", auth }),
      success: [202],
    },
  ];
}

describe("authorization matrix on team/app", () => {
  for (const identity of Object.keys(ALLOWED) as Identity[]) {
    it(`${identity}: every endpoint answers as its scopes say, and refused writes change nothing`, async () => {
      const tag = `disposable-${identity}`;
      await pushManifest("team/app", tag, image);
      const password = identity === "anonymous" ? null : credentials[identity]!;
      const tokenResponse = password === null ? null : await tokenFor(password, "repository:team/app:pull,push,delete");
      if (identity === "expired" || identity === "revoked") expect(tokenResponse!.status).toBe(401);
      const token =
        tokenResponse?.status === 200 ? bearer(((await tokenResponse.json()) as { token: string }).token) : password === null ? await bearerFor(null, "repository:team/app:pull,push,delete") : undefined;

      for (const testCase of cases(tag)) {
        const allowed = ALLOWED[identity].has(testCase.action);
        for (const auth of [token, password === null ? undefined : basic(password)]) {
          const response = await testCase.run(auth);
          const label = `${identity} ${testCase.name} with ${auth?.split(" ")[0] ?? "nothing"}`;
          if (allowed) {
            expect(testCase.success, label).toContain(response.status);
            if (testCase.name === "DELETE tag") await pushManifest("team/app", tag, image);
          } else {
            expect([401, 403], label).toContain(response.status);
            if (response.status === 401) expect(response.headers.get("WWW-Authenticate"), label).toMatch(/^(Bearer|Basic) /);
          }
        }
      }
      // Refused writes left everything as it was.
      const tags = ((await (await call("/v2/team/app/tags/list", { auth: basic(ADMIN) })).json()) as { tags: string[] }).tags;
      expect(tags).toContain(tag);
      expect(tags.includes(`${tag}-pushed`)).toBe(ALLOWED[identity].has("push"));
    });
  }
});

describe("token attacks", () => {
  async function signed(claims: Record<string, unknown>, options: { key?: CryptoKey; kid?: string; alg?: string } = {}) {
    const key = options.key ?? (await importPKCS8(env.TOKEN_SIGNING_KEY!, "ES256"));
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ access: [{ type: "repository", name: "team/app", actions: ["pull", "push", "delete"] }], ...claims })
      .setProtectedHeader({ alg: options.alg ?? "ES256", kid: options.kid ?? "forged" })
      .setIssuer((claims.iss as string) ?? SERVICE)
      .setAudience((claims.aud as string) ?? SERVICE)
      .setSubject("attacker")
      .setIssuedAt((claims.iat as number) ?? now)
      .setExpirationTime((claims.exp as number) ?? now + 300)
      .sign(key);
  }

  const pullManifest = (token: string) => call("/v2/team/app/manifests/v1", { auth: bearer(token) });

  it("accepts a well-formed token signed with the registry's key (the control)", async () => {
    expect((await pullManifest(await signed({}))).status).toBe(200);
  });

  it("refuses alg none", async () => {
    const encode = (value: object) => btoa(JSON.stringify(value)).replaceAll("=", "").replaceAll("+", "-").replaceAll("/", "_");
    const now = Math.floor(Date.now() / 1000);
    const token = `${encode({ alg: "none", typ: "JWT" })}.${encode({ iss: SERVICE, aud: SERVICE, sub: "x", iat: now, exp: now + 300, access: [{ type: "repository", name: "team/app", actions: ["pull"] }] })}.`;
    expect((await pullManifest(token)).status).toBe(401);
  });

  it("refuses HS256 signed with the public key", async () => {
    const { d: _d, ...publicJwk } = await exportJWK(await importPKCS8(env.TOKEN_SIGNING_KEY!, "ES256", { extractable: true }));
    const secret = new TextEncoder().encode(JSON.stringify(publicJwk));
    const token = await new SignJWT({ access: [{ type: "repository", name: "team/app", actions: ["pull"] }] })
      .setProtectedHeader({ alg: "HS256" })
      .setIssuer(SERVICE)
      .setAudience(SERVICE)
      .setSubject("x")
      .setIssuedAt()
      .setExpirationTime("5m")
      .sign(secret);
    expect((await pullManifest(token)).status).toBe(401);
  });

  it("refuses a token from another key, another issuer or another audience", async () => {
    const { privateKey } = await generateKeyPair("ES256");
    expect((await pullManifest(await signed({}, { key: privateKey as CryptoKey }))).status).toBe(401);
    expect((await pullManifest(await signed({ iss: "other-registry" }))).status).toBe(401);
    expect((await pullManifest(await signed({ aud: "other-registry" }))).status).toBe(401);
  });

  it("refuses expired and not-yet-valid tokens", async () => {
    const now = Math.floor(Date.now() / 1000);
    expect((await pullManifest(await signed({ iat: now - 3600, exp: now - 600 }))).status).toBe(401);
    const future = await new SignJWT({ access: [{ type: "repository", name: "team/app", actions: ["pull"] }] })
      .setProtectedHeader({ alg: "ES256" })
      .setIssuer(SERVICE)
      .setAudience(SERVICE)
      .setSubject("x")
      .setIssuedAt()
      .setNotBefore(now + 600)
      .setExpirationTime(now + 900)
      .sign(await importPKCS8(env.TOKEN_SIGNING_KEY!, "ES256"));
    expect((await pullManifest(future)).status).toBe(401);
  });

  it("refuses a token whose access claim was edited", async () => {
    const token = (await bearerFor(credentials.pull!, "repository:team/app:pull")).slice("Bearer ".length);
    const [header, payload, signature] = token.split(".");
    const claims = JSON.parse(atob(payload!.replaceAll("-", "+").replaceAll("_", "/")));
    claims.access = [{ type: "repository", name: "team/app", actions: ["pull", "push", "delete"] }];
    const edited = btoa(JSON.stringify(claims)).replaceAll("=", "").replaceAll("+", "-").replaceAll("/", "_");
    expect((await call("/v2/team/app/tags/list", { auth: bearer(`${header}.${payload}.${signature}`) })).status).toBe(200);
    expect((await call("/v2/team/app/tags/list", { auth: bearer(`${header}.${edited}.${signature}`) })).status).toBe(401);
  });

  it("does not let a scope for team/app reach team/app-other or team/app/../other", async () => {
    await pushManifest("team/app-other", "v1", await pushImage("team/app-other"));
    const token = await bearerFor(credentials.delete!, "repository:team/app:pull,push,delete");
    expect((await call("/v2/team/app-other/manifests/v1", { auth: token })).status).toBe(401);
    expect((await call("/v2/team/app/../app-other/manifests/v1", { auth: token })).status).toBe(401);
    expect((await call("/v2/team/app/%2e%2e/app-other/manifests/v1", { auth: token })).status).toBe(401);
    expect((await call("/v2/team/app/manifests/v1", { auth: token })).status).toBe(200);
  });
});

describe("isolation between private and public repositories", () => {
  it("does not serve, mount or reveal a private blob through a public repository", async () => {
    const secret = await pushBlob("private/a", "private layer bytes");
    const absent = await sha256("never pushed anywhere");
    const writer = await createToken("public-writer", [{ repository: "public/b", actions: ["pull", "push"] }]);
    const token = await bearerFor(writer.token, "repository:public/b:pull,push", "repository:private/a:pull");

    const viaPublic = await call(`/v2/public/b/blobs/${secret}`, { auth: token });
    const neverPushed = await call(`/v2/public/b/blobs/${absent}`, { auth: token });
    expect(viaPublic.status).toBe(404);
    expect(neverPushed.status).toBe(404);
    expect(await viaPublic.json()).toMatchObject({ errors: [{ code: "BLOB_UNKNOWN" }] });

    const mountSecret = await call(`/v2/public/b/blobs/uploads/?mount=${secret}&from=private/a`, { method: "POST", auth: token });
    const mountAbsent = await call(`/v2/public/b/blobs/uploads/?mount=${absent}&from=private/a`, { method: "POST", auth: token });
    expect(mountSecret.status).toBe(202);
    expect(mountAbsent.status).toBe(202);
    expect([...mountSecret.headers.keys()].sort()).toEqual([...mountAbsent.headers.keys()].sort());
    expect((await call(`/v2/public/b/blobs/${secret}`, { auth: token })).status).toBe(404);
    expect((await call(`/v2/private/a/blobs/${secret}`)).status).toBe(401);
  });

  it("mounts when the caller may pull the source and push the target", async () => {
    const layer = await pushBlob("team/source", "shared between team repos");
    const token = await bearerFor(credentials.push!, "repository:team/target:pull,push", "repository:team/source:pull");
    const response = await call(`/v2/team/target/blobs/uploads/?mount=${layer}&from=team/source`, { method: "POST", auth: token });
    expect(response.status).toBe(201);
  });
});

describe("catalog", () => {
  async function catalogFor(auth: string | undefined) {
    const response = await call("/v2/_catalog?n=1000", { auth });
    expect(response.status).toBe(200);
    return ((await response.json()) as { repositories: string[] }).repositories;
  }

  it("challenges a caller without credentials, so that lazy clients authenticate", async () => {
    const response = await call("/v2/_catalog");
    expect(response.status).toBe(401);
    expect(response.headers.get("WWW-Authenticate")).toBe(`Bearer realm="${ORIGIN}/token",service="${SERVICE}",scope="registry:catalog:*"`);
  });

  it("lists only the repositories the caller may pull", async () => {
    // An anonymous token (what a client gets from the challenge without credentials) lists what is public.
    const anonymous = await catalogFor(await bearerFor(null, "registry:catalog:*"));
    expect(anonymous.length).toBeGreaterThan(0);
    expect(anonymous.every((name) => name.startsWith("public/"))).toBe(true);
    const puller = await catalogFor(await bearerFor(credentials.pull!, "registry:catalog:*"));
    expect(puller).toContain("team/app");
    expect(puller.every((name) => name === "team/app" || name.startsWith("public/"))).toBe(true);
    const viaBasic = await catalogFor(basic(credentials.other!));
    expect(viaBasic).toContain("other/thing");
    expect(viaBasic).not.toContain("team/app");
    expect(await catalogFor(basic(ADMIN))).toEqual(expect.arrayContaining(["team/app", "other/thing", "public/base"]));
  });
});

describe("the admin API", () => {
  it("requires the admin token and never shows secrets", async () => {
    expect((await call("/admin/tokens")).status).toBe(401);
    expect((await call("/admin/tokens", { auth: bearer(credentials.delete!) })).status).toBe(401);
    const response = await call("/admin/tokens", { auth: bearer(ADMIN) });
    const text = await response.text();
    expect(text).toContain("puller");
    // The secret follows "ocr_<16-character id>_" (and may itself contain "_").
    expect(text).not.toContain(credentials.pull!.slice("ocr_".length + 17));
    expect(text).not.toMatch(/secret/i);
  });

  it("refuses malformed token requests", async () => {
    const response = await call("/admin/tokens", {
      method: "POST",
      auth: bearer(ADMIN),
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name: "bad", scopes: [{ repository: "Team/*", actions: ["fly"] }] }),
    });
    expect(response.status).toBe(400);
  });
});

describe("configuration", () => {
  it("answers with an error naming TOKEN_SIGNING_KEY when token auth has no key", async () => {
    const ctx = createExecutionContext();
    const response = await worker.fetch(new Request(`${ORIGIN}/v2/`), { ...tokenEnv, TOKEN_SIGNING_KEY: undefined }, ctx);
    expect(response.status).toBe(500);
    expect(await response.text()).toContain("TOKEN_SIGNING_KEY");
  });
});
