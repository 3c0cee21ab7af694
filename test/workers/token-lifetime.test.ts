import { env } from "cloudflare:test";
import { importPKCS8, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { basic, bearer, call, claimsOf, createToken, SERVICE } from "./token-auth";

// A bearer token from /token lives TOKEN_TTL_SECONDS (300 in the tests), never past the access token it came from;
// the verifier allows 5 s of clock skew, no more.
const TTL = 300;

async function issued(password: string): Promise<{ token: string; expires_in: number; exp: number; iat: number }> {
  const response = await call(`/token?service=${SERVICE}&scope=repository:team/app:pull`, { auth: basic(password) });
  expect(response.status).toBe(200);
  const body = (await response.json()) as { token: string; expires_in: number };
  const claims = claimsOf(body.token) as { exp: number; iat: number };
  return { ...body, exp: claims.exp, iat: claims.iat };
}

const accepted = async (token: string) => (await call("/v2/", { auth: bearer(token) })).status;

describe("bearer token lifetime", () => {
  it("ends no later than an access token that expires in a few seconds, and is refused once it has", async () => {
    const expiresAt = Date.now() + 3_000;
    const access = await createToken("expiring-soon", [{ repository: "team/*", actions: ["pull"] }], { expiresAt: new Date(expiresAt).toISOString() });
    const token = await issued(access.token);
    expect(token.exp).toBeLessThanOrEqual(expiresAt / 1000);
    expect(await accepted(token.token)).toBe(200);
    await new Promise((done) => setTimeout(done, expiresAt - Date.now() + 100));
    expect(await accepted(token.token)).toBe(401);
    expect((await call(`/token?service=${SERVICE}`, { auth: basic(access.token) })).status).toBe(401);
  });

  it("is cut to the access token's expiry, less the verifier's tolerance, when that comes before TOKEN_TTL_SECONDS", async () => {
    const expiresAt = Date.now() + 100_000;
    const access = await createToken("expiring-later", [{ repository: "team/*", actions: ["pull"] }], { expiresAt: new Date(expiresAt).toISOString() });
    const token = await issued(access.token);
    expect(token.exp).toBe(Math.floor(expiresAt / 1000) - 5);
    expect(token.expires_in).toBe(token.exp - token.iat);
    expect(token.expires_in).toBeLessThan(100);
  });

  it("lives TOKEN_TTL_SECONDS from an access token that expires after that, or never", async () => {
    const later = await createToken("expiring-in-a-day", [{ repository: "team/*", actions: ["pull"] }], { expiresInDays: 1 });
    const never = await createToken("never-expiring", [{ repository: "team/*", actions: ["pull"] }]);
    for (const password of [later.token, never.token, env.ADMIN_TOKEN!]) {
      const token = await issued(password);
      expect(token.exp - token.iat).toBe(TTL);
      expect(token.expires_in).toBe(TTL);
    }
  });
});

describe("the verifier's clock tolerance", () => {
  async function signedToExpire(exp: number) {
    return new SignJWT({ access: [] })
      .setProtectedHeader({ alg: "ES256" })
      .setIssuer(SERVICE)
      .setAudience(SERVICE)
      .setSubject("x")
      .setIssuedAt(exp - 60)
      .setExpirationTime(exp)
      .sign(await importPKCS8(env.TOKEN_SIGNING_KEY!, "ES256"));
  }

  it("accepts a token a moment past its exp, and refuses one more than 5 s past it", async () => {
    const now = Math.floor(Date.now() / 1000);
    expect(await accepted(await signedToExpire(now - 2))).toBe(200);
    expect(await accepted(await signedToExpire(now - 6))).toBe(401);
    expect(await accepted(await signedToExpire(now - 29))).toBe(401);
  });
});
