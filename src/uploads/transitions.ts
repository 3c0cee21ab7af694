// The transitions of an upload session (the table is in states.ts; receive.ts takes the bytes). Each saves the state
// it reaches before returning, and each can run again, whole, after failing at any point: a step that took effect
// before its answer was lost is taken again harmlessly, or recognised (a completed multipart upload leaves its object).
import { digestOfStream } from "../digest";
import { RegistryError } from "../errors";
import { parseDigest, type ParsedDigest } from "../references";
import { BlobRecords, type BlobRecord } from "../storage/blob-records";
import { GcRecords } from "../storage/gc-records";
import { blobKey, checksumOption, uploadObjectKey } from "../storage/objects";
import { step } from "./seams";
import type { Assembled, LegacyReceiving, Receiving, Recorded, SessionContext, SessionState } from "./states";
import { mismatch } from "./upload-errors";

/** (none) → receiving, with the part size it keeps for its life (a redeploy with another one does not change it). */
export async function begin(session: SessionContext, uploadId: string, repository: string): Promise<Receiving> {
  const now = Date.now();
  // The alarm first: a state saved whose answer was lost (the client never learns the id) still expires. Re-armed by
  // the alarm itself while the session is touched (touchedAt), so requests need not set it.
  await session.store.expireAt(now + session.config.UPLOAD_TTL_SECONDS * 1000);
  return save(session, {
    phase: "receiving",
    uploadId,
    repository,
    touchedAt: now,
    offset: 0,
    partSize: session.config.UPLOAD_PART_BYTES,
    multipartId: null,
    parts: 0,
    pending: [],
    nextPiece: 0,
    hash: undefined,
  });
}

/**
 * A session saved before this state machine → receiving. Its part size is what its full parts show; with none yet,
 * the configured one (larger than what is pending, which any part size then takes).
 */
export async function upgrade(session: SessionContext, legacy: LegacyReceiving): Promise<Receiving> {
  const { parts, ...rest } = legacy;
  const pendingBytes = legacy.pending.reduce((sum, piece) => sum + piece.size, 0);
  const partSize =
    parts.length > 0 ? (legacy.offset - pendingBytes) / parts.length : Math.max(session.config.UPLOAD_PART_BYTES, pendingBytes + 1);
  const state: Receiving = { ...rest, phase: "receiving", partSize, parts: parts.length };
  await session.store.commit(state, { parts });
  return state;
}

/**
 * receiving → recorded, when bytes of this digest are already stored: linked, not stored twice (the caller checked
 * that this upload's bytes have the digest, so the client has them). The link is conditional: it fails when the
 * collector deleted the row meanwhile, and the upload then assembles its own bytes.
 */
export async function dedupe(session: SessionContext, state: Receiving, digest: ParsedDigest): Promise<Recorded | null> {
  if (digest.algorithm !== "sha256") return null;
  const blobs = new BlobRecords(session.env.DB);
  const stored = await step("d1.findStored", () => blobs.findStored(digest.digest));
  const linked = stored ? await step("d1.link", () => blobs.link(state.repository, stored)) : null;
  if (!linked) return null;
  const unused = state.multipartId ? { multipartId: state.multipartId } : null;
  return save(session, { ...sessionOf(state), phase: "recorded", record: linked, unused });
}

/**
 * receiving → assembled: the bytes become one R2 object at the upload's own key (fixed before the digest is known,
 * never reused), verified against the digest: `checked` when their SHA-256 was hashed as they came, else (a SHA-512,
 * or bytes no hash covers) checked by R2 or read back. Retried, a put is made again; a multipart upload's last part is
 * uploaded again and completed, or, when a completion took effect before its answer was lost, the object it left is
 * taken.
 */
export async function assemble(session: SessionContext, state: Receiving, digest: ParsedDigest, checked: boolean): Promise<Assembled> {
  const key = uploadObjectKey(state.uploadId);
  const object = state.parts === 0 ? await putAll(session, state, digest, key, checked) : await completeMultipart(session, state, key);
  if (state.parts > 0 && !checked) {
    const stored = await session.env.BLOBS.get(key);
    const actual = stored ? await digestOfStream(stored.body, digest.algorithm) : "missing";
    if (actual !== digest.digest) {
      await session.env.BLOBS.delete(key);
      await session.store.clear();
      throw mismatch(digest.digest, actual);
    }
  }
  return save(session, {
    ...sessionOf(state),
    phase: "assembled",
    digest: digest.digest,
    size: state.offset,
    objectKey: key,
    storedAt: object.uploaded.getTime(),
  });
}

/** Small blobs skip multipart: one put of the pending pieces, with R2 checking the hash. */
async function putAll(session: SessionContext, state: Receiving, digest: ParsedDigest, key: string, checked: boolean): Promise<R2Object> {
  let object: R2Object | null;
  try {
    object = await step("r2.put", () => session.env.BLOBS.put(key, session.store.pieces.stream(state.pending), checksumOption(digest)));
  } catch (error) {
    // Bytes checked as they came: R2 failed, and the PUT may be retried. Unchecked ones (a SHA-512, bytes no hash
    // covers) R2 refuses when they do not have the digest, and fails for other reasons too: the bytes (less than a
    // part, in the session's storage) say which, so that a transient failure keeps the upload for the retry.
    if (checked) throw error;
    const actual = await digestOfStream(session.store.pieces.stream(state.pending), digest.algorithm);
    if (actual === digest.digest) throw error;
    await discard(session, state);
    throw mismatch(digest.digest, actual);
  }
  if (!object) throw new Error(`R2 did not store ${key}`);
  // A multipart upload opened for a first part that never made it.
  if (state.multipartId) await abortMultipart(session, key, state.multipartId);
  return object;
}

