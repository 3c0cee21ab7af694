// The hottest small responses (manifests, image configs) kept in the isolate between requests, in front of the
// Cache API: a hit costs neither a subrequest nor a copy out of the cache. Least recently used entries go first once
// the total passes MAX_TOTAL_BYTES, well within an isolate's 128 MB.

export interface KeptResponse {
  body: Uint8Array;
  headers: [string, string][];
  /** Epoch milliseconds after which the entry is not served (Infinity for content addressed by digest). */
  expiresAt: number;
}

export const MAX_ENTRY_BYTES = 256 * 1024;
const MAX_TOTAL_BYTES = 16 * 1024 * 1024;

export class MemoryCache {
  private readonly entries = new Map<string, KeptResponse>();
  private bytes = 0;

  get(key: string, now: number): KeptResponse | null {
    const entry = this.entries.get(key);
    if (!entry) return null;
    this.entries.delete(key);
    if (entry.expiresAt <= now) {
      this.bytes -= entry.body.byteLength;
      return null;
    }
    // Map keeps insertion order: re-inserting makes it the most recently used.
    this.entries.set(key, entry);
    return entry;
  }

  set(key: string, entry: KeptResponse): void {
    if (entry.body.byteLength > MAX_ENTRY_BYTES) return;
    this.delete(key);
    this.entries.set(key, entry);
    this.bytes += entry.body.byteLength;
    for (const [oldest, evicted] of this.entries) {
      if (this.bytes <= MAX_TOTAL_BYTES) break;
      this.entries.delete(oldest);
      this.bytes -= evicted.body.byteLength;
    }
  }

  delete(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    this.bytes -= entry.body.byteLength;
  }
}
