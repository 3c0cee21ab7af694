// Short-lived marks with an end time ("this client is blocked until", "this failed secret was counted"), kept in
// the Cache API of this location and in the isolate's memory, which answers without a subrequest. Per location is
// the scope of the AUTH_FAILURES rate limiter they accompany. On *.workers.dev the Cache API stores nothing, so
// there only each isolate's memory holds them.

const ORIGIN = "https://window-marks.registry.internal";
const UNTIL = "X-Mark-Until";
// Oldest out first past this many: a flood of clients cannot grow the isolate's copy without bound.
const MAX_IN_MEMORY = 10_000;

const urlOf = (name: string) => `${ORIGIN}/${name}`;

export class WindowMarks {
  private readonly memory = new Map<string, number>();

  /** When the named mark ends (epoch milliseconds), or null when there is none at `now`. */
  async until(name: string, now: number): Promise<number | null> {
    const kept = this.memory.get(name);
    if (kept !== undefined && kept > now) return kept;
    this.memory.delete(name);
    const hit = await caches.default.match(urlOf(name)).catch(() => undefined);
    await hit?.body?.cancel();
    const until = Number(hit?.headers.get(UNTIL));
    if (!(until > now)) return null;
    this.remember(name, until);
    return until;
  }

  /** Sets the named mark until `until`, here and in this location's Cache API. */
  async mark(name: string, until: number, now: number): Promise<void> {
    this.remember(name, until);
    const seconds = Math.max(1, Math.ceil((until - now) / 1000));
    const stored = new Response("", { headers: { "Cache-Control": `max-age=${seconds}`, [UNTIL]: String(until) } });
    // Without the Cache API's copy the memory copy still holds for this isolate.
    await caches.default.put(urlOf(name), stored).catch(() => undefined);
  }

  private remember(name: string, until: number): void {
    this.memory.delete(name);
    this.memory.set(name, until);
    if (this.memory.size > MAX_IN_MEMORY) this.memory.delete(this.memory.keys().next().value!);
  }
}
