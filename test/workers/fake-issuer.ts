import { Hono } from "hono";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from "jose";
import { afterAll, beforeAll, vi } from "vitest";

// A fake OIDC issuer (a CI provider), reached through the Worker's outbound fetch: discovery, a key set whose keys can
// rotate, request counting and faults. Tests sign the tokens a CI job would get with its keys.

export interface IssuerKey {
  kid: string;
  alg: "RS256" | "ES256" | "ES384";
  privateKey: CryptoKey;
  publicJwk: JWK;
}

export type IssuerFault =
  | "down" // the connection fails
  | "stall" // the key set's body never ends
  | "huge" // the key set is larger than any real one
  | "other-issuer" // the discovery document names someone else
  | "redirect"; // discovery answers with a redirect elsewhere

export class FakeIssuer {
  /** The keys the key set publishes now. */
  published: IssuerKey[] = [];
  /** "GET /.well-known/openid-configuration", "GET /keys", … */
  calls: string[] = [];
  fault: IssuerFault | null = null;
  readonly app = new Hono();

  constructor(readonly origin: string) {
    this.app.get("/.well-known/openid-configuration", (c) =>
      this.fault === "redirect" ? c.redirect("https://elsewhere.test/.well-known/openid-configuration") : c.json({ issuer: this.fault === "other-issuer" ? "https://attacker.test" : this.origin, jwks_uri: `${this.origin}/keys`, id_token_signing_alg_values_supported: ["RS256"] }),
    );
    this.app.get("/keys", () => {
      if (this.fault === "stall") return new Response(new ReadableStream({ start: (controller) => controller.enqueue(new TextEncoder().encode('{"keys":[')) }));
      if (this.fault === "huge") return new Response(JSON.stringify({ keys: [], padding: "x".repeat(512 * 1024) }));
      return Response.json({ keys: this.published.map((key) => key.publicJwk) });
    });
  }

  /** How many times the key set was fetched. */
  keySetFetches(): number {
    return this.calls.filter((call) => call === "GET /keys").length;
  }

  /** A new key pair; published at once unless told otherwise. */
  async newKey(alg: IssuerKey["alg"] = "RS256", publish = true): Promise<IssuerKey> {
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
    const kid = crypto.randomUUID();
    const key: IssuerKey = { kid, alg, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: "sig" } };
    if (publish) this.published.push(key);
    return key;
  }

  /**
   * A token as the issuer would sign it: iss, aud, iat, nbf and a five-minute exp unless the claims say otherwise,
   * signed with `key` (default: the newest published key) and that key's kid unless `kid` says otherwise.
   */
  async sign(claims: JWTPayload, options: { key?: IssuerKey; kid?: string } = {}): Promise<string> {
    const key = options.key ?? this.published.at(-1)!;
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ iss: this.origin, iat: now, nbf: now - 5, exp: now + 300, ...claims })
      .setProtectedHeader({ alg: key.alg, kid: options.kid ?? key.kid, typ: "JWT" })
      .sign(key.privateKey);
  }
}

/** Routes the Worker's fetches to the issuers' origins to them, for the test file. */
export function useFakeIssuers(...issuers: FakeIssuer[]): void {
  const byOrigin = new Map(issuers.map((issuer) => [issuer.origin, issuer]));
  const realFetch = globalThis.fetch;
  beforeAll(() => {
    vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
      const request = new Request(input, init);
      const issuer = byOrigin.get(new URL(request.url).origin);
      if (!issuer) return realFetch(input, init);
      issuer.calls.push(`${request.method} ${new URL(request.url).pathname}`);
      if (issuer.fault === "down") throw new TypeError("Network connection lost.");
      return issuer.app.fetch(request);
    });
  });
  afterAll(() => vi.restoreAllMocks());
}

/** base64url of a JSON value or text, for hand-made tokens. */
export function base64url(value: unknown): string {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return btoa(String.fromCharCode(...new TextEncoder().encode(text))).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}
