import { countServed } from "./stats";

/**
 * How a mirrored response was served (its X-Mirror-Status):
 * - hit: from the local copy, without asking the upstream;
 * - miss: fetched from the upstream now;
 * - revalidated: the upstream was asked with a HEAD (a tag past its TTL, or a blob stored for another repository)
 *   and the local copy served;
 * - stale: the upstream failed, the local copy served.
 */
export type MirrorStatus = "hit" | "miss" | "revalidated" | "stale";

/** What the mirror services learned about one request; the mirror middleware turns it into the header and counts. */
export class MirrorReport {
  /** Until a service says otherwise nothing was asked upstream (a tag the edge cache answers reaches no service). */
  status: MirrorStatus = "hit";
  /** The size of the stored blob found, for a redirect to R2 (which carries no Content-Length of the blob). */
  storedSize = 0;

  constructor(readonly prefix: string) {}

  /** Marks a successful response with how it was served, and counts it with the bytes it served from the local copy. */
  finish(method: string, response: Response): void {
    if (response.status >= 400) return;
    // A response that says so itself (a stale manifest; a blob streamed unverified) keeps its word.
    const status = (response.headers.get("X-Mirror-Status") as MirrorStatus | null) ?? this.status;
    response.headers.set("X-Mirror-Status", status);
    let local = 0;
    if (method === "GET" && status !== "miss") {
      if (response.status === 307) local = this.storedSize;
      else if (response.status === 200 || response.status === 206) local = Number(response.headers.get("Content-Length")) || 0;
    }
    countServed(this.prefix, status, local);
  }
}
