import { readAtMost } from "../streams";
import type { Mirror } from "./config";
import { countUpstream } from "./stats";

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
// A token service's answer is a small JSON document; tokens are kept per scope, the oldest dropped past MAX_TOKENS.
const MAX_TOKEN_RESPONSE_BYTES = 64 * 1024;
const MAX_TOKENS = 10_000;

/** A small JSON object from the upstream, read at most `limit` bytes; anything else is the upstream's failure. */
export async function readJson(response: Response, limit: number, what: string): Promise<Record<string, unknown> | null> {
  const bytes = response.body ? await readAtMost(response.body, limit) : new Uint8Array(0);
  if (!bytes) throw new UpstreamError(502, `${what} is larger than ${limit} bytes`);
  try {
    const parsed = JSON.parse(new TextDecoder().decode(bytes)) as unknown;
    return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : null;
  } catch {
    throw new UpstreamError(502, `${what} is not JSON`);
  }
}

// Upstreams that challenged with Basic: later requests send the password at once instead of waiting for the 401.
const basicUpstreams = new Set<string>();

/** A client of one upstream registry that answers its auth challenges (Bearer or Basic) as they come. */
export class Upstream {
  private readonly fetcher: typeof fetch;
  private readonly log: boolean;

  constructor(
    private readonly mirror: Mirror,
    private readonly password: string | undefined,
    /** log: one JSON line per upstream exchange (LOG_REQUESTS). */
    options: { log?: boolean; fetcher?: typeof fetch } = {},
  ) {
    this.fetcher = options.fetcher ?? ((input, init) => fetch(input, init));
    this.log = options.log ?? true;
  }

  /** A request for `scope` (e.g. repository:library/alpine:pull); 4xx and 5xx answers are returned, not thrown. */
  async request(method: "GET" | "HEAD", path: string, scope: string, headers: Record<string, string> = {}): Promise<Response> {
    const url = `${this.mirror.upstream}${path}`;
    const key = this.tokenKey(scope);
    const cached = tokens.get(key);
    // The password is sent only where a challenge asked for it: to the token realm, or to an upstream that said Basic.
    const authorization = cached && cached.expiresAt > Date.now() ? `Bearer ${cached.token}` : basicUpstreams.has(this.mirror.upstream) ? this.basic() : undefined;
    const sent = await this.exchange(method, url, headers, authorization);
    let response = sent.response;
    // Only the upstream itself may ask for credentials: a 401 from where it redirected (a CDN, or whoever controls
    // that) is not answered, or its realm would get the password.
    if (response.status === 401 && sent.redirected) {
      await response.body?.cancel();
      throw new UpstreamError(401, `${new URL(sent.url).host}, where the upstream redirected, asked for credentials: none are sent there`);
    }
    if (response.status === 401) {
      const challenge = response.headers.get("WWW-Authenticate") ?? "";
      await response.body?.cancel();
      const retry = await this.answer(challenge, scope, key);
      if (retry === null) throw new UpstreamError(401, `the upstream refused our credentials (${challenge.slice(0, 200)})`);
      response = await this.send(method, url, headers, retry);
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
    let realm: URL;
    try {
      realm = new URL(params.realm);
    } catch {
      throw new UpstreamError(502, `the upstream's token realm ${params.realm.slice(0, 200)} is not a URL`);
    }
    // A password for an https upstream never travels in the clear.
    if (realm.protocol !== "https:" && new URL(this.mirror.upstream).protocol === "https:") {
      throw new UpstreamError(502, `the upstream's token realm ${realm.origin} is not https: no credentials are sent there`);
    }
    if (params.service) realm.searchParams.set("service", params.service);
    realm.searchParams.set("scope", params.scope ?? scope);
    // The configured credentials go to the realm the challenge names, wherever it is (Docker Hub's is auth.docker.io).
    const response = await this.send("GET", realm.toString(), {}, this.basic(), realm.host);
    if (!response.ok) {
      await response.body?.cancel();
      throw new UpstreamError(response.status === 429 ? 429 : 401, `the upstream token service answered ${response.status}`, response.headers.get("Retry-After"));
    }
    const body = await readJson(response, MAX_TOKEN_RESPONSE_BYTES, "the upstream token service's answer");
    const token = typeof body?.token === "string" ? body.token : typeof body?.access_token === "string" ? body.access_token : null;
    if (!token) throw new UpstreamError(401, "the upstream token service gave no token");
    const lifetime = typeof body?.expires_in === "number" && Number.isFinite(body.expires_in) ? body.expires_in : 60;
    // Docker's token spec: 60 s when unsaid; renew a little early. The oldest go first past MAX_TOKENS.
    tokens.set(key, { token, expiresAt: Date.now() + Math.max(lifetime - 10, 1) * 1000 });
    if (tokens.size > MAX_TOKENS) tokens.delete(tokens.keys().next().value!);
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
    return (await this.exchange(method, url, headers, authorization, trustedHost)).response;
  }

  /** send(), saying where the answer came from and whether a redirect led there. */
  private async exchange(
    method: string,
    url: string,
    headers: Record<string, string>,
    authorization: string | undefined,
    trustedHost = new URL(this.mirror.upstream).host,
  ): Promise<{ response: Response; url: string; redirected: boolean }> {
    let target = url;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const sameHost = new URL(target).host === trustedHost;
      const response = await this.withTimeout(target, {
        method,
        headers: { ...headers, ...(authorization && sameHost && { Authorization: authorization }) },
        redirect: "manual",
      });
      const location = response.headers.get("Location");
      if (response.status < 300 || response.status >= 400 || !location) return { response, url: target, redirected: hop > 0 };
      await response.body?.cancel();
      target = new URL(location, target).toString();
    }
    throw new UpstreamError(null, `the upstream redirected more than ${MAX_REDIRECTS} times`);
  }

