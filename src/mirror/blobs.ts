import type { Waiter } from "../cache/edge";
import { configOf, type Env } from "../config";
import { digestOfStream } from "../digest";
import { RegistryError } from "../errors";
import type { ByteRange } from "../ranges";
import type { ParsedDigest } from "../references";
import { BlobService, type OpenedBlob } from "../services/blobs";
import { BlobRecords, type BlobRecord } from "../storage/blob-records";
import { MirrorContentRecords } from "../storage/mirror-records";
import { blobKey, checksumOption } from "../storage/objects";
import { FetchLease, upstreamFailure } from "./blob-fetch";
import type { MirrorTarget } from "./config";
import { readOnly, toRegistryError } from "./manifests";
import type { MirrorReport } from "./status";
import { expectOk, Upstream, UpstreamError } from "./upstream";

// A leader's lease on a blob's fetch: renewed while bytes arrive, so one whose isolate vanished frees it this soon.
const BLOB_LEASE_MS = 10_000;
// How long a request waits for another's download of the same blob before streaming it from upstream itself: long
// enough that the config and small layers of a popular image are fetched once, short enough that nobody waits out a
// large layer (also never past timeoutSeconds).
const FOLLOWER_WAIT_MS = 2_000;

/**
 * Blobs of a mirrored repository: served from R2 once stored; on a miss, streamed from the upstream to the client
 * while being stored, and recorded only once R2 has checked the bytes against the digest.
 */
export class MirrorBlobService extends BlobService {
  private readonly blobRecords: BlobRecords;
  /** Blobs this request found upstream but not here, by digest. */
  private readonly remote = new Map<string, { repository: string; digest: ParsedDigest }>();

  constructor(
    private readonly mirrorEnv: Env,
    private readonly target: MirrorTarget,
    private readonly upstream: Upstream,
    private readonly fetchCtx: Waiter,
    private readonly report: MirrorReport,
  ) {
    super(mirrorEnv, undefined, fetchCtx);
    this.blobRecords = new BlobRecords(mirrorEnv.DB);
  }

  override async stat(repository: string, digest: ParsedDigest): Promise<BlobRecord> {
    const local = await this.blobRecords.find(repository, digest.digest);
    if (local) return this.served("hit", local);
    try {
      const head = await expectOk(await this.upstream.request("HEAD", this.path(digest), this.scope()), digest.digest);
      if (head.status === 404) throw new RegistryError("BLOB_UNKNOWN", { repository, digest: digest.digest, upstream: "not found" });
      // The upstream vouches that this repository holds the blob: bytes stored for another repository will do.
      const stored = await this.blobRecords.findStored(digest.digest);
      const linked = stored && (await this.blobRecords.link(repository, stored));
      if (linked) {
        await this.counted(repository, linked);
        return this.served("revalidated", linked);
      }
      const size = Number(head.headers.get("Content-Length"));
      if (!Number.isSafeInteger(size) || size < 0) throw new UpstreamError(502, "the upstream gave no blob size");
      this.remote.set(digest.digest, { repository, digest });
      this.report.status = "miss";
      return { digest: digest.digest, size, objectKey: blobKey(digest) };
    } catch (error) {
      throw toRegistryError(error, "BLOB_UNKNOWN", repository, digest.digest);
    }
  }

  override async open(repository: string, record: BlobRecord, range: ByteRange | null): Promise<OpenedBlob> {
    const remote = this.remote.get(record.digest);
    if (!remote) return super.open(repository, record, range);
    try {
      if (range) return { body: await this.proxyRange(remote.digest, range), cache: null };
      const fill = await this.fill(remote.repository, remote.digest);
      switch (fill.kind) {
        case "stored":
          return super.open(remote.repository, fill.record, null);
        case "lead":
          return { body: await this.lead(fill.lease, remote.repository, remote.digest, record), cache: null };
        case "pass-through":
          return { body: await this.passThrough(remote.digest, record.size), cache: null };
      }
    } catch (error) {
      throw toRegistryError(error, "BLOB_UNKNOWN", remote.repository, record.digest);
    }
  }