async function completeMultipart(session: SessionContext, state: Receiving, key: string): Promise<R2Object> {
  const multipart = session.env.BLOBS.resumeMultipartUpload(key, state.multipartId!);
  try {
    const parts = await session.store.parts(state.parts);
    if (state.pending.length > 0) {
      // The last, shorter part: not saved, so no later chunk can follow it; a retry uploads it again.
      const tail = session.store.pieces.stream(state.pending);
      parts.push(await step("r2.uploadPart", () => multipart.uploadPart(parts.length + 1, tail)));
    }
    return await step("r2.complete", () => multipart.complete(parts));
  } catch (error) {
    // A completion that took effect before its answer was lost: the multipart id is dead and the object is there
    // (only this session writes its key, and an object of all the bytes received is those bytes).
    const done = await session.env.BLOBS.head(key);
    if (done?.size === state.offset) return done;
    throw error;
  }
}

/** assembled → recorded: the D1 row for the bytes (or the row another upload of the digest made first) and its link. */
export async function record(session: SessionContext, state: Assembled, quota = session.config.STORAGE_QUOTA_BYTES): Promise<Recorded> {
  const assembled = await refresh(session, state);
  const blobs = new BlobRecords(session.env.DB);
  const ours: BlobRecord = { digest: assembled.digest, size: assembled.size, objectKey: assembled.objectKey };
  // The quota is checked inside the insert: a refusal (DENIED) keeps the session assembled, for a retry once there is
  // room; its expiry deletes the object otherwise.
  const winner = await step("d1.record", () => blobs.record(assembled.repository, ours, quota));
  // Another upload of the same digest was recorded first: its bytes serve, ours are unused.
  const unused = winner.objectKey === ours.objectKey ? null : { objectKey: ours.objectKey };
  return save(session, { ...sessionOf(assembled), phase: "recorded", record: winner, unused });
}

/**
 * assembled → assembled, only when the object is old: the collector deletes objects that no row names once they are
 * older than its grace window, so an object assembled long ago (a retry after a long outage) is copied to a fresh key
 * before a row may name it. An object a row names already (a record whose answer was lost) is safe where it is.
 */
async function refresh(session: SessionContext, state: Assembled): Promise<Assembled> {
  if (Date.now() - state.storedAt < (session.config.GC_GRACE_SECONDS * 1000) / 2) return state;
  if ((await new GcRecords(session.env.DB).referencedKeys([state.objectKey])).size > 0) return state;
  const object = await session.env.BLOBS.get(state.objectKey);
  if (!object) {
    await session.store.clear();
    throw new RegistryError(
      "BLOB_UPLOAD_INVALID",
      { digest: state.digest },
      { message: "the upload's bytes were collected before they could be recorded: upload the blob again" },
    );
  }
  const digest = parseDigest(state.digest);
  const copy = await session.env.BLOBS.put(blobKey(digest), object.body, checksumOption(digest));
  if (!copy) throw new Error(`R2 did not copy ${state.objectKey}`);
  const fresh = await save(session, { ...state, objectKey: copy.key, storedAt: copy.uploaded.getTime() });
  await session.env.BLOBS.delete(state.objectKey).catch(() => undefined); // else the collector's, as no row names it
  return fresh;
}

/** recorded → (gone): removes what the record does not use, forgets the session, and answers the record. */
export async function finish(session: SessionContext, state: Recorded): Promise<BlobRecord> {
  await removeUnused(session, state);
  await session.store.clear();
  return state.record;
}

/** any → (gone): forgets the session and removes what it stored that no blob record points to. */
export async function discard(session: SessionContext, state: SessionState): Promise<void> {
  if (state.phase === "receiving" && state.multipartId) {
    await abortMultipart(session, uploadObjectKey(state.uploadId), state.multipartId);
  }
  if (state.phase === "assembled") await removeUnrecorded(session, state.objectKey);
  if (state.phase === "recorded") await removeUnused(session, state);
  await session.store.clear();
}

/** The bytes a session stored, as far as it got: what a status request reports. */
export function offsetOf(state: SessionState): number {
  if (state.phase === "receiving") return state.offset;
  return state.phase === "assembled" ? state.size : state.record.size;
}

// Leftovers are removed on a best effort: R2 aborts forgotten multipart uploads itself after a week, and the
// collector's orphan sweep deletes objects that no row names.
async function removeUnused(session: SessionContext, state: Recorded): Promise<void> {
  if (!state.unused) return;
  if ("multipartId" in state.unused) await abortMultipart(session, uploadObjectKey(state.uploadId), state.unused.multipartId);
  else await session.env.BLOBS.delete(state.unused.objectKey).catch(() => undefined);
}

/** An assembled object is deleted unless a row names it (a record whose answer was lost, then the upload cancelled). */
async function removeUnrecorded(session: SessionContext, key: string): Promise<void> {
  try {
    if ((await new GcRecords(session.env.DB).referencedKeys([key])).size === 0) await session.env.BLOBS.delete(key);
  } catch {
    // D1 cannot tell: the orphan sweep will.
  }
}

async function abortMultipart(session: SessionContext, key: string, multipartId: string): Promise<void> {
  await session.env.BLOBS.resumeMultipartUpload(key, multipartId)
    .abort()
    .catch(() => undefined);
}

const sessionOf = (state: SessionState) => ({ uploadId: state.uploadId, repository: state.repository, touchedAt: Date.now() });

async function save<S extends SessionState>(session: SessionContext, state: S): Promise<S> {
  await session.store.commit(state);
  return state;
}
