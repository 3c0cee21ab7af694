import type { Waiter } from "../cache/edge";
import { configOf, type Env } from "../config";
import { RegistryError } from "../errors";
import type { ByteRange } from "../ranges";
import type { ParsedDigest } from "../references";
import { BlobService, type OpenedBlob } from "../services/blobs";
import { BlobRecords, type BlobRecord } from "../storage/blob-records";
import { blobKey, checksumOption } from "../storage/objects";
import type { MirrorTarget } from "./config";
import { readOnly, toRegistryError } from "./manifests";
import { expectOk, Upstream, UpstreamError } from "./upstream";

// A leader has this long to stream a blob from upstream before another request may try.
const FETCH_LEASE_MS = 10 * 60 * 1000;

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
  ) {
    super(mirrorEnv, undefined, fetchCtx);
    this.blobRecords = new BlobRecords(mirrorEnv.DB);
  }

  override async stat(repository: string, digest: ParsedDigest): Promise<BlobRecord> {
    const local = await this.blobRecords.find(repository, digest.digest);
    if (local) return local;
    try {
      const head = await expectOk(await this.upstream.request("HEAD", this.path(digest), this.scope()), digest.digest);
      if (head.status === 404) throw new RegistryError("BLOB_UNKNOWN", { repository, digest: digest.digest, upstream: "not found" });
      // The upstream vouches that this repository holds the blob: bytes stored for another repository will do.
      const stored = await this.blobRecords.findStored(digest.digest);
      const linked = stored && (await this.blobRecords.link(repository, stored));
      if (linked) return linked;
      const size = Number(head.headers.get("Content-Length"));
      if (!Number.isSafeInteger(size) || size < 0) throw new UpstreamError(502, "the upstream gave no blob size");
      this.remote.set(digest.digest, { repository, digest });
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
      return await this.fetchAndStore(remote.repository, remote.digest, record);
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
    if (response.status !== 206 || !response.body) throw new UpstreamError(502, `the upstream answered a range with ${response.status}`);
    return response.body.pipeThrough(new FixedLengthStream(range.length));
  }

  private async fetchAndStore(repository: string, digest: ParsedDigest, record: BlobRecord): Promise<OpenedBlob> {
    const coordinator = this.mirrorEnv.MIRROR_FETCHES.get(this.mirrorEnv.MIRROR_FETCHES.idFromName(digest.digest));
    const { leader } = await coordinator.claim(FETCH_LEASE_MS);
    if (!leader) {
      await coordinator.wait(FETCH_LEASE_MS);
      const stored = await this.blobRecords.findStored(digest.digest);
      const linked = stored && (await this.blobRecords.link(repository, stored));
      if (linked) return super.open(repository, linked, null);
    }
    let released = false;
    const release = () => {
      if (!released) this.fetchCtx.waitUntil(coordinator.release());
      released = true;
    };
    try {
      const response = await expectOk(await this.upstream.request("GET", this.path(digest), this.scope()), digest.digest);
      if (response.status === 404 || !response.body) throw new UpstreamError(404, "the upstream no longer has the blob");
      const declared = response.headers.get("Content-Length");
      if (declared !== null && Number(declared) !== record.size) throw new UpstreamError(502, `the upstream sent ${declared} bytes, not ${record.size}`);
      const { client, stored } = streamAndStore(response.body, record.size, (body) =>
        this.mirrorEnv.BLOBS.put(record.objectKey, body, checksumOption(digest)),
      );
      this.fetchCtx.waitUntil(
        stored
          .then(() => this.blobRecords.record(repository, record, configOf(this.mirrorEnv).STORAGE_QUOTA_BYTES))
          .catch((error) => console.error(JSON.stringify({ event: "mirror-blob-not-stored", digest: digest.digest, error: String(error) })))
          .finally(release),
      );
      return { body: client, cache: null };
    } catch (error) {
      release();
      throw error;
    }
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
 * Copies a stream to a client and to storage at the pace of the slower of the two, so memory stays at a chunk or
 * two whatever the blob's size. A client that goes away does not stop the storing.
 */
export function streamAndStore(
  source: ReadableStream<Uint8Array>,
  size: number,
  store: (body: ReadableStream<Uint8Array>) => Promise<unknown>,
): { client: ReadableStream<Uint8Array>; stored: Promise<void> } {
  const toStore = new FixedLengthStream(size);
  const toClient = new FixedLengthStream(size);
  const storing = store(toStore.readable);
  const pumping = (async () => {
    const reader = source.getReader();
    const storeWriter = toStore.writable.getWriter();
    const clientWriter = toClient.writable.getWriter();
    let clientGone = false;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        const writes: Promise<unknown>[] = [storeWriter.write(value)];
        if (!clientGone) writes.push(clientWriter.write(value).catch(() => (clientGone = true)));
        await Promise.all(writes);
      }
      await storeWriter.close();
      if (!clientGone) await clientWriter.close().catch(() => undefined);
    } catch (error) {
      await Promise.all([storeWriter.abort(error).catch(() => undefined), clientWriter.abort(error).catch(() => undefined)]);
      throw error;
    }
  })();
  return { client: toClient.readable, stored: Promise.all([pumping, storing]).then(() => undefined) };
}
