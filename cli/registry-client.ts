// Talks to one registry as Docker clients do: a request that gets `401` with a Bearer challenge is answered by
// fetching a token from the challenge's realm (HTTP Basic with the credentials, or anonymously) for every scope this
// push needs, then retried; a Basic challenge gets the credentials on every request.
import type { IncomingMessage, OutgoingHttpHeaders } from "node:http";
import type { Readable } from "node:stream";
import type { Credentials } from "./credentials.ts";
import { discard, readText, send } from "./http.ts";

export type Body = Buffer | Readable | null;
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}
/** `body` is a function so that it can be made again for a retry (a stream cannot be replayed). */
export interface RequestOptions {
  headers?: OutgoingHttpHeaders;
  body?: () => Body;
}

const REFRESH_BEFORE_MS = 30_000;

/** Parses `Bearer realm="…",service="…",scope="…"`. */
export function parseChallenge(header: string | undefined): Challenge | null {
  const match = /^\s*(\w+)\s*(.*)$/s.exec(header ?? "");
  if (!match) return null;
  const params: Record<string, string> = {};
  for (const [, key, quoted, bare] of (match[2] ?? "").matchAll(/(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) {
    if (key) params[key.toLowerCase()] = quoted !== undefined ? quoted.replace(/\\(.)/g, "$1") : (bare ?? "");
  }
  return { scheme: (match[1] ?? "").toLowerCase(), params };
}

/** An error that carries the registry's OCI error (code and message) when it sent one. */
export class RegistryResponseError extends Error {
  readonly status: number;

  /** `what` says what was being done. */
  constructor(what: string, status: number, body: string) {
    let reason = body.trim().slice(0, 300);
    try {
      const first = JSON.parse(body).errors?.[0];
      if (first?.code) reason = `${first.code}: ${first.message ?? ""}`;
    } catch {
      // not an OCI error body
    }
    super(`${what}: HTTP ${status}${reason ? ` ${reason}` : ""}`);
    this.name = "RegistryResponseError";
    this.status = status;
  }
}

/** Throws a RegistryResponseError for `response` (reading its body). */
export async function fail(response: IncomingMessage, what: string): Promise<never> {
  throw new RegistryResponseError(what, response.statusCode ?? 0, await readText(response, 64 * 1024));
}

/**
 * One scope per resource with the union of its actions ("repository:a:pull" and "repository:a:pull,push" become
 * "repository:a:pull,push"), as token servers expect.
 */
export function mergeScopes(scopes: Iterable<string>): string[] {
  const merged = new Map<string, Set<string>>();
  for (const scope of scopes) {
    const colon = scope.lastIndexOf(":");
    if (colon < 0) continue;
    const resource = scope.slice(0, colon);
    const actions = merged.get(resource) ?? new Set();
    for (const action of scope.slice(colon + 1).split(",")) if (action) actions.add(action);
    merged.set(resource, actions);
  }
  return [...merged].map(([resource, actions]) => `${resource}:${[...actions].join(",")}`);
}

export class RegistryClient {
  readonly origin: URL;
  readonly credentials: Credentials | null;
  readonly scopes: Set<string>;
  authorization: string | undefined = undefined;
  expiresAt = Infinity;
  challenge: Challenge | null = null;
  authenticating: Promise<void> | null = null;

  /**
   * `origin`: the registry (scheme, host, port); `scopes`: every scope to ask a token for, e.g.
   * "repository:team/app:pull,push".
   */
  constructor(origin: URL, credentials: Credentials | null, scopes: string[]) {
    this.origin = new URL(origin.origin);
    this.credentials = credentials;
    this.scopes = new Set(scopes);
  }

  get host(): string {
    return this.origin.host;
  }

  /** A URL of this registry from a path or a Location header (relative or absolute). */
  url(location: string): URL {
    return new URL(location, this.origin);
  }

  /** Sends a request, authenticating and retrying once on a challenge. */
  async request(method: string, location: string | URL, { headers = {}, body }: RequestOptions = {}): Promise<IncomingMessage> {
    const url = typeof location === "string" ? this.url(location) : location;
    for (let attempt = 0; ; attempt++) {
      if (this.challenge && Date.now() > this.expiresAt - REFRESH_BEFORE_MS) await this.authenticate(this.challenge);
      const sameOrigin = url.origin === this.origin.origin;
      const response = await send(url, {
        method,
        headers: { ...headers, ...(sameOrigin && this.authorization && { Authorization: this.authorization }) },
        body: body ? body() : null,
      });
      if (response.statusCode !== 401 || attempt > 0 || !sameOrigin) return response;
      const challenge = parseChallenge(response.headers["www-authenticate"]);
      if (!challenge || (challenge.scheme === "basic" && this.credentials === null)) return response;
      discard(response);
      await this.authenticate(challenge);
    }
  }

  /** Answers a challenge once, however many requests met it at the same time. */
  authenticate(challenge: Challenge): Promise<void> {
    this.authenticating ??= this.#answer(challenge).finally(() => {
      this.authenticating = null;
    });
    return this.authenticating;
  }

  async #answer(challenge: Challenge): Promise<void> {
    const basic = this.credentials
      ? `Basic ${Buffer.from(`${this.credentials.username}:${this.credentials.password}`).toString("base64")}`
      : undefined;
    if (challenge.scheme === "basic") {
      this.authorization = basic;
      return;
    }
    if (challenge.scheme !== "bearer" || !challenge.params.realm) {
      throw new Error(`${this.host} asks for authentication this tool does not speak: ${challenge.scheme}`);
    }
    this.challenge = challenge;
    for (const scope of (challenge.params.scope ?? "").split(" ")) if (scope) this.scopes.add(scope);
    const realm = new URL(challenge.params.realm);
    if (challenge.params.service) realm.searchParams.set("service", challenge.params.service);
    for (const scope of mergeScopes(this.scopes)) realm.searchParams.append("scope", scope);
    const response = await send(realm, { method: "GET", headers: basic ? { Authorization: basic } : {} });
    const text = await readText(response);
    if (response.statusCode !== 200) {
      throw new RegistryResponseError(`getting a token from ${realm.origin}${realm.pathname}`, response.statusCode ?? 0, text);
    }
    const answer = JSON.parse(text);
    const token = answer.token ?? answer.access_token;
    if (typeof token !== "string") throw new Error(`the token endpoint ${realm.origin}${realm.pathname} sent no token`);
    this.authorization = `Bearer ${token}`;
    const lifetime = typeof answer.expires_in === "number" ? answer.expires_in : 60;
    this.expiresAt = Date.now() + lifetime * 1000;
  }
}
