import type { Mirror } from "./config";

/** The upstream did not give a usable answer: its status (null when unreachable or too slow) and its advice. */
export class UpstreamError extends Error {
  constructor(
    readonly status: number | null,
    message: string,
    readonly retryAfter: string | null = null,
  ) {
    super(message);
    this.name = "UpstreamError";
  }
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

// Bearer tokens from upstream token services, per isolate, until they expire: one token request per scope and
// lifetime, not one per pull.
const tokens = new Map<string, CachedToken>();
const MAX_REDIRECTS = 5;
// Upstreams that challenged with Basic: later requests send the password at once instead of waiting for the 401.
const basicUpstreams = new Set<string>();

/** A client of one upstream registry that answers its auth challenges (Bearer or Basic) as they come. */
export class Upstream {
  constructor(
    private readonly mirror: Mirror,
    private readonly password: string | undefined,
    private readonly fetcher: typeof fetch = (input, init) => fetch(input, init),
  ) {}

  /** A request for `scope` (e.g. repository:library/alpine:pull); 4xx and 5xx answers are returned, not thrown. */
  async request(method: "GET" | "HEAD", path: string, scope: string, headers: Record<string, string> = {}): Promise<Response> {
    const url = `${this.mirror.upstream}${path}`;
    const key = this.tokenKey(scope);
    const cached = tokens.get(key);
    // The password is sent only where a challenge asked for it: to the token realm, or to an upstream that said Basic.
    const authorization = cached && cached.expiresAt > Date.now() ? `Bearer ${cached.token}` : basicUpstreams.has(this.mirror.upstream) ? this.basic() : undefined;
    let response = await this.send(method, url, headers, authorization);
    if (response.status === 401) {
      const challenge = response.headers.get("WWW-Authenticate") ?? "";
      await response.body?.cancel();
      const retry = await this.answer(challenge, scope, key);
      if (retry === null) throw new UpstreamError(401, `the upstream refused our credentials (${challenge.slice(0, 200)})`);
      response = await this.send(method, url, headers, retry);
    }
    const remaining = response.headers.get("ratelimit-remaining");
    if (remaining !== null) {
      console.log(JSON.stringify({ event: "upstream-ratelimit", upstream: this.mirror.upstream, remaining, limit: response.headers.get("ratelimit-limit") }));
    }
    return response;
  }

  // Per upstream, credentials and scope (a token from one realm for one identity and scope is good for nothing else).
  private tokenKey(scope: string): string {
    return `${this.mirror.upstream}|${this.mirror.username ?? ""}|${scope}`;
  }

  private basic(): string | undefined {
    if (this.mirror.username === undefined || this.password === undefined) return undefined;
    return `Basic ${btoa(`${this.mirror.username}:${this.password}`)}`;
  }

  /** The Authorization to retry with, after a 401 with this challenge; null when there is nothing better to send. */
  private async answer(challenge: string, scope: string, key: string): Promise<string | null> {
    const [scheme] = challenge.split(" ", 1);
    if (scheme?.toLowerCase() === "basic") {
      basicUpstreams.add(this.mirror.upstream);
      return this.basic() ?? null;
    }
    if (scheme?.toLowerCase() !== "bearer") return null;
    const params = parseChallenge(challenge);
    if (!params.realm) return null;
    const realm = new URL(params.realm);
    if (params.service) realm.searchParams.set("service", params.service);
    realm.searchParams.set("scope", params.scope ?? scope);
    // The configured credentials go to the realm the challenge names, wherever it is (Docker Hub's is auth.docker.io).
    const response = await this.send("GET", realm.toString(), {}, this.basic(), realm.host);
    if (!response.ok) {
      await response.body?.cancel();
      throw new UpstreamError(response.status === 429 ? 429 : 401, `the upstream token service answered ${response.status}`, response.headers.get("Retry-After"));
    }
    const body = (await response.json()) as { token?: string; access_token?: string; expires_in?: number };
    const token = body.token ?? body.access_token;
    if (!token) throw new UpstreamError(401, "the upstream token service gave no token");
    // Docker's token spec: 60 s when unsaid; renew a little early.
    tokens.set(key, { token, expiresAt: Date.now() + Math.max((body.expires_in ?? 60) - 10, 1) * 1000 });
    return `Bearer ${token}`;
  }

  /**
   * One HTTP exchange, following redirects by hand so that credentials go only to `trustedHost` (the upstream's, or
   * its token realm's), never to where it redirects (a blob's CDN).
   */
  private async send(
    method: string,
    url: string,
    headers: Record<string, string>,
    authorization: string | undefined,
    trustedHost = new URL(this.mirror.upstream).host,
  ): Promise<Response> {
    let target = url;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const sameHost = new URL(target).host === trustedHost;
      const response = await this.withTimeout(target, {
        method,
        headers: { ...headers, ...(authorization && sameHost && { Authorization: authorization }) },
        redirect: "manual",
      });
      const location = response.headers.get("Location");
      if (response.status < 300 || response.status >= 400 || !location) return response;
      await response.body?.cancel();
      target = new URL(location, target).toString();
    }
    throw new UpstreamError(null, `the upstream redirected more than ${MAX_REDIRECTS} times`);
  }

  /** Waits for the response headers at most timeoutSeconds; the body may take as long as it takes. */
  private async withTimeout(url: string, init: RequestInit): Promise<Response> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.mirror.timeoutSeconds * 1000);
    try {
      return await this.fetcher(url, { ...init, signal: controller.signal });
    } catch (error) {
      throw new UpstreamError(null, `the upstream is unreachable: ${(error as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** The parameters of a `WWW-Authenticate: Bearer realm="…",service="…",scope="…"` challenge. */
export function parseChallenge(header: string): Record<string, string> {
  const params: Record<string, string> = {};
  for (const match of header.matchAll(/(\w+)="([^"]*)"/g)) params[match[1]!.toLowerCase()] = match[2]!;
  return params;
}

/** Throws an UpstreamError for anything but a success (404 is the caller's to handle). */
export async function expectOk(response: Response, what: string): Promise<Response> {
  if (response.ok) return response;
  await response.body?.cancel();
  if (response.status === 404) return response;
  throw new UpstreamError(response.status, `the upstream answered ${response.status} for ${what}`, response.headers.get("Retry-After"));
}