  /** A range of a blob not stored yet: passed through, not stored. */
  private async proxyRange(digest: ParsedDigest, range: ByteRange): Promise<ReadableStream> {
    const response = await expectOk(
      await this.upstream.request("GET", this.path(digest), this.scope(), { Range: `bytes=${range.offset}-${range.offset + range.length - 1}` }),
      digest.digest,
    );
    if (response.status !== 206 || !response.body) {
      await response.body?.cancel();
      throw new UpstreamError(502, `the upstream answered a range with ${response.status}`);
    }
    return response.body.pipeThrough(new FixedLengthStream(range.length));
  }

  /** Which of the three ways this request gets a blob that is not stored here yet. */
  private async fill(repository: string, digest: ParsedDigest): Promise<Fill> {
    const lease = FetchLease.of(this.mirrorEnv, `blob ${digest.digest}`, BLOB_LEASE_MS, this.fetchCtx);
    const first = await lease.claim(Math.min(FOLLOWER_WAIT_MS, this.target.mirror.timeoutSeconds * 1000));
    if (first.role === "follower" && first.outcome?.kind === "stored") {
      const stored = await this.linkStored(repository, digest);
      if (stored) return { kind: "stored", record: stored };
    }
    // The leader failed, vanished, or is still at it: lead in its place if the lease is free, else do without it.
    const claim = first.role === "leader" ? first : await lease.claim(0);
    if (claim.role === "follower") return { kind: "pass-through" };
    try {
      // Another request may have stored it between this one's stat() and its claim.
      const stored = await this.linkStored(repository, digest);
      if (stored) {
        lease.release({ kind: "stored" });
        return { kind: "stored", record: stored };
      }
    } catch (error) {
      lease.release({ kind: "failed", error: null });
      throw error;
    }
    return { kind: "lead", lease };
  }

  /**
   * Streams the blob to the client while storing it; recorded once R2 has checked it against the digest. The lease is
   * renewed as bytes arrive and released however it ends (stored, or failed: nothing recorded, the next request leads).
   */
  private async lead(lease: FetchLease, repository: string, digest: ParsedDigest, record: BlobRecord): Promise<ReadableStream> {
    try {
      const body = await this.whole(digest, record.size);
      lease.progress();
      const { client, done } = streamAndStore(body, record.size, (bytes) => this.mirrorEnv.BLOBS.put(record.objectKey, bytes, checksumOption(digest)), () => lease.progress());
      this.fetchCtx.waitUntil(
        done
          .then(() => this.record(repository, record))
          .then(
            () => lease.release({ kind: "stored" }),
            (error) => {
              console.error(JSON.stringify({ event: "mirror-blob-not-stored", digest: digest.digest, error: String(error) }));
              lease.release({ kind: "failed", error: upstreamFailure(error) });
            },
          ),
      );
      return client;
    } catch (error) {
      lease.release({ kind: "failed", error: upstreamFailure(error) });
      throw error;
    }
  }

  /** Records bytes just stored under a fresh key; a copy recorded first by another request wins, and ours goes. */
  private async record(repository: string, record: BlobRecord): Promise<void> {
    let winner: BlobRecord;
    try {
      winner = await this.blobRecords.record(repository, record, configOf(this.mirrorEnv).STORAGE_QUOTA_BYTES);
    } catch (error) {
      await this.mirrorEnv.BLOBS.delete(record.objectKey);
      throw error;
    }
    if (winner.objectKey !== record.objectKey) await this.mirrorEnv.BLOBS.delete(record.objectKey);
    await this.counted(repository, winner);
  }

  /** Another request is downloading the blob: this one streams it from upstream too, checking its digest, storing nothing. */
  private async passThrough(digest: ParsedDigest, size: number): Promise<ReadableStream> {
    const body = await this.whole(digest, size);
    const { client, done } = streamAndStore(body, size, async (bytes) => {
      const actual = await digestOfStream(bytes, digest.algorithm);
      if (actual !== digest.digest) throw new UpstreamError(502, `the upstream's blob does not hash to ${digest.digest} (got ${actual})`);
    });
    this.fetchCtx.waitUntil(done.catch(() => undefined));
    return client;
  }

