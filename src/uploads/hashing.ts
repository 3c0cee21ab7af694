import { ResumableSha256, toHex, type HashState } from "../digest";
import type { ChunkExpectation } from "./receive";
import type { Receiving } from "./states";

/** Where the hash stood after `received` bytes of a request: what the session keeps if the body ends there. */
export interface HashPoint {
  received: number;
  hash: HashState | undefined;
}

/**
 * How one request's bytes go into the session's SHA-256. A body of unknown length that starts the blob is hashed by
 * the runtime (crypto.DigestStream, native code): such a body is nearly always the whole blob, and its hash then
 * costs a fraction of the JavaScript one (measured in `npm run bench -- --only=uploads`), but it cannot be saved
 * half-way. Every other body continues the resumable JavaScript hash. Bytes after a native hash go unhashed, and the
 * digest is then checked on the assembled object (see `nativeDigest` in states.ts).
 */
export class RequestHash {
  private readonly resumable: ResumableSha256 | null = null;
  private readonly native: { writer: WritableStreamDefaultWriter<Uint8Array>; digest: Promise<ArrayBuffer> } | null = null;
  private written: Promise<void> = Promise.resolve();

  constructor(
    private readonly committed: Receiving,
    expect: ChunkExpectation,
  ) {
    if (committed.nativeDigest !== undefined) return;
    if (committed.offset === 0 && expect.length === undefined) {
      const digester = new crypto.DigestStream("SHA-256");
      this.native = { writer: digester.getWriter(), digest: digester.digest };
    } else {
      this.resumable = ResumableSha256.from(committed.hash);
    }
  }

  update(chunk: Uint8Array): void {
    this.resumable?.update(chunk);
    if (this.native) {
      this.written = this.native.writer.write(chunk);
      this.written.catch(() => undefined); // surfaces at close
    }
  }

  point(received: number): HashPoint {
    return { received, hash: this.resumable?.save() };
  }

  /** The state's hash fields once `kept` of the request's `received` bytes are kept. */
  async fields(kept: HashPoint, received: number): Promise<Pick<Receiving, "hash" | "nativeDigest">> {
    if (kept.received === 0) {
      await this.abandon();
      return { hash: this.committed.hash, nativeDigest: this.committed.nativeDigest };
    }
    if (this.resumable) return { hash: kept.hash, nativeDigest: undefined };
    if (this.native && kept.received === received) {
      await this.written;
      await this.native.writer.close();
      return { hash: undefined, nativeDigest: `sha256:${toHex(await this.native.digest)}` };
    }
    await this.abandon();
    return { hash: undefined, nativeDigest: null };
  }

  private async abandon(): Promise<void> {
    await this.native?.writer.abort(new Error("not kept")).catch(() => undefined);
  }
}
