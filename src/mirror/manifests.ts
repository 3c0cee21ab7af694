import type { Waiter } from "../cache/edge";
import { configOf, type Env } from "../config";
import { digestOf } from "../digest";
import { RegistryError } from "../errors";
import { MediaTypes } from "../manifests/schema";
import { isTag, parseDigest, referenceText, type ParsedDigest, type Reference } from "../references";
import { ManifestService, type StoredManifest } from "../services/manifests";
import { MirrorRecords } from "../storage/mirror-records";
import { readAtMost } from "../streams";
import { FetchLease, upstreamFailure, type UpstreamFailure } from "./blob-fetch";
import type { MirrorTarget } from "./config";
import type { MirrorReport, MirrorStatus } from "./status";
import { expectOk, readJson, Upstream, UpstreamError } from "./upstream";

const MAX_TAG_LIST_BYTES = 1024 * 1024;

const ACCEPT = [MediaTypes.ociIndex, MediaTypes.ociManifest, MediaTypes.dockerManifestList, MediaTypes.dockerManifest].join(", ");

/** Says in a response that the mirror served its copy because the upstream could not be asked. */
export const STALE = { Warning: '110 - "Response is Stale"', "X-Mirror-Status": "stale" };

/**
 * Manifests of a mirrored repository: the local copy when it is known to be current, otherwise fetched from the
 * upstream, verified against its digest and stored. Manifests by digest never change; tags are revalidated with a
 * HEAD once their TTL has passed; an unavailable upstream is answered with what is cached. Concurrent requests that
 * must ask the upstream about one reference ask it once: one leads, the others wait for its outcome (a bounded time).
 */
export class MirrorManifestService extends ManifestService {
  private readonly checks: MirrorRecords;

  constructor(
    env: Env,
    private readonly target: MirrorTarget,
    private readonly upstream: Upstream,
    private readonly report: MirrorReport,
    private readonly waiter: Waiter,
  ) {
    super(env);
    this.checks = new MirrorRecords(env.DB);
  }

  override async resolve(repository: string, parsed: Reference): Promise<StoredManifest> {
    const local = await this.local(repository, parsed);
    if (local && (await this.isCurrent(repository, parsed))) return this.served("hit", local);
    // Docker Hub counts manifest GETs against the pull limit: one request per reference asks, whoever else wants it.
    const leaseMs = 2 * this.target.mirror.timeoutSeconds * 1000;
    const lease = FetchLease.of(this.env, `manifest ${this.target.mirror.prefix} ${repository} ${referenceText(parsed)}`, leaseMs, this.waiter);
    const claim = await lease.claim(leaseMs);
    if (claim.role === "leader") {
      try {
        const answer = await this.askUpstream(repository, parsed, local, lease);
        lease.release({ kind: "stored" });
        return answer;
      } catch (error) {
        lease.release({ kind: "failed", error: failureOf(error) });
        return this.failed(error, repository, parsed, local);
      }
    }
    const { outcome } = claim;
    if (outcome?.kind === "stored") {
      const stored = await this.local(repository, parsed);
      if (stored) return this.served("hit", stored);
    }
    if (outcome?.kind === "failed" && outcome.error) return this.failed(failureFrom(outcome.error, repository, parsed), repository, parsed, local);
    // The leader is still at it after the wait, or failed on its own account: ask without it.
    return this.askUpstream(repository, parsed, local, null).catch((error) => this.failed(error, repository, parsed, local));
  }

  private local(repository: string, parsed: Reference): Promise<StoredManifest | null> {
    return super.resolve(repository, parsed).catch((error) => {
      if (error instanceof RegistryError && error.code === "MANIFEST_UNKNOWN") return null;
      throw error;
    });
  }

  /** Content by digest never changes; a tag is current for tagTtlSeconds after it was last checked upstream. */
  private async isCurrent(repository: string, parsed: Reference): Promise<boolean> {
    if ("digest" in parsed) return true;
    const checkedAt = await this.checks.checkedAt(repository, parsed.tag);
    return checkedAt !== null && Date.now() - checkedAt < this.target.mirror.tagTtlSeconds * 1000;
  }

  /** Asks the upstream: a tag with a HEAD first (nothing is downloaded when it has not moved), then the manifest if needed. */
  private async askUpstream(repository: string, parsed: Reference, local: StoredManifest | null, lease: FetchLease | null): Promise<StoredManifest> {
    if ("digest" in parsed) return this.served("miss", await this.fetch(repository, null, parsed.digest));
    const { tag } = parsed;
    const head = await expectOk(await this.upstream.request("HEAD", this.path(tag), this.scope(), { Accept: ACCEPT }), `${this.target.upstreamName}:${tag}`);
    if (head.status === 404) throw new RegistryError("MANIFEST_UNKNOWN", { repository, reference: tag, upstream: "not found" });
    lease?.progress();
    const digest = head.headers.get("Docker-Content-Digest");
    if (local && digest === local.record.digest) {
      await this.checks.markChecked(repository, tag);
      return this.served("revalidated", local);
    }
    const fetched = await this.fetch(repository, tag, digest ? upstreamDigest(digest) : null);
    await this.checks.markChecked(repository, tag);
    return this.served("miss", fetched);
  }

