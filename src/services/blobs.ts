import type { Actor } from "../audit/events";
import { cachedBlob, keepBlob, type Waiter } from "../cache/edge";
import { configOf, type Env } from "../config";
import { RegistryError } from "../errors";
import type { ByteRange } from "../ranges";
import type { ParsedDigest } from "../references";
import { BlobRecords, type BlobRecord } from "../storage/blob-records";
import { findNearby, RequestDatabase } from "../storage/database";
import { blobKey, checksumOption } from "../storage/objects";

/** A blob's bytes, and whether a cache had them (null: not cacheable, streamed from a mirror's upstream). */
export interface OpenedBlob {
  body: ReadableStream;
  cache: "hit" | "miss" | null;
}

const MOUNT_CANDIDATES = 100;
const NO_WAITER: Waiter = { waitUntil: () => undefined };

export class BlobService {
  constructor(
    private readonly env: Env,
    private readonly db: RequestDatabase = RequestDatabase.primary(env.DB),
    private readonly ctx: Waiter = NO_WAITER,
  ) {}

  private get records(): BlobRecords {
    return new BlobRecords(this.db.current);
  }

  /** The blob as seen through a repository: unknown unless it was pushed or mounted there. */
  async stat(repository: string, digest: ParsedDigest): Promise<BlobRecord> {
    const record = await findNearby(this.db, (db) => new BlobRecords(db).find(repository, digest.digest));
    if (!record) throw new RegistryError("BLOB_UNKNOWN", { repository, digest: digest.digest });
    return record;
  }

  /**
   * The bytes of a blob whose link the caller has just read (stat): from a cache when one holds them, else from R2,
   * keeping a copy. A cache is consulted only here, after authorization and the link's D1 read.
   */
  async open(repository: string, record: BlobRecord, range: ByteRange | null): Promise<OpenedBlob> {
    const cached = await cachedBlob(repository, record.digest, range);
    if (cached) return { body: cached, cache: "hit" };
    const body = await this.read(record, range);
    if (range) return { body, cache: "miss" };
    return { body: await keepBlob(repository, record.digest, record.size, body, configOf(this.env).EDGE_CACHE_MAX_BYTES, this.ctx), cache: "miss" };
  }

  private async read(record: BlobRecord, range: ByteRange | null): Promise<ReadableStream> {
    const read = (key: string) => this.env.BLOBS.get(key, range ? { range } : {});
    const object = await read(record.objectKey);
    if (object) return object.body;
    // A record read from a replica may be older than a delete, or than a new upload of the digest under another key.
    const current = this.db.mayLag ? await this.records.findStored(record.digest) : record;
    if (current && current.objectKey !== record.objectKey) {
      const moved = await read(current.objectKey);
      if (moved) return moved.body;
    }
    if (current?.objectKey === record.objectKey) console.error(`blob ${record.digest} has a record but no bytes at ${record.objectKey}`);
    throw new RegistryError("BLOB_UNKNOWN", { digest: record.digest, reason: "deleted" });
  }

  /** Whether open() serves bytes this registry stored and verified (a mirror's first pull streams unverified ones). */
  servesStoredCopy(_record: BlobRecord): boolean {
    return true;
  }

  /** Takes the blob out of the repository; refused while a manifest there references it (that image would break). */
  /** Unlinks a blob from the repository `by` someone (recorded in the audit log with it). */
  async unlink(repository: string, digest: ParsedDigest, by: Actor): Promise<void> {
    const { unlinked, referencedBy } = await this.records.unlink(repository, digest.digest, by);
    if (unlinked) return;
    if (referencedBy) {
      throw new RegistryError("UNSUPPORTED", { repository, digest: digest.digest, referencedBy }, {
        message: `blob ${digest.digest} is referenced by manifest ${referencedBy} in ${repository}: delete that manifest first`,
      });
    }
    throw new RegistryError("BLOB_UNKNOWN", { repository, digest: digest.digest });
  }

  /**
   * Automatic cross-mount (OCI dist-spec end-11 without `from`): from any repository holding the blob that the
   * caller may pull (the first MOUNT_CANDIDATES holders are asked). False, as for a blob stored nowhere, otherwise.
   */
  async mountFromAny(repository: string, digest: ParsedDigest, mayPull: (repository: string) => boolean): Promise<boolean> {
    const holders = await this.records.holders(digest.digest, MOUNT_CANDIDATES);
    const source = holders.find((holder) => holder === repository) ?? holders.find(mayPull);
    return source !== undefined && this.records.mount(repository, digest.digest, source);
  }

  /** Cross-repository mount: true when the blob was linked, false when the client must upload it. */
  async mount(repository: string, digest: ParsedDigest, from: string): Promise<boolean> {
    return this.records.mount(repository, digest.digest, from);
  }

  /**
   * A whole blob in one request body of known length, stored under a fresh key with R2 checking the digest. Bytes
   * already stored under the digest are not trusted to still be there: record() keeps whichever copy its own
   * transaction finds live and deletes the other.
   */
  async putWhole(repository: string, digest: ParsedDigest, body: ReadableStream | null, length: number): Promise<BlobRecord> {
    // Piped natively (a JavaScript transform here halves throughput); the pipe fails if the length is not the declared one.
    const sized = new FixedLengthStream(length);
    const whole = (body ?? new Response(new Uint8Array(0)).body!).pipeTo(sized.writable).then(
      () => true,
      () => false,
    );
    const failed = async (actual: string) =>
      (await whole)
        ? new RegistryError("DIGEST_INVALID", { expected: digest.digest, actual })
        : new RegistryError("SIZE_INVALID", { declared: length }, { message: "the body's length is not the declared length" });
    const key = blobKey(digest);
    try {
      await this.env.BLOBS.put(key, sized.readable, checksumOption(digest));
    } catch (error) {
      // A body that ends short of its length is told only to the stream's reader, R2, in workerd's words.
      if (/did not see all expected bytes/.test(String(error))) {
        throw new RegistryError("SIZE_INVALID", { declared: length }, { message: "the body ended before its declared length" });
      }
      throw await failed("rejected by R2's checksum");
    }
    let winner: BlobRecord;
    try {
      winner = await this.records.record(repository, { digest: digest.digest, size: length, objectKey: key }, configOf(this.env).STORAGE_QUOTA_BYTES);
    } catch (error) {
      await this.env.BLOBS.delete(key);
      throw error;
    }
    if (winner.objectKey !== key) await this.env.BLOBS.delete(key);
    return winner;
  }
}