  /**
   * One fetch, with timeoutSeconds twice over: for the response headers, and then for every wait on the body (an
   * upstream that sends part of a blob and goes silent is cut off, and the reader gets the error, not a hang).
   */
  private async withTimeout(url: string, init: RequestInit & { method: string }): Promise<Response> {
    const seconds = this.mirror.timeoutSeconds;
    const exchange = new Exchange(this.mirror, init.method, new URL(url), this.log);
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), seconds * 1000);
    let response: Response;
    try {
      response = await this.fetcher(url, { ...init, signal: controller.signal });
    } catch (error) {
      const failure = controller.signal.aborted
        ? new UpstreamError(null, `the upstream sent no response headers within ${seconds} s (timeoutSeconds)`)
        : new UpstreamError(null, `the upstream is unreachable: ${(error as Error).message}`);
      exchange.end(failure);
      throw failure;
    } finally {
      clearTimeout(timer);
    }
    exchange.answered(response);
    if (!response.body || init.method === "HEAD" || NULL_BODY_STATUSES.has(response.status)) {
      await response.body?.cancel();
      exchange.end();
      return new Response(null, { status: response.status, statusText: response.statusText, headers: response.headers });
    }
    const body = idleTimed(response.body, seconds, exchange, () => controller.abort());
    return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
  }
}

const NULL_BODY_STATUSES = new Set([101, 204, 205, 304]);

/**
 * An upstream body that fails with an UpstreamError when a read waits `seconds` for bytes, or when the upstream
 * breaks it off. The clock runs only while a reader waits on the upstream (highWaterMark 0: nothing is read ahead),
 * so a slow client never times out a healthy upstream.
 */
function idleTimed(body: ReadableStream<Uint8Array>, seconds: number, exchange: Exchange, abort: () => void): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  let cancelled = false;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        let timer!: ReturnType<typeof setTimeout>;
        const idle = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new UpstreamError(null, `the upstream sent no bytes for ${seconds} s (timeoutSeconds)`)), seconds * 1000);
        });
        try {
          const { done, value } = await Promise.race([reader.read(), idle]);
          if (cancelled) return;
          if (done) {
            controller.close();
            exchange.end();
            return;
          }
          exchange.received(value.byteLength);
          controller.enqueue(value);
        } catch (error) {
          if (cancelled) return;
          const failure =
            error instanceof UpstreamError ? error : new UpstreamError(null, `the upstream broke off the body after ${exchange.bytes} bytes: ${(error as Error).message}`);
          abort();
          reader.cancel(failure).catch(() => undefined);
          controller.error(failure);
          exchange.end(failure);
        } finally {
          clearTimeout(timer);
        }
      },
      async cancel(reason) {
        cancelled = true;
        exchange.end();
        await reader.cancel(reason).catch(() => undefined);
      },
    },
    { highWaterMark: 0 },
  );
}

/**
 * One HTTP exchange with an upstream host (the registry, its token realm, or where it redirects): one JSON log line
 * when it ends (headers only, or its body read, cancelled or broken off) and its count in the mirror's stats.
 */
class Exchange {
  private readonly started = Date.now();
  private status: number | null = null;
  private ratelimitRemaining: string | null = null;
  private challenge: string | null = null;
  private ended = false;
  bytes = 0;

  constructor(
    private readonly mirror: Mirror,
    private readonly method: string,
    private readonly url: URL,
    private readonly log: boolean,
  ) {}

  answered(response: Response): void {
    this.status = response.status;
    // Docker Hub: "100;w=21600" (pulls left in the window).
    this.ratelimitRemaining = response.headers.get("ratelimit-remaining");
    if (response.status === 401) this.challenge = response.headers.get("WWW-Authenticate")?.split(" ", 1)[0]?.slice(0, 20) || null;
  }

  received(bytes: number): void {
    this.bytes += bytes;
  }

  end(failure?: UpstreamError): void {
    if (this.ended) return;
    this.ended = true;
    const status = this.status;
    const failed = failure !== undefined || status === 429 || (status !== null && status >= 500);
    countUpstream(this.mirror.prefix, { failed, bytes: this.bytes });
    if (!this.log) return;
    const reason = failure?.message ?? (status !== null && status >= 400 ? `the upstream answered ${status}${this.challenge ? ` (${this.challenge} challenge)` : ""}` : undefined);
    console.log(
      JSON.stringify({
        event: "upstream",
        mirror: this.mirror.prefix,
        method: this.method,
        host: this.url.host,
        // Never the query: a redirect's signed URL carries credentials of its own.
        path: this.url.pathname.slice(0, 300),
        status,
        durationMs: Date.now() - this.started,
        bytes: this.bytes,
        ratelimitRemaining: this.ratelimitRemaining,
        ...(reason !== undefined && { reason }),
      }),
    );
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
