import { DurableObject } from "cloudflare:workers";
import type { Env } from "../config";

/**
 * One per mirrored blob digest: makes concurrent misses fetch the blob from upstream once. The first caller leads
 * (streams it to its client while storing it); the others wait for it, then serve the stored copy. The lease is
 * in memory only: if the object is evicted mid-fetch, the worst case is a second fetch, never a wrong byte.
 */
export class MirrorBlobFetch extends DurableObject<Env> {
  private leaseUntil = 0;
  private waiters: (() => void)[] = [];

  claim(leaseMs: number): { leader: boolean } {
    if (Date.now() < this.leaseUntil) return { leader: false };
    this.leaseUntil = Date.now() + leaseMs;
    return { leader: true };
  }

  release(): void {
    this.leaseUntil = 0;
    for (const wake of this.waiters.splice(0)) wake();
  }

  /** Resolves when the current leader is done (or at the latest after timeoutMs). */
  wait(timeoutMs: number): Promise<void> {
    if (Date.now() >= this.leaseUntil) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      setTimeout(resolve, timeoutMs);
    });
  }
}
