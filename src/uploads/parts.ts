// R2 multipart parts written as their bytes arrive, the pieces of a part kept between requests, and request bodies
// read in large chunks: nothing here holds more than a chunk in memory, except the bytes a caller decides to keep.
import { step } from "./seams";
import { discard } from "../streams";

/** R2's most parts per multipart upload: with the session's part size, the largest blob an upload can assemble. */
export const R2_MAX_PARTS = 10_000;

/**
 * Bytes received but not yet part of a full multipart part, kept in the session's Durable Object storage between
 * requests: a write there is local and transactional, where an R2 put per small chunk would cost a round trip and
 * an operation each. One value per piece, at most PIECE_BYTES (storage takes values up to 2 MB).
 */
export interface Piece {
  key: string;
  size: number;
}

const PIECE_BYTES = 1024 * 1024;
/**
 * The most pieces a session lists. Past it, the pieces from the first one not full are packed again into full ones
 * (at most partSize / PIECE_BYTES, 32 for a 32 MiB part), so the state stays bounded whatever the chunk sizes, and
 * small chunks are rewritten once per MAX_PIECES requests rather than on every one.
 */
export const MAX_PIECES = 64;
// Durable Object storage takes at most 128 keys per delete.
const KEYS_PER_CALL = 128;

export class PieceStore {
  constructor(private readonly storage: DurableObjectStorage) {}

  /**
   * Appends chunks to the pending pieces, as new pieces numbered from `next` (keys the saved state does not name yet,
   * so a request that fails before its state is saved leaves that state whole). `replaced` are pieces the new list no
   * longer names, to be deleted with the state that drops them.
   */
  async append(pending: Piece[], chunks: Uint8Array[], next: number): Promise<{ pending: Piece[]; next: number; replaced: Piece[] }> {
    const added = await this.pack(chunks, next);
    let all = [...pending, ...added];
    next += added.length;
    if (all.length <= MAX_PIECES) return { pending: all, next, replaced: [] };
    const firstPartial = all.findIndex((piece) => piece.size < PIECE_BYTES);
    const replaced = all.slice(firstPartial);
    const packed = await this.pack(this.read(replaced), next);
    all = [...all.slice(0, firstPartial), ...packed];
    return { pending: all, next: next + packed.length, replaced };
  }

  /** Stores bytes as full pieces (and a last one with the rest) numbered from `next`; one piece in memory at a time. */
  private async pack(source: Iterable<Uint8Array> | AsyncIterable<Uint8Array>, next: number): Promise<Piece[]> {
    const pieces: Piece[] = [];
    let views: Uint8Array[] = [];
    let filled = 0;
    const flush = async () => {
      // A copy of just these bytes, made once: storing a view would store its whole underlying buffer.
      const bytes = new Uint8Array(filled);
      let at = 0;
      for (const view of views) {
        bytes.set(view, at);
        at += view.byteLength;
      }
      const piece = { key: `piece:${next + pieces.length}`, size: filled };
      await this.storage.put(piece.key, bytes);
      pieces.push(piece);
      views = [];
      filled = 0;
    };
    for await (let bytes of source) {
      while (bytes.byteLength > 0) {
        const take = bytes.subarray(0, PIECE_BYTES - filled);
        views.push(take);
        filled += take.byteLength;
        bytes = bytes.subarray(take.byteLength);
        if (filled === PIECE_BYTES) await flush();
      }
    }
    if (filled > 0) await flush();
    return pieces;
  }

  /** The pieces' bytes in order, one piece in memory at a time. */
  async *read(pieces: Piece[]): AsyncGenerator<Uint8Array> {
    for (const piece of pieces) {
      const bytes = await this.storage.get<Uint8Array>(piece.key);
      if (!bytes || bytes.byteLength !== piece.size) throw new Error(`upload piece ${piece.key} is missing`);
      yield bytes;
    }
  }

  async delete(pieces: Piece[]): Promise<void> {
    for (let at = 0; at < pieces.length; at += KEYS_PER_CALL) {
      await this.storage.delete(pieces.slice(at, at + KEYS_PER_CALL).map((piece) => piece.key));
    }
  }

