// R2 multipart parts written as their bytes arrive, and stored pieces read back as one stream: nothing here holds
// more than a chunk in memory.

/** A stored piece of an upload: bytes received but not yet part of a full multipart part. */
export interface Piece {
  key: string;
  size: number;
}

// How far writes may run ahead of R2 reading them: enough to keep both sides busy, small next to a part.
const WRITE_AHEAD_BYTES = 1024 * 1024;

/**
 * One multipart part streamed to R2 while it is received: uploadPart reads a FixedLengthStream of exactly the part's
 * size, fed first with the stored pieces the part starts with, then with request bytes.
 */
export class StreamedPart {
  /** R2's answer, once it has read all the bytes. */
  readonly uploaded: Promise<R2UploadedPart>;
  private readonly writable: WritableStream<Uint8Array>;
  private writer: WritableStreamDefaultWriter<Uint8Array> | null = null;

  constructor(multipart: R2MultipartUpload, partNumber: number, size: number) {
    const { readable, writable } = new FixedLengthStream(size, { highWaterMark: WRITE_AHEAD_BYTES });
    this.writable = writable;
    this.uploaded = multipart.uploadPart(partNumber, readable);
    // Awaited by whoever finishes the part; an aborted part's rejection is expected and dropped.
    this.uploaded.catch(() => undefined);
  }

  /** Copies stored pieces into the part, natively (no JavaScript per chunk). Before any write(). */
  async pipeFrom(bucket: R2Bucket, pieces: Piece[]): Promise<void> {
    for (const piece of pieces) {
      await (await readPiece(bucket, piece)).pipeTo(this.writable, { preventClose: true, preventAbort: true, preventCancel: true });
    }
  }

  async write(chunk: Uint8Array): Promise<void> {
    this.writer ??= this.writable.getWriter();
    await this.writer.ready;
    // Not awaited: the next chunk is received and hashed while R2 reads this one. Failures surface in `uploaded`.
    this.writer.write(chunk).catch(() => undefined);
  }

  /** Ends the part (every byte written) and waits for R2 to take it. */
  async finish(): Promise<R2UploadedPart> {
    this.writer ??= this.writable.getWriter();
    await this.writer.close();
    return this.uploaded;
  }

  /** Gives the part up: R2 never records it. */
  async abort(reason: unknown): Promise<void> {
    this.writer ??= this.writable.getWriter();
    await this.writer.abort(reason).catch(() => undefined);
    await this.uploaded.catch(() => undefined);
  }
}

/** Stored pieces, in order, as one stream of known length (what R2's put and uploadPart need). */
export function concatenatedPieces(bucket: R2Bucket, pieces: Piece[]): ReadableStream<Uint8Array> {
  const size = pieces.reduce((sum, piece) => sum + piece.size, 0);
  const { readable, writable } = new FixedLengthStream(size);
  void (async () => {
    for (const piece of pieces) {
      await (await readPiece(bucket, piece)).pipeTo(writable, { preventClose: true });
    }
    await writable.close();
  })().catch((error: unknown) => writable.abort(error).catch(() => undefined));
  return readable;
}

async function readPiece(bucket: R2Bucket, piece: Piece): Promise<ReadableStream<Uint8Array>> {
  const object = await bucket.get(piece.key);
  if (!object) throw new Error(`upload piece ${piece.key} is missing`);
  return object.body;
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
