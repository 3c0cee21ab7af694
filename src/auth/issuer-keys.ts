import { createLocalJWKSet, errors, type JSONWebKeySet, type JWTVerifyGetKey } from "jose";
import { z } from "zod";
import { readAtMost } from "../streams";
import { insecureUrlProblem } from "./trust-policies";

// The signing keys of OIDC issuers, found through discovery (`<issuer>/.well-known/openid-configuration` names the
// `jwks_uri`) and kept per isolate. Only issuers a trust policy names are ever fetched, never one a token claims.
//
// A key set is used for FRESH_MS, then fetched again on the next login; if that fetch fails, the old set serves until
// STALE_MS (an issuer's short outage does not stop CI), and then nothing does. A token whose `kid` is not in the set
// (the issuer rotated its keys) fetches the set again at once, but fetches start at most once per COOLDOWN_MS per
// issuer, whatever the reason: tokens with made-up kids cannot make the Worker hammer the issuer.
const FRESH_MS = 10 * 60_000;
const STALE_MS = 60 * 60_000;
const COOLDOWN_MS = 60_000;
// A discovery document is a few KiB, a key set a few keys; anything much larger is not one.
const MAX_DISCOVERY_BYTES = 64 * 1024;
const MAX_KEY_SET_BYTES = 256 * 1024;
const MAX_KEYS = 100;
/** How long one fetch (its headers and its body) may take. */
const TIMEOUT_MS = 5_000;

/** The issuer's keys could not be had: the login can be neither accepted nor refused (it is not counted as failed). */
export class IssuerUnavailable extends Error {
  constructor(
    readonly issuer: string,
    reason: string,
  ) {
    super(`the OIDC issuer ${issuer}: ${reason}`);
    this.name = "IssuerUnavailable";
  }
}

const Discovery = z.object({ issuer: z.string(), jwks_uri: z.string() });
const KeySet = z.object({ keys: z.array(z.object({ kty: z.string() }).loose()).max(MAX_KEYS) });

interface IssuerState {
  keys: { select: JWTVerifyGetKey; fetchedAt: number } | null;
  /** When the last fetch started, whatever became of it. */
  attemptedAt: number;
  /** Why the last fetch failed (null when it did not). */
  failure: string | null;
  /** The fetch under way, which concurrent logins wait for instead of starting their own. */
  pending: Promise<void> | null;
}

export interface IssuerKeysOptions {
  fetcher?: typeof fetch;
  now?: () => number;
  timeoutMs?: number;
}

export class IssuerKeys {
  private readonly issuers = new Map<string, IssuerState>();
  private readonly fetcher: typeof fetch;
  private readonly now: () => number;
  private readonly timeoutMs: number;

  constructor(options: IssuerKeysOptions = {}) {
    // Looked up at each call, so that a test's stub of the global fetch is the one used.
    this.fetcher = options.fetcher ?? ((input, init) => fetch(input, init));
    this.now = options.now ?? (() => Date.now());
    this.timeoutMs = options.timeoutMs ?? TIMEOUT_MS;
  }

  /**
   * A key resolver for jose's jwtVerify: the issuer's key for the token's `kid` and `alg`. Throws IssuerUnavailable
   * when there are no usable keys, and jose's JWKSNoMatchingKey when the keys (refreshed if the cooldown allows) hold
   * none for the token.
   */
  resolver(issuer: string, allowHttp: boolean): JWTVerifyGetKey {
    return async (header, token) => {
      const select = await this.current(issuer, allowHttp);
      try {
        return await select(header, token);
      } catch (error) {
        if (!(error instanceof errors.JWKSNoMatchingKey)) throw error;
        // An unknown kid: the issuer may have rotated its keys since we fetched them.
        const state = this.stateOf(issuer);
        const before = state.keys;
        await this.refresh(issuer, allowHttp);
        if (state.keys === before) {
          if (state.failure !== null && this.now() - state.attemptedAt < COOLDOWN_MS) throw new IssuerUnavailable(issuer, state.failure);
          throw error;
        }
        return state.keys!.select(header, token);
      }
    };
  }

  /** The keys to use now: fresh ones, fetched if need be, or stale ones while fetching fails. */
  private async current(issuer: string, allowHttp: boolean): Promise<JWTVerifyGetKey> {
    const state = this.stateOf(issuer);
    if (!state.keys || this.now() - state.keys.fetchedAt >= FRESH_MS) await this.refresh(issuer, allowHttp);
    if (state.keys && this.now() - state.keys.fetchedAt < STALE_MS) return state.keys.select;
    throw new IssuerUnavailable(issuer, state.failure ?? "its keys could not be fetched");
  }

