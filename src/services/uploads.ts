import { configOf, type Env } from "../config";
import { deserializeError, RegistryError } from "../errors";
import { parseUploadId, type ParsedDigest } from "../references";
import type { BlobRecord } from "../storage/blob-records";
import { BlobService } from "./blobs";
import type { QuotaService } from "./quota";
import { cutOff } from "../uploads/upload-errors";
import type { ChunkExpectation, Outcome } from "../uploads/upload-session";

export class UploadService {
  constructor(private readonly env: Env) {}

  async start(repository: string): Promise<string> {
    const uploadId = crypto.randomUUID();
    await unwrap(this.session(uploadId).begin(uploadId, repository));
    return uploadId;
  }

  status(repository: string, uploadId: string): Promise<number> {
    return unwrap(this.session(uploadId).status(repository));
  }

  append(
    repository: string,
    uploadId: string,
    body: ReadableStream<Uint8Array> | null,
    expect: ChunkExpectation,
  ): Promise<number> {
    return unwrap(this.session(uploadId).append(repository, body, expect));
  }

  async complete(
    repository: string,
    uploadId: string,
    digest: ParsedDigest,
    body: ReadableStream<Uint8Array> | null,
    expect: ChunkExpectation,
    quota: QuotaService,
  ): Promise<BlobRecord> {
    const session = this.session(uploadId);
    // The session's offset is asked for (a Durable Object request) only when something needs it: the early quota
    // check, or telling a whole blob in the PUT (nothing received before it) from a last chunk. A PUT with no body, as
    // docker and skopeo send after their PATCHes, goes straight to the session.
    const whole = body !== null && (expect.start ?? 0) === 0 ? expect.length : undefined;
    const offset = whole !== undefined || quota.enabled ? await unwrap(session.status(repository)) : undefined;
    if (offset !== undefined) await quota.ensureRoom(offset + (expect.length ?? 0));
    if (whole !== undefined && offset === 0) {
      // POST then PUT with the whole blob (OCI end-4a, end-6): nothing to resume, so R2 checks the digest natively
      // instead of the session hashing in JavaScript and re-cutting parts.
      let record: BlobRecord;
      try {
        record = await new BlobService(this.env).putWhole(repository, digest, body, whole);
      } catch (error) {
        // Only a whole body of the wrong digest ends the upload; one cut off leaves it open, at 0, for a resume.
        if (error instanceof RegistryError && error.code === "DIGEST_INVALID") await unwrap(session.cancel(repository));
        if (error instanceof RegistryError && error.code === "SIZE_INVALID") throw cutOff(0, whole);
        throw error;
      }
      // The blob is stored: a session left behind by a failure here holds nothing, and its alarm expires it.
      await unwrap(session.cancel(repository)).catch(() => undefined);
      return record;
    }
    return unwrap(session.complete(repository, digest, body, expect, configOf(this.env).STORAGE_QUOTA_BYTES));
  }

  async cancel(repository: string, uploadId: string): Promise<void> {
    await unwrap(this.session(uploadId).cancel(repository));
  }

  private session(uploadId: string) {
    return this.env.UPLOADS.get(this.env.UPLOADS.idFromName(parseUploadId(uploadId)));
  }
}

async function unwrap<T>(outcome: Promise<Outcome<T>>): Promise<T> {
  const result = await outcome;
  if (!result.ok) throw deserializeError(result.error);
  return result.value;
}
