import { DurableObject } from "cloudflare:workers";
import { configOf, type Config, type Env } from "../config";
import { digestOfStream, ResumableSha256, type HashState } from "../digest";
import { RegistryError, serializeError, type SerializedError } from "../errors";
import type { ParsedDigest } from "../references";
import { BlobRecords, type BlobRecord } from "../storage/blob-records";
import { blobKey, checksumOption, uploadObjectKey } from "../storage/objects";
import { BodyReader, PieceStore, StreamedPart, type Piece } from "./parts";

/** Everything an upload is, in DO storage, so that it survives eviction between any two requests. */
interface SessionState {
  uploadId: string;
  repository: string;
  /** Bytes received and durable: in uploaded parts or pending pieces. */
  offset: number;
  multipartId: string | null;
  parts: R2UploadedPart[];
  /** The start of the next part, in this object's storage beside the state. */
  pending: Piece[];
  nextPiece: number;
  hash: HashState | undefined;
  touchedAt: number;
}

export interface ChunkExpectation {
  /** Where the chunk claims to start (Content-Range); it must be the current offset. */
  start?: number;
  /** How many bytes the request declares (Content-Length or Content-Range); a longer body is refused. */
  length?: number;
}

export type Outcome<T> = { ok: true; value: T } | { ok: false; error: SerializedError };

const STATE_KEY = "session";

/**
 * One upload. The only writer of its bytes: it hashes them as they pass, re-cuts them into equal-sized R2
 * multipart parts whatever the client's chunk sizes, and keeps the remainder in its own storage until the next request.
 */
export class UploadSession extends DurableObject<Env> {
  // RPC calls interleave at every await on I/O; uploads are sequential, so requests take turns.
  private turn: Promise<unknown> = Promise.resolve();

  private get config(): Config {
    return configOf(this.env);
  }

  private get pieces(): PieceStore {
    return new PieceStore(this.ctx.storage);
  }

  begin(uploadId: string, repository: string): Promise<Outcome<number>> {
    return this.exclusive(async () => {
      const state: SessionState = {
        uploadId,
        repository,
        offset: 0,
        multipartId: null,
        parts: [],
        pending: [],
        nextPiece: 0,
        hash: undefined,
        touchedAt: Date.now(),
      };
      await this.save(state);
      return 0;
    });
  }

  status(repository: string): Promise<Outcome<number>> {
    return this.exclusive(async () => (await this.load(repository)).offset);
  }

  append(
    repository: string,
    body: ReadableStream<Uint8Array> | null,
    expect: ChunkExpectation,
  ): Promise<Outcome<number>> {
    return this.exclusive(async () => (await this.receive(await this.load(repository), body, expect)).offset);
  }

  /** Takes the last chunk (if any), checks the digest, assembles the blob in R2 and records it in D1. */
  complete(
    repository: string,
    digest: ParsedDigest,
    body: ReadableStream<Uint8Array> | null,
    expect: ChunkExpectation,
  ): Promise<Outcome<BlobRecord>> {
    return this.exclusive(async () => {
      let state = await this.load(repository);
      if (body) state = await this.receive(state, body, expect);
      if (digest.algorithm === "sha256" && ResumableSha256.from(state.hash).digest() !== digest.digest) {
        await this.discard(state);
        throw mismatch(digest, ResumableSha256.from(state.hash).digest());
      }
      const blobs = new BlobRecords(this.env.DB);
      // Bytes already stored under this digest are linked, not stored twice: the hash above proved the client has them.
      const stored = digest.algorithm === "sha256" ? await blobs.findStored(digest.digest) : null;
      let record: BlobRecord;
      try {
        // Linked only if still there; otherwise (just collected) this upload's own bytes are stored.
        const linked = stored ? await blobs.link(repository, stored) : null;
        record = linked ?? (await this.recordAssembled(repository, await this.assemble(state, digest)));
      } catch (error) {
        if (error instanceof RegistryError) await this.discard(state);
        throw error;
      }
      await this.discard(state);
      return record;
    });
  }

  cancel(repository: string): Promise<Outcome<null>> {
    return this.exclusive(async () => {
      await this.discard(await this.load(repository));
      return null;
    });
  }

  override async alarm(): Promise<void> {
    const state = await this.ctx.storage.get<SessionState>(STATE_KEY);
    if (!state) return;
    const expiresAt = state.touchedAt + this.config.UPLOAD_TTL_SECONDS * 1000;
    if (Date.now() < expiresAt) {
      await this.ctx.storage.setAlarm(expiresAt);
      return;
    }
    await this.discard(state);
  }

  private async exclusive<T>(work: () => Promise<T>): Promise<Outcome<T>> {
    const run = this.turn.then(work);
    this.turn = run.catch(() => undefined);
    try {
      return { ok: true, value: await run };
    } catch (error) {
      if (error instanceof RegistryError) return { ok: false, error: serializeError(error) };
      throw error;
    }
  }