  /** The upstream's body of the whole blob, of the size its HEAD gave. */
  private async whole(digest: ParsedDigest, size: number): Promise<ReadableStream<Uint8Array>> {
    const response = await expectOk(await this.upstream.request("GET", this.path(digest), this.scope()), digest.digest);
    if (response.status === 404 || !response.body) throw new UpstreamError(404, "the upstream no longer has the blob");
    const declared = response.headers.get("Content-Length");
    if (declared !== null && Number(declared) !== size) {
      await response.body.cancel();
      throw new UpstreamError(502, `the upstream sent ${declared} bytes, not ${size}`);
    }
    return response.body;
  }

  private async linkStored(repository: string, digest: ParsedDigest): Promise<BlobRecord | null> {
    const stored = await this.blobRecords.findStored(digest.digest);
    const linked = stored && (await this.blobRecords.link(repository, stored));
    if (linked) await this.counted(repository, linked);
    return linked;
  }

  /** A blob just linked here counts toward the mirror's maxBytes, for the mirrored manifests that reference it. */
  private counted(repository: string, record: BlobRecord): Promise<void> {
    return new MirrorContentRecords(this.mirrorEnv.DB).addBlob(this.target.mirror.prefix, repository, record.digest, record.size);
  }

  private served(status: "hit" | "revalidated", record: BlobRecord): BlobRecord {
    this.report.status = status;
    this.report.storedSize = record.size;
    return record;
  }

  override servesStoredCopy(record: BlobRecord): boolean {
    return !this.remote.has(record.digest);
  }

  override async unlink(): Promise<never> {
    throw readOnly();
  }

  override async putWhole(): Promise<never> {
    throw readOnly();
  }

  private path(digest: ParsedDigest): string {
    return `/v2/${this.target.upstreamName}/blobs/${digest.digest}`;
  }

  private scope(): string {
    return `repository:${this.target.upstreamName}:pull`;
  }
}

/**
 * Copies a stream to a client and to a sink (R2, or a digest check) at the pace of the slower of the two, so memory
 * stays at a chunk or two whatever the blob's size. The client's last chunk is held back until the sink has taken the
 * whole (R2 checked the digest): a corrupt or cut-off upstream body ends the client's download with an error, never
 * as a complete wrong blob. A client that goes away does not stop the sink. `done` settles once both are finished.
 */
export function streamAndStore(
  source: ReadableStream<Uint8Array>,
  size: number,
  sink: (body: ReadableStream<Uint8Array>) => Promise<unknown>,
  onChunk: () => void = () => undefined,
): { client: ReadableStream<Uint8Array>; done: Promise<void> } {
  const toSink = new FixedLengthStream(size);
  const toClient = new FixedLengthStream(size);
  const sinking = sink(toSink.readable);
  // Awaited below; a sink failing early must not be an unhandled rejection meanwhile.
  sinking.catch(() => undefined);
  const done = (async () => {
    const reader = source.getReader();
    const sinkWriter = toSink.writable.getWriter();
    const clientWriter = toClient.writable.getWriter();
    let clientGone = false;
    const toClientWrite = async (chunk: Uint8Array) => {
      if (!clientGone) await clientWriter.write(chunk).catch(() => (clientGone = true));
    };
    let held: Uint8Array | null = null;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        onChunk();
        const writes: Promise<unknown>[] = [sinkWriter.write(value)];
        if (held) writes.push(toClientWrite(held));
        held = value;
        await Promise.all(writes);
      }
      await sinkWriter.close();
      await sinking;
      if (held) await toClientWrite(held);
      if (!clientGone) await clientWriter.close().catch(() => undefined);
    } catch (error) {
      await Promise.all([
        sinkWriter.abort(error).catch(() => undefined),
        clientWriter.abort(error).catch(() => undefined),
        reader.cancel(error).catch(() => undefined),
      ]);
      throw error;
    }
  })();
  return { client: toClient.readable, done };
}

/** What a request for a blob not stored here yet does. */
type Fill =
  // Nobody else is fetching it: this request streams it to its client while storing it.
  | { kind: "lead"; lease: FetchLease }
  // Another request stored it meanwhile (or while this one waited, at most FOLLOWER_WAIT_MS): served from R2.
  | { kind: "stored"; record: BlobRecord }
  // Another request is still downloading it: this one streams it from upstream too and stores nothing.
  | { kind: "pass-through" };
