import type { Config, Env } from "../config";
import type { HashState } from "../digest";
import type { BlobRecord } from "../storage/blob-records";
import { PieceStore, type Piece } from "./parts";
import { step } from "./seams";

/**
 * Every state an upload can be in, as its Durable Object stores it (gone: nothing stored). The transitions are in
 * transitions.ts and receive.ts, one function each; each saves its state before the next begins, and each can run
 * again after a failure at any point in it (a lost answer included), so a client's retry always continues.
 *
 *   (none) ──begin──────▶ receiving                    POST: the part size is fixed here, for the session's life
 *   receiving ──receive──▶ receiving                   PATCH or PUT body: full parts to R2, the rest into pieces
 *   receiving ──openMultipart──▶ receiving             the first full part: saved at once, so it can be aborted
 *   receiving ──dedupe──▶ recorded                     PUT: the digest is stored and live; linked, own bytes unused
 *   receiving ──assemble──▶ assembled                  PUT: one R2 object (one put, or the multipart completed)
 *   assembled ──refresh──▶ assembled                   an object near the collector's grace is copied afresh
 *   assembled ──record──▶ recorded                     the D1 row and link
 *   recorded ──finish──▶ (gone)                        what the record does not use is removed; PUT answers 201
 *   any ──discard──▶ (gone)                            DELETE, expiry, or a complete body of another digest
 */
export type SessionState = Receiving | Assembled | Recorded;

interface Session {
  uploadId: string;
  /** An upload id is bound to the repository it was started in. */
  repository: string;
  touchedAt: number;
}

/** Taking bytes, in any chunk sizes, re-cut into parts of exactly partSize. */
export interface Receiving extends Session {
  phase: "receiving";
  /** Bytes received and durable: in uploaded parts or pending pieces. */
  offset: number;
  partSize: number;
  multipartId: string | null;
  /** Full parts uploaded; their etags are stored beside the state (partKey), so the state does not grow with them. */
  parts: number;
  /** The start of the next part (less than partSize), in at most MAX_PIECES pieces beside the state. */
  pending: Piece[];
  nextPiece: number;
  /** SHA-256 of the bytes so far, resumable: undefined at the start, and whenever nativeDigest is set. */
  hash: HashState | undefined;
  /**
   * Absent while `hash` holds the hash. A body of unknown length that starts the blob (docker, skopeo and podman send
   * each blob so, in one PATCH) is hashed natively instead, several times faster than in JavaScript but not
   * resumable: its SHA-256 is kept here, final. Null once bytes came that no hash covers (after such a body, or when
   * it broke off inside a part it streamed without a copy): the digest is then checked on the assembled object.
   */
  nativeDigest?: string | null;
  /**
   * Set once the final PUT's body was saved whole: every byte has come, and a body sent again is that PUT's, retried
   * after its answer was lost, not more bytes (where no hash equals the digest to tell: bytes no hash covers, SHA-512).
   */
  sealed?: true;
}

/** All the bytes are one R2 object, verified against the digest, that no D1 row names yet. */
export interface Assembled extends Session {
  phase: "assembled";
  digest: string;
  size: number;
  objectKey: string;
  /** R2's upload time of the object: the collector deletes objects no row names once older than its grace window. */
  storedAt: number;
}

/** The blob is recorded in D1 and linked into the repository; a retried PUT answers the same. */
export interface Recorded extends Session {
  phase: "recorded";
  record: BlobRecord;
  /** What this upload stored that the record does not use (another upload's bytes won, or stored bytes were linked). */
  unused: { multipartId: string } | { objectKey: string } | null;
}

/** A session saved before uploads were a state machine: no phase, no part size, its parts' etags in the state. */
export interface LegacyReceiving extends Omit<Receiving, "phase" | "partSize" | "parts"> {
  phase?: undefined;
  parts: R2UploadedPart[];
}

/** What a transition works with: the Worker's bindings (R2, D1), its configuration, and the session's storage. */
export interface SessionContext {
  env: Env;
  config: Config;
  store: SessionStore;
}

const STATE_KEY = "session";
const partKey = (partNumber: number) => `part:${partNumber}`;

/** A session's Durable Object storage: its state, its parts' etags and its pieces; every change one transaction. */
export class SessionStore {
  readonly pieces: PieceStore;

  constructor(private readonly storage: DurableObjectStorage) {
    this.pieces = new PieceStore(storage);
  }

  load(): Promise<SessionState | LegacyReceiving | undefined> {
    return this.storage.get<SessionState | LegacyReceiving>(STATE_KEY);
  }

  /** Saves a state with the parts it adds and without the pieces it no longer names, all or nothing. */
  commit(state: SessionState, change: { parts?: R2UploadedPart[]; dropped?: Piece[] } = {}): Promise<void> {
    return step("session.commit", async () => {
      this.storage.transactionSync(() => {
        for (const part of change.parts ?? []) this.storage.kv.put(partKey(part.partNumber), part);
        for (const piece of change.dropped ?? []) this.storage.kv.delete(piece.key);
        this.storage.kv.put(STATE_KEY, state);
      });
    });
  }

  /** The etags of parts 1..count, in order. */
  async parts(count: number): Promise<R2UploadedPart[]> {
    const stored = await this.storage.list<R2UploadedPart>({ prefix: "part:" });
    const parts = [...stored.values()].filter((part) => part.partNumber <= count).sort((a, b) => a.partNumber - b.partNumber);
    if (parts.length !== count) throw new Error(`upload has ${parts.length} of its ${count} parts`);
    return parts;
  }

  async expireAt(time: number): Promise<void> {
    await this.storage.setAlarm(time);
  }

  /** Forgets everything: the state, parts and pieces, and the expiry alarm. */
  async clear(): Promise<void> {
    await this.storage.deleteAlarm();
    await this.storage.deleteAll();
  }
}
