import { DurableObject } from "cloudflare:workers";
import { drain } from "../streams";
import { configOf, type Env } from "../config";
import { ResumableSha256 } from "../digest";
import { RegistryError, serializeError, type SerializedError } from "../errors";
import type { ParsedDigest } from "../references";
import type { BlobRecord } from "../storage/blob-records";
import { receive, type ChunkExpectation } from "./receive";
import { SessionStore, type Receiving, type SessionContext, type SessionState } from "./states";
import { assemble, begin, dedupe, discard, finish, offsetOf, record, upgrade } from "./transitions";
import { alreadyComplete, cutOff, mismatch } from "./upload-errors";

export type { ChunkExpectation } from "./receive";
export { outOfOrder, rangeHeader, tooLarge } from "./upload-errors";

export type Outcome<T> = { ok: true; value: T } | { ok: false; error: SerializedError };

/**
 * One upload. The only writer of its bytes: it hashes them as they pass, re-cuts them into equal-sized R2 multipart
 * parts whatever the client's chunk sizes, keeps the remainder in its own storage until the next request, and at the
 * end assembles and records the blob. Each request runs the transitions of its state (states.ts) from where the last
 * one stopped, so a request retried after any failure continues.
 */
export class UploadSession extends DurableObject<Env> {
  // RPC calls interleave at every await on I/O; uploads are sequential, so requests take turns.
  private turn: Promise<unknown> = Promise.resolve();

  private get session(): SessionContext {
    return { env: this.env, config: configOf(this.env), store: new SessionStore(this.ctx.storage) };
  }

  begin(uploadId: string, repository: string): Promise<Outcome<number>> {
    return this.exclusive(async () => offsetOf(await begin(this.session, uploadId, repository)));
  }

  status(repository: string): Promise<Outcome<number>> {
    return this.exclusive(async () => offsetOf(await this.load(repository)));
  }

  append(
    repository: string,
    body: ReadableStream<Uint8Array> | null,
    expect: ChunkExpectation,
  ): Promise<Outcome<number>> {
    return this.exclusive(async () => {
      const state = await this.load(repository);
      if (state.phase !== "receiving") {
        await drain(body);
        throw alreadyComplete(offsetOf(state));
      }
      const received = await receive(this.session, state, body, expect);
      if (received.cutOff) throw cutOff(received.state.offset, received.cutOff.declared, received.cutOff.received);
      return received.state.offset;
    });
  }

  /** Takes the last chunk (if any), checks the digest, assembles the blob in R2 and records it in D1. */
  complete(
    repository: string,
    digest: ParsedDigest,
    body: ReadableStream<Uint8Array> | null,
    expect: ChunkExpectation,
    /** STORAGE_QUOTA_BYTES as the Worker that took the request reads it. */
    quota?: number,
  ): Promise<Outcome<BlobRecord>> {
    return this.exclusive(async () => {
      const session = this.session;
      let state = await this.load(repository);
      if (state.phase === "receiving") {
        const received = await this.lastChunk(state, digest, body, expect);
        const actual = sha256Of(received);
        if (digest.algorithm === "sha256" && actual !== null && actual !== digest.digest) {
          // Only a whole body of the wrong digest ends the upload.
          await discard(session, received);
          throw mismatch(digest.digest, actual);
        }
        // Bytes no hash covers (and a SHA-512) are checked on the assembled object, and cannot be linked before.
        const checked = digest.algorithm === "sha256" && actual === digest.digest;
        state = (checked ? await dedupe(session, received, digest) : null) ?? (await assemble(session, received, digest, checked));
      } else {
        // Completed already but for the record (a retried PUT): any body repeats bytes taken.
        await drain(body);
        const known = state.phase === "assembled" ? state.digest : state.record.digest;
        if (known !== digest.digest) {
          await discard(session, state);
          throw mismatch(digest.digest, known);
        }
      }
      if (state.phase === "assembled") state = await record(session, state, quota);
      return finish(session, state);
    });
  }

  cancel(repository: string): Promise<Outcome<null>> {
    return this.exclusive(async () => {
      await discard(this.session, await this.load(repository));
      return null;
    });
  }

  override async alarm(): Promise<void> {
    await this.exclusive(async () => {
      const stored = await this.session.store.load();
      if (!stored) return;
      const expiresAt = stored.touchedAt + this.session.config.UPLOAD_TTL_SECONDS * 1000;
      if (Date.now() < expiresAt) return this.session.store.expireAt(expiresAt);
      await discard(this.session, stored.phase === undefined ? await upgrade(this.session, stored) : stored);
    });
  }

  /**
   * The final PUT's body, if any, received like a PATCH's: a body cut off keeps what arrived and answers 416 with the
   * Range to resume from. A session sealed by a PUT's whole body, or whose bytes (some) already have the digest as
   * their SHA-256, has the whole blob, so a body then repeats bytes already taken (a PUT retried after its body was
   * saved) and is not read.
   */
  private async lastChunk(
    state: Receiving,
    digest: ParsedDigest,
    body: ReadableStream<Uint8Array> | null,
    expect: ChunkExpectation,
  ): Promise<Receiving> {
    if (!body) return state;
    if (state.sealed || (state.offset > 0 && digest.algorithm === "sha256" && sha256Of(state) === digest.digest)) {
      await drain(body);
      return state;
    }
    const received = await receive(this.session, state, body, expect, true);
    if (received.cutOff) throw cutOff(received.state.offset, received.cutOff.declared, received.cutOff.received);
    return received.state;
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
    const stored = await this.session.store.load();
    // An upload id is bound to the repository it was started in.
    if (!stored || stored.repository !== repository) throw new RegistryError("BLOB_UPLOAD_UNKNOWN", { repository });
    return stored.phase === undefined ? upgrade(this.session, stored) : stored;
  }
}

/** The SHA-256 of the bytes received, or null when no hash covers them all. */
function sha256Of(state: Receiving): string | null {
  if (state.nativeDigest !== undefined) return state.nativeDigest;
  return ResumableSha256.from(state.hash).digest();
}