  /** The pieces as one stream of known length (what R2's put and uploadPart need). */
  stream(pieces: Piece[]): ReadableStream<Uint8Array> {
    const size = pieces.reduce((sum, piece) => sum + piece.size, 0);
    const { readable, writable } = new FixedLengthStream(size);
    const writer = writable.getWriter();
    void (async () => {
      for await (const bytes of this.read(pieces)) await writer.write(bytes);
      await writer.close();
    })().catch((error: unknown) => writer.abort(error).catch(() => undefined));
    return readable;
  }
}

/**
 * One multipart part streamed to R2 while it is received: uploadPart reads a FixedLengthStream of exactly the part's
 * size, fed first with the stored pieces the part starts with, then with request bytes.
 */
export class StreamedPart {
  /** R2's answer, once it has read all the bytes. */
  readonly uploaded: Promise<R2UploadedPart>;
  private readonly writer: WritableStreamDefaultWriter<Uint8Array>;
  // The write R2 has not taken yet: one chunk in flight while the next is received and hashed.
  private inFlight: Promise<void> = Promise.resolve();

  constructor(multipart: R2MultipartUpload, partNumber: number, size: number) {
    const { readable, writable } = new FixedLengthStream(size);
    this.writer = writable.getWriter();
    this.uploaded = step("r2.uploadPart", () => multipart.uploadPart(partNumber, readable));
    // A part R2 refused takes no more bytes: the writes waiting on it fail instead of waiting for ever. Awaited by
    // whoever finishes the part; an aborted part's rejection is expected and dropped.
    this.uploaded.catch((error: unknown) => this.writer.abort(error).catch(() => undefined));
  }

  async write(chunk: Uint8Array): Promise<void> {
    await this.taken();
    this.inFlight = this.writer.write(chunk);
    this.inFlight.catch(() => undefined); // rethrown by the next write or finish(); dropped by abort()
  }

  /** Ends the part (every byte written) and waits for R2 to take it. */
  async finish(): Promise<R2UploadedPart> {
    await this.taken();
    await this.writer.close();
    return this.uploaded;
  }

  /** The last write, taken; when it failed because R2 did, R2's error. */
  private async taken(): Promise<void> {
    await this.inFlight.catch(async (error: unknown) => {
      await this.uploaded;
      throw error;
    });
  }

  /** Gives the part up: R2 never records it. */
  async abort(reason: unknown): Promise<void> {
    await this.writer.abort(reason).catch(() => undefined);
    await this.uploaded.catch(() => undefined);
  }
}

// Request bodies arrive in chunks of a few KiB; reading them in 1 MiB pieces costs far fewer trips through JavaScript
// (hashing, splitting, writing to R2) per byte.
const READ_BYTES = 1024 * 1024;

/** Reads a body in large chunks where the runtime allows it (workerd's readAtLeast), else as it comes. */
export class BodyReader {
  private readonly byob: ReadableStreamBYOBReader | null = null;
  private readonly plain: ReadableStreamDefaultReader<Uint8Array> | null = null;

  constructor(body: ReadableStream<Uint8Array>) {
    try {
      this.byob = body.getReader({ mode: "byob" });
    } catch {
      this.plain = body.getReader(); // not a byte stream
    }
  }

  /** The next bytes, or null at the end. Throws when the body breaks off. */
  async read(): Promise<Uint8Array | null> {
    if (this.byob) {
      const { done, value } = await this.byob.readAtLeast(READ_BYTES, new Uint8Array(READ_BYTES));
      if (value && value.byteLength > 0) return value;
      return done ? null : this.read();
    }
    const { done, value } = await this.plain!.read();
    return done ? null : value;
  }

  async cancel(): Promise<void> {
    await (this.byob ?? this.plain)!.cancel().catch(() => undefined);
  }

  /** Reads and drops the rest, up to DRAIN_LIMIT, so that the client reads the refusal (see streams.ts drain). */
  drain(): Promise<void> {
    return discard(() => this.read(), () => this.cancel());
  }
}