  /** An upstream that failed is answered with the local copy, marked stale, when there is one; else with its error. */
  private failed(error: unknown, repository: string, parsed: Reference, local: StoredManifest | null): StoredManifest {
    if (error instanceof UpstreamError && local) return this.served("stale", { ...local, headers: STALE });
    throw toRegistryError(error, "MANIFEST_UNKNOWN", repository, referenceText(parsed));
  }

  private served(status: MirrorStatus, manifest: StoredManifest): StoredManifest {
    this.report.status = status;
    return manifest;
  }

  /** GETs a manifest upstream (by digest when known), checks its digest, stores it (with the tag) and returns it. */
  private async fetch(repository: string, tag: string | null, digest: ParsedDigest | null): Promise<StoredManifest> {
    const reference = digest?.digest ?? tag!;
    const response = await expectOk(await this.upstream.request("GET", this.path(reference), this.scope(), { Accept: ACCEPT }), `${this.target.upstreamName}@${reference}`);
    if (response.status === 404) throw new RegistryError("MANIFEST_UNKNOWN", { repository, reference, upstream: "not found" });
    // Read no more than a push may send: an upstream's oversized body is refused, never buffered whole.
    const limit = configOf(this.env).MAX_MANIFEST_BYTES;
    const bytes = response.body ? await readAtMost(response.body, limit) : new Uint8Array(0);
    if (!bytes) throw new UpstreamError(502, `the upstream's manifest ${reference} is larger than ${limit} bytes (MAX_MANIFEST_BYTES)`);
    const actual = await digestOf(bytes, digest?.algorithm ?? "sha256");
    const expected = digest?.digest ?? response.headers.get("Docker-Content-Digest") ?? actual;
    if (actual !== expected) throw new UpstreamError(502, `the upstream's manifest ${reference} does not hash to ${expected} (got ${actual})`);
    await this.putFetched(this.target.mirror.prefix, repository, tag, actual, response.headers.get("Content-Type"), bytes);
    return super.resolve(repository, { digest: parseDigest(actual) });
  }

  /** The upstream's tag list, or the local one when the upstream cannot be asked. */
  override async tags(repository: string, limit: number, last: string | null): Promise<string[]> {
    try {
      const query = new URLSearchParams({ n: String(limit), ...(last && { last }) });
      const response = await expectOk(await this.upstream.request("GET", `/v2/${this.target.upstreamName}/tags/list?${query}`, this.scope()), "tags");
      if (response.status === 404) throw new RegistryError("NAME_UNKNOWN", { repository });
      // A tag list of at most 1,000 names fits well within MAX_TAG_LIST_BYTES; anything else is the upstream's failure.
      const listed = (await readJson(response, MAX_TAG_LIST_BYTES, "the upstream's tag list"))?.tags ?? [];
      if (!Array.isArray(listed)) throw new UpstreamError(502, "the upstream's tag list has no list of tags");
      const tags = listed.filter((tag): tag is string => typeof tag === "string" && isTag(tag));
      this.report.status = "miss";
      return tags.filter((tag) => last === null || tag > last).sort().slice(0, limit);
    } catch (error) {
      if (error instanceof UpstreamError) {
        this.report.status = "stale";
        return super.tags(repository, limit, last);
      }
      throw error;
    }
  }

  override async put(): Promise<never> {
    throw readOnly();
  }

  override async delete(): Promise<never> {
    throw readOnly();
  }

  private path(reference: string): string {
    return `/v2/${this.target.upstreamName}/manifests/${reference}`;
  }

  private scope(): string {
    return `repository:${this.target.upstreamName}:pull`;
  }
}

export function readOnly(): RegistryError {
  return new RegistryError("DENIED", null, { message: "this repository is a read-only mirror of an upstream registry" });
}

/** What followers learn of a leader's failure: the upstream's (its status and words), or null for one of its own. */
function failureOf(error: unknown): UpstreamFailure | null {
  if (error instanceof RegistryError && error.code === "MANIFEST_UNKNOWN") return { status: 404, message: "not found", retryAfter: null };
  return upstreamFailure(error);
}

/** A leader's failure as this request's own error: the upstream lacks the manifest, or could not be asked. */
function failureFrom(failure: UpstreamFailure, repository: string, parsed: Reference): unknown {
  if (failure.status === 404) return new RegistryError("MANIFEST_UNKNOWN", { repository, reference: referenceText(parsed), upstream: "not found" });
  return new UpstreamError(failure.status, failure.message, failure.retryAfter);
}

function upstreamDigest(value: string): ParsedDigest {
  try {
    return parseDigest(value);
  } catch {
    throw new UpstreamError(502, `the upstream sent an unusable digest ${value.slice(0, 100)}`);
  }
}

/** Upstream failures as the OCI errors a client understands; registry errors pass through. */
export function toRegistryError(error: unknown, notFound: "MANIFEST_UNKNOWN" | "BLOB_UNKNOWN", repository: string, reference: string): unknown {
  if (!(error instanceof UpstreamError)) return error;
  const detail = { repository, reference, upstream: error.message };
  if (error.status === 429) {
    return new RegistryError("TOOMANYREQUESTS", detail, {
      message: "the upstream registry is rate limiting this mirror",
      headers: { "Retry-After": error.retryAfter ?? "60" },
    });
  }
  if (error.status === 404) return new RegistryError(notFound, detail);
  return new RegistryError("UPSTREAM_UNAVAILABLE", detail);
}
