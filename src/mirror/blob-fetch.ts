import { DurableObject } from "cloudflare:workers";
import type { Waiter } from "../cache/edge";
import type { Env } from "../config";
import { UpstreamError } from "./upstream";

/**
 * One per mirrored object being fetched from upstream (a blob by digest; a manifest by mirror, repository and
 * reference): makes concurrent misses fetch it once. The first caller leads: it holds a short lease, renewed while it
 * makes progress, and releases it with its outcome however it ends. The others wait a bounded time for that outcome.
 * The lease is in memory only: if the object is evicted mid-fetch, the worst case is a second fetch, never a wrong byte.
 */
export class MirrorBlobFetch extends DurableObject<Env> {
  private state: FetchState = { kind: "idle" };
  private readonly waiters = new Set<(outcome: FetchOutcome) => void>();

  /**
   * Leads when no live lease is held (an expired one is taken over: its leader vanished); otherwise follows, waiting up
   * to waitMs for the leader's outcome. The holder that leads already leads again (a retried call).
   */
  async claim(holder: string, leaseMs: number, waitMs: number): Promise<Claim> {
    const now = Date.now();
    if (this.state.kind === "idle" || this.state.until <= now || this.state.holder === holder) {
      this.state = { kind: "leased", holder, until: now + leaseMs };
      return { role: "leader" };
    }
    return { role: "follower", outcome: waitMs > 0 ? await this.outcome(waitMs) : null };
  }

  /** Extends the lease of a leader making progress; false when it is no longer the holder (it ran out, another took over). */
  renew(holder: string, leaseMs: number): boolean {
    if (this.state.kind !== "leased" || this.state.holder !== holder) return false;
    this.state = { kind: "leased", holder, until: Date.now() + leaseMs };
    return true;
  }

  /** The leader is done, well or not: the lease is free at once and the waiters learn how it went. Only the holder's counts. */
  release(holder: string, outcome: FetchOutcome): void {
    if (this.state.kind !== "leased" || this.state.holder !== holder) return;
    this.state = { kind: "idle" };
    for (const wake of [...this.waiters]) wake(outcome);
  }

  private outcome(timeoutMs: number): Promise<FetchOutcome | null> {
    return new Promise((resolve) => {
      const wake = (outcome: FetchOutcome | null) => {
        clearTimeout(timer);
        this.waiters.delete(wake);
        resolve(outcome);
      };
      const timer = setTimeout(() => wake(null), timeoutMs);
      this.waiters.add(wake);
    });
  }
}

// Every state a fetch of one mirrored object can be in.
type FetchState =
  // Nobody is fetching it: the next claim leads.
  | { kind: "idle" }
  // A leader is fetching it; its lease runs out at `until` unless renewed, and a claim after that leads instead.
  | { kind: "leased"; holder: string; until: number };

/** How a leader's fetch ended, for the requests that waited on it. */
export type FetchOutcome =
  // The object is stored here and current (a blob recorded; a manifest fetched, or its tag revalidated).
  | { kind: "stored" }
  // error: the upstream's failure, which followers may answer with; null when the leader failed on its own account.
  | { kind: "failed"; error: UpstreamFailure | null };

export interface UpstreamFailure {
  status: number | null;
  message: string;
  retryAfter: string | null;
}

/** The upstream's part in a failure, for followers to answer with (null: the leader's own trouble). */
export function upstreamFailure(error: unknown): UpstreamFailure | null {
  return error instanceof UpstreamError ? { status: error.status, message: error.message, retryAfter: error.retryAfter } : null;
}

/** A claim's answer: lead, or follow with the leader's outcome (null: still fetching when the wait ended). */
export type Claim = { role: "leader" } | { role: "follower"; outcome: FetchOutcome | null };

/**
 * A request's handle on one object's fetch lease: claims it once, renews it at most every quarter lease while the
 * leader makes progress, and releases it exactly once. Renewals and the release are sent at once and finished after
 * the response (waitUntil), so they never hold up the bytes.
 */
export class FetchLease {
  private readonly holder = crypto.randomUUID();
  private renewedAt = 0;
  private released = false;

  constructor(
    private readonly coordinator: DurableObjectStub<MirrorBlobFetch>,
    private readonly leaseMs: number,
    private readonly waiter: Waiter,
  ) {}

  static of(env: Env, name: string, leaseMs: number, waiter: Waiter): FetchLease {
    return new FetchLease(env.MIRROR_FETCHES.get(env.MIRROR_FETCHES.idFromName(name)), leaseMs, waiter);
  }

  /** A coordinator that cannot be reached makes every request its own leader: at worst a second fetch, never a failed pull. */
  async claim(waitMs: number): Promise<Claim> {
    this.renewedAt = Date.now();
    try {
      return await this.coordinator.claim(this.holder, this.leaseMs, waitMs);
    } catch (error) {
      console.error(JSON.stringify({ event: "mirror-fetch-lease-unavailable", error: String(error) }));
      return { role: "leader" };
    }
  }

  /** The leader got somewhere (headers, a chunk): keeps the lease alive. */
  progress(): void {
    if (this.released || Date.now() - this.renewedAt < this.leaseMs / 4) return;
    this.renewedAt = Date.now();
    this.waiter.waitUntil(this.coordinator.renew(this.holder, this.leaseMs).catch(() => undefined));
  }

  release(outcome: FetchOutcome): void {
    if (this.released) return;
    this.released = true;
    this.waiter.waitUntil(this.coordinator.release(this.holder, outcome).catch(() => undefined));
  }
}
