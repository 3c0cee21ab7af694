// R2 multipart parts written as their bytes arrive, the pieces of a part kept between requests, and request bodies
// read in large chunks: nothing here holds more than a chunk in memory, except the bytes a caller decides to keep.

/**
 * Bytes received but not yet part of a full multipart part, kept in the session's Durable Object storage between
 * requests: a write there is local and transactional, where an R2 put per small chunk would cost a round trip and
 * an operation each. One value per stored chunk, at most PIECE_BYTES (storage takes values up to 2 MB).
 */
export interface Piece {
  key: string;
  size: number;
}

const PIECE_BYTES = 1024 * 1024;
// Durable Object storage takes at most 128 keys per delete.
const KEYS_PER_CALL = 128;

export class PieceStore {
  constructor(private readonly storage: DurableObjectStorage) {}

  /** Stores chunks as pieces numbered from `next` (their keys are unique to the session). */
  async write(chunks: Uint8Array[], next: number): Promise<Piece[]> {
    const pieces: Piece[] = [];
    for (const chunk of chunks) {
      for (let at = 0; at < chunk.byteLength; at += PIECE_BYTES) {
        // A copy of just these bytes: storing a view would store its whole underlying buffer.
        const bytes = chunk.slice(at, at + PIECE_BYTES);
        const piece = { key: `piece:${next + pieces.length}`, size: bytes.byteLength };
        await this.storage.put(piece.key, bytes);
        pieces.push(piece);
      }
    }
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
    this.uploaded = multipart.uploadPart(partNumber, readable);
    // Awaited by whoever finishes the part; an aborted part's rejection is expected and dropped.
    this.uploaded.catch(() => undefined);
  }

  async write(chunk: Uint8Array): Promise<void> {
    await this.inFlight;
    this.inFlight = this.writer.write(chunk);
    this.inFlight.catch(() => undefined); // rethrown by the next write or finish(); dropped by abort()
  }

  /** Ends the part (every byte written) and waits for R2 to take it. */
  async finish(): Promise<R2UploadedPart> {
    await this.inFlight;
    await this.writer.close();
    return this.uploaded;
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
}
