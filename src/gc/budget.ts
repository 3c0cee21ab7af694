// A background pass (garbage collection, retention) spends at most this many subrequests (D1 queries and batches,
// R2 calls) per invocation, well under the platform's per-invocation limit (Workers Paid: 1,000 calls to other
// Cloudflare services, 10,000 subrequests in all; Workers Free: 50, for which GC_SUBREQUEST_BUDGET must be set lower).
// A step that cannot afford its next call stops and says so; the next pass resumes from the cursors it saved.
export class Budget {
  private spent = 0;

  constructor(readonly limit: number) {}

  /** Whether `calls` more subrequests fit; takes them if they do. */
  spend(calls = 1): boolean {
    if (this.spent + calls > this.limit) return false;
    this.spent += calls;
    return true;
  }

  get used(): number {
    return this.spent;
  }

  /** Subrequests not yet spent. */
  get left(): number {
    return this.limit - this.spent;
  }
}