  private async load(repository: string): Promise<SessionState> {
    const state = await this.ctx.storage.get<SessionState>(STATE_KEY);
    // An upload id is bound to the repository it was started in.
    if (!state || state.repository !== repository) throw new RegistryError("BLOB_UPLOAD_UNKNOWN", { repository });
    return state;
  }

  private async save(state: SessionState): Promise<void> {
    await this.ctx.storage.put(STATE_KEY, state);
    await this.ctx.storage.setAlarm(state.touchedAt + this.config.UPLOAD_TTL_SECONDS * 1000);
  }

  /**
   * Streams a request body into the session, re-cut into parts of exactly UPLOAD_PART_BYTES. A part that the body is
   * sure to fill (its declared length says so) streams straight into R2 as it arrives; bytes that will not fill a
   * part are kept and stored as a piece; a body of unknown length streams into its part and keeps a copy in case it
   * ends first. So at most one part's worth of the body is in memory, and R2 takes one part while the next arrives.
   * The new state is saved once, at the end: a refused chunk leaves the session as it was. A body cut off by the
   * client keeps what is stored (all of it, except the bytes of a part that was streaming without a copy); the
   * client resumes from the offset reported.
   */
  private async receive(
    committed: SessionState,
    body: ReadableStream<Uint8Array> | null,
    expect: ChunkExpectation,
  ): Promise<SessionState> {
    if (expect.start !== undefined && expect.start !== committed.offset) {
      throw outOfOrder(committed.offset, `chunk starts at ${expect.start}`);
    }
    const { UPLOAD_PART_BYTES: partSize, MAX_BODY_BYTES: maxBody } = this.config;
    const state: SessionState = { ...committed, parts: [...committed.parts], pending: [...committed.pending] };
    const hasher = ResumableSha256.from(state.hash);
    const consumed: Piece[] = [];
    // Parts fully written whose upload R2 may still be finishing, in part order: at most one besides the open part.
    const finishing: Promise<R2UploadedPart>[] = [];
    let open: OpenPart | null = null;
    // Where the open part began: what the session falls back to if that part is lost.
    let checkpoint = { received: 0, hash: state.hash };
    let received = 0;

    const openPart = async (): Promise<OpenPart> => {
      const filled = state.pending.reduce((sum, piece) => sum + piece.size, 0);
      const declaredLeft = expect.length === undefined ? undefined : expect.length - received;
      checkpoint = { received, hash: hasher.save() };
      if (declaredLeft !== undefined && filled + declaredLeft < partSize) {
        return { filled, pieces: state.pending, streamed: null, kept: [], keptSize: 0 };
      }
      const streamed = await this.startPart(committed, state, finishing.length, state.pending);
      return { filled, pieces: state.pending, streamed, kept: declaredLeft === undefined ? [] : null, keptSize: 0 };
    };

    const closePart = async (part: OpenPart) => {
      // A body that outran its declared length: its kept bytes go up as the part after all.
      const streamed = part.streamed ?? (await this.startPart(committed, state, finishing.length, part.pieces, part.kept ?? []));
      const finished = streamed.finish();
      finished.catch(() => undefined); // awaited below, unless the request fails first
      finishing.push(finished);
      if (finishing.length > 1) state.parts.push(await finishing.shift()!);
      consumed.push(...part.pieces);
      state.pending = [];
    };

    const reader = body ? new BodyReader(body) : null;
    try {
      while (reader) {
        let chunk: Uint8Array | null;
        try {
          chunk = await reader.read();
        } catch {
          break; // cut off by the client: keep what was stored
        }
        if (!chunk) break;
        if (received + chunk.byteLength > maxBody) {
          await reader.cancel();
          throw tooLarge(maxBody);
        }
        while (chunk.byteLength > 0) {
          open ??= await openPart();
          const take = chunk.subarray(0, partSize - open.filled);
          chunk = chunk.subarray(take.byteLength);
          hasher.update(take);
          if (open.kept) {
            open.kept.push(take);
            open.keptSize += take.byteLength;
          }
          await open.streamed?.write(take);
          open.filled += take.byteLength;
          received += take.byteLength;
          if (open.filled === partSize) {
            const full = open;
            open = null;
            await closePart(full);
          }
        }
      }
      // A body shorter than declared was cut off (the runtime does not always report that as an error) and keeps what
      // was stored, like any other; one longer than declared is refused.
      if (expect.length !== undefined && received > expect.length) {
        throw new RegistryError(
          "SIZE_INVALID",
          { declared: expect.length, received },
          { message: "the body's length is not the declared length" },
        );
      }
      let keep: { received: number; hash: HashState | undefined } = { received, hash: hasher.save() };
      if (open) {
        const part: OpenPart = open;
        open = null;
        await part.streamed?.abort(new Error("the body ended before the part was full"));
        if (part.kept && part.keptSize > 0) {
          const stored = await this.pieces.write(part.kept, state.nextPiece);
          state.pending.push(...stored);
          state.nextPiece += stored.length;
        } else if (!part.kept) {
          // Cut off while streaming a part with no copy: the session keeps what was stored before that part.
          keep = checkpoint;
        }
      }
      for (const uploaded of finishing.splice(0)) state.parts.push(await uploaded);
      state.offset += keep.received;
      state.hash = keep.hash;
    } finally {
      await open?.streamed?.abort(new Error("the request failed"));
    }
    state.touchedAt = Date.now();
    await this.save(state);
    await this.pieces.delete(consumed);
    return state;
  }