  /**
   * Fetches the key set again unless a fetch started within the cooldown. A fetch under way is waited for instead, but
   * no longer than it may take: the request that started it may be cancelled (its client went away), and its fetch
   * and timers with it, leaving a promise that never settles.
   */
  private async refresh(issuer: string, allowHttp: boolean): Promise<void> {
    const state = this.stateOf(issuer);
    const now = this.now();
    // Discovery, then the key set, each within the timeout.
    const deadline = state.attemptedAt + 2 * this.timeoutMs;
    if (state.pending && now < deadline) return this.atMost(state.pending, deadline - now);
    if (now - state.attemptedAt < COOLDOWN_MS) return;
    state.attemptedAt = now;
    const fetching: Promise<void> = this.fetchKeySet(issuer, allowHttp)
      .then((keySet) => {
        state.keys = { select: createLocalJWKSet(keySet), fetchedAt: this.now() };
        state.failure = null;
      })
      .catch((error: unknown) => {
        state.failure = (error as Error).message;
        console.log(JSON.stringify({ event: "oidc-keys", issuer, result: "failed", reason: state.failure }));
      })
      .finally(() => {
        if (state.pending === fetching) state.pending = null;
      });
    state.pending = fetching;
    return fetching;
  }

  private async atMost(pending: Promise<void>, ms: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | null = null;
    await Promise.race([pending, new Promise<void>((done) => (timer = setTimeout(done, ms)))]);
    clearTimeout(timer);
  }

  private stateOf(issuer: string): IssuerState {
    let state = this.issuers.get(issuer);
    if (!state) {
      state = { keys: null, attemptedAt: -Infinity, failure: null, pending: null };
      this.issuers.set(issuer, state);
    }
    return state;
  }

  private async fetchKeySet(issuer: string, allowHttp: boolean): Promise<JSONWebKeySet> {
    // OpenID Connect Discovery 1.0, section 4: a trailing slash of the issuer is dropped before the well-known path.
    const discovery = Discovery.safeParse(await this.getJson(`${issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`, MAX_DISCOVERY_BYTES, "discovery document"));
    if (!discovery.success) throw new Error("its discovery document has no issuer and jwks_uri");
    // Section 4.3: the document must be the issuer's own, or it could point us at anyone's keys.
    if (discovery.data.issuer !== issuer) throw new Error(`its discovery document names another issuer (${discovery.data.issuer.slice(0, 200)})`);
    const problem = insecureUrlProblem(discovery.data.jwks_uri, allowHttp);
    if (problem) throw new Error(`its jwks_uri ${problem}`);
    const keySet = KeySet.safeParse(await this.getJson(discovery.data.jwks_uri, MAX_KEY_SET_BYTES, "key set"));
    if (!keySet.success) throw new Error(`its jwks_uri holds no key set of at most ${MAX_KEYS} keys`);
    return keySet.data as JSONWebKeySet;
  }

  /** A small JSON document, read at most `limit` bytes within the timeout; redirects are not followed. */
  private async getJson(url: string, limit: number, what: string): Promise<unknown> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new Error(`its ${what} took longer than ${this.timeoutMs} ms`)), this.timeoutMs);
    try {
      const response = await this.withinTimeout(this.fetcher(url, { headers: { Accept: "application/json" }, redirect: "manual", signal: controller.signal }), controller.signal);
      if (response.status !== 200) {
        await response.body?.cancel();
        throw new Error(`its ${what} (${url.slice(0, 200)}) answered ${response.status}`);
      }
      const body = response.body ? await this.withinTimeout(readAtMost(response.body, limit), controller.signal) : new Uint8Array(0);
      if (!body) throw new Error(`its ${what} is larger than ${limit} bytes`);
      try {
        return JSON.parse(new TextDecoder().decode(body)) as unknown;
      } catch {
        throw new Error(`its ${what} is not JSON`);
      }
    } catch (error) {
      throw controller.signal.aborted ? (controller.signal.reason as Error) : error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The promise's value, or the abort's reason once the timeout fires (a fetch or body that stalls holds no login). */
  private withinTimeout<T>(read: Promise<T>, signal: AbortSignal): Promise<T> {
    return Promise.race([
      read,
      new Promise<never>((_, reject) => {
        if (signal.aborted) reject(signal.reason as Error);
        signal.addEventListener("abort", () => reject(signal.reason as Error), { once: true });
      }),
    ]);
  }
}