  /** Opens the next multipart part as a stream into R2 and feeds it the stored pieces (and kept bytes) it begins with. */
  private async startPart(
    committed: SessionState,
    state: SessionState,
    alreadyFinishing: number,
    pieces: Piece[],
    kept: Uint8Array[] = [],
  ): Promise<StreamedPart> {
    const multipart = await this.multipart(committed, state);
    const part = new StreamedPart(multipart, state.parts.length + alreadyFinishing + 1, this.config.UPLOAD_PART_BYTES);
    try {
      for await (const bytes of this.pieces.read(pieces)) await part.write(bytes);
      for (const chunk of kept) await part.write(chunk);
    } catch (error) {
      await part.abort(error);
      throw error;
    }
    return part;
  }

  /** The session's R2 multipart upload, created on its first full part and saved at once so it can be aborted. */
  private async multipart(committed: SessionState, state: SessionState): Promise<R2MultipartUpload> {
    const key = uploadObjectKey(state.uploadId);
    if (state.multipartId) return this.env.BLOBS.resumeMultipartUpload(key, state.multipartId);
    const created = await this.env.BLOBS.createMultipartUpload(key);
    state.multipartId = committed.multipartId = created.uploadId;
    await this.ctx.storage.put(STATE_KEY, committed);
    return created;
  }

  /** Puts the received bytes together as one R2 object, verified against the digest. */
  private async assemble(state: SessionState, digest: ParsedDigest): Promise<BlobRecord> {
    const record = { digest: digest.digest, size: state.offset };
    const tail = () => this.pieces.stream(state.pending);
    if (state.parts.length === 0) {
      // Small blobs skip multipart: one put, content addressed, with R2 checking the hash.
      const key = blobKey(digest);
      try {
        await this.env.BLOBS.put(key, tail(), checksumOption(digest));
      } catch {
        throw mismatch(digest, "computed by R2");
      }
      return { ...record, objectKey: key };
    }
    const multipart = await this.multipart(state, state);
    const parts = [...state.parts];
    if (state.pending.length > 0) {
      const last = await multipart.uploadPart(parts.length + 1, tail());
      parts.push({ partNumber: last.partNumber, etag: last.etag });
    }
    await multipart.complete(parts);
    state.multipartId = null;
    const key = uploadObjectKey(state.uploadId);
    if (digest.algorithm !== "sha256") {
      const object = await this.env.BLOBS.get(key);
      const actual = object ? await digestOfStream(object.body, digest.algorithm) : "missing";
      if (actual !== digest.digest) {
        await this.env.BLOBS.delete(key);
        throw mismatch(digest, actual);
      }
    }
    return { ...record, objectKey: key };
  }

  private async recordAssembled(repository: string, assembled: BlobRecord): Promise<BlobRecord> {
    const winner = await new BlobRecords(this.env.DB).record(repository, assembled, this.config.STORAGE_QUOTA_BYTES);
    // Another upload of the same digest was recorded first: its bytes serve, ours were never referenced.
    if (winner.objectKey !== assembled.objectKey) await this.env.BLOBS.delete(assembled.objectKey);
    return winner;
  }

  /** Forgets the session and everything it stored that no blob record points to. */
  private async discard(state: SessionState): Promise<void> {
    if (state.multipartId) {
      await this.env.BLOBS.resumeMultipartUpload(uploadObjectKey(state.uploadId), state.multipartId)
        .abort()
        .catch(() => undefined);
    }
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
  }
}

/** A part being received: how full it is, the stored pieces it starts with, and where its request bytes go. */
interface OpenPart {
  filled: number;
  pieces: Piece[];
  /** Streaming into R2, or null while the bytes are only kept (they will not fill the part). */
  streamed: StreamedPart | null;
  /** Copies of the request bytes, kept unless the declared length guarantees the part fills. */
  kept: Uint8Array[] | null;
  keptSize: number;
}

function mismatch(digest: ParsedDigest, actual: string): RegistryError {
  return new RegistryError("DIGEST_INVALID", { expected: digest.digest, actual });
}

export function outOfOrder(offset: number, reason: string): RegistryError {
  return new RegistryError(
    "RANGE_INVALID",
    { offset, reason },
    { message: "chunk is out of order", headers: { Range: rangeHeader(offset) } },
  );
}

export function tooLarge(limit: number): RegistryError {
  return new RegistryError(
    "REQUEST_TOO_LARGE",
    { limit },
    {
      message: `request body is larger than this registry accepts (${limit} bytes): upload in chunks of at most that size`,
    },
  );
}

/** The Range header of an upload: the inclusive range received, "0-0" when nothing was (as distribution does). */
export function rangeHeader(offset: number): string {
  return `0-${Math.max(offset - 1, 0)}`;
}
