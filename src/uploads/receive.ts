import { drain } from "../streams";
import { RegistryError } from "../errors";
import { uploadObjectKey } from "../storage/objects";
import { RequestHash, type HashPoint } from "./hashing";
import { BodyReader, R2_MAX_PARTS, StreamedPart, type Piece } from "./parts";
import { seams, step } from "./seams";
import type { Receiving, SessionContext } from "./states";
import { outOfOrder, partCapReached, tooLarge } from "./upload-errors";

export interface ChunkExpectation {
  /** Where the chunk claims to start (Content-Range); it must be the current offset. */
  start?: number;
  /** How many bytes the request declares (Content-Length or Content-Range); a longer body is refused. */
  length?: number;
}

/** What a request body left: the state saved, and whether the body ended before it was whole. */
export interface Received {
  state: Receiving;
  cutOff: { received: number; declared: number | undefined } | null;
}

/**
 * receiving → receiving: streams a request body into the session, re-cut into parts of exactly the session's part
 * size. A part that the body is sure to fill (its declared length says so) streams straight into R2 as it arrives;
 * bytes that will not fill a part are kept and stored as pieces; a body of unknown length keeps its first part until
 * it is full, then streams each later one into R2 and keeps a copy in case it ends first. So at most one part's worth of the body is in memory, and R2 takes one part
 * while the next arrives. The new state is saved once, at the end, with its new parts and pieces: a refused chunk (out
 * of order, too large, past R2's part cap) or a failed one leaves the session as it was. A body cut off by the client
 * keeps what is stored (all of it, except the bytes of a part that was streaming without a copy), and says so.
 */
export async function receive(
  session: SessionContext,
  committed: Receiving,
  body: ReadableStream<Uint8Array> | null,
  expect: ChunkExpectation,
  /** The final PUT's body: once it is whole, the session is sealed (a repeated body is that PUT's, retried). */
  final = false,
): Promise<Received> {
  if (expect.start !== undefined && expect.start !== committed.offset) {
    await drain(body);
    throw outOfOrder(committed.offset, `chunk starts at ${expect.start}`);
  }
  const { partSize } = committed;
  const maxBody = session.config.MAX_BODY_BYTES;
  const maxParts = seams.maxParts ?? R2_MAX_PARTS;
  // R2 assembles at most maxParts parts: refused before any byte is read when the declared length says so.
  const capacity = maxParts * partSize;
  if (expect.length !== undefined && committed.offset + expect.length > capacity) {
    await drain(body);
    throw partCapReached(committed.offset, maxParts, partSize);
  }
  const state: Receiving = { ...committed, pending: [...committed.pending] };
  const hashing = new RequestHash(committed, expect);
  const consumed: Piece[] = [];
  // Parts this request uploaded, and those R2 may still be finishing (at most one besides the open part), in order.
  const uploaded: R2UploadedPart[] = [];
  const finishing: Promise<R2UploadedPart>[] = [];
  let open: OpenPart | null = null;
  // Where the open part began: what the session falls back to if that part is lost.
  let checkpoint: HashPoint = { received: 0, hash: state.hash };
  let received = 0;
  let brokeOff = false;

  const multipart = async (): Promise<R2MultipartUpload> => {
    state.multipartId ??= (await openMultipart(session, committed)).multipartId;
    return session.env.BLOBS.resumeMultipartUpload(uploadObjectKey(state.uploadId), state.multipartId!);
  };

  /** Opens the next part as a stream into R2 and feeds it the stored pieces (and kept bytes) it begins with. */
  const startPart = async (pieces: Piece[], kept: Uint8Array[] = []): Promise<StreamedPart> => {
    const partNumber = state.parts + uploaded.length + finishing.length + 1;
    const part = new StreamedPart(await multipart(), partNumber, partSize);
    try {
      for await (const bytes of session.store.pieces.read(pieces)) await part.write(bytes);
      for (const chunk of kept) await part.write(chunk);
    } catch (error) {
      await part.abort(error);
      throw error;
    }
    return part;
  };

  const openPart = async (): Promise<OpenPart> => {
    const filled = state.pending.reduce((sum, piece) => sum + piece.size, 0);
    const declaredLeft = expect.length === undefined ? undefined : expect.length - received;
    checkpoint = hashing.point(received);
    if (declaredLeft !== undefined && filled + declaredLeft < partSize) {
      return { filled, pieces: state.pending, streamed: null, kept: [], keptSize: 0 };
    }
    // A body of unknown length (docker's and skopeo's PATCH) may be a small blob: until it has filled a part, its bytes
    // are only kept, and go up once they fill one. So a blob smaller than a part never opens a multipart upload (two
    // Class A operations, and a part abandoned); a larger one waits once, for its first part to go up from memory.
    if (declaredLeft === undefined && uploaded.length + finishing.length === 0) {
      return { filled, pieces: state.pending, streamed: null, kept: [], keptSize: 0 };
    }
    const streamed = await startPart(state.pending);
    return { filled, pieces: state.pending, streamed, kept: declaredLeft === undefined ? [] : null, keptSize: 0 };
  };

  const closePart = async (part: OpenPart) => {
    // A body that outran its declared length: its kept bytes go up as the part after all.
    const streamed = part.streamed ?? (await startPart(part.pieces, part.kept ?? []));
    const finished = streamed.finish();
    finished.catch(() => undefined); // awaited below, unless the request fails first
    finishing.push(finished);
    if (finishing.length > 1) uploaded.push(await finishing.shift()!);
    consumed.push(...part.pieces);
    state.pending = [];
  };

  const reader = body ? new BodyReader(body) : null;
  let kept: Uint8Array[] = [];
  try {
    while (reader) {
      let chunk: Uint8Array | null;
      try {
        chunk = await reader.read();
      } catch {
        brokeOff = true; // cut off by the client: keep what was stored
        break;
      }
      if (!chunk) break;
      if (received + chunk.byteLength > maxBody) {
        await reader.drain();
        throw tooLarge(maxBody);
      }
      if (committed.offset + received + chunk.byteLength > capacity) {
        await reader.drain();
        throw partCapReached(committed.offset, maxParts, partSize);
      }
      while (chunk.byteLength > 0) {
        open ??= await openPart();
        const take = chunk.subarray(0, partSize - open.filled);
        chunk = chunk.subarray(take.byteLength);
        hashing.update(take);
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
    brokeOff ||= expect.length !== undefined && received < expect.length;
    let keep = hashing.point(received);
    if (open) {
      const part: OpenPart = open;
      open = null;
      await part.streamed?.abort(new Error("the body ended before the part was full"));
      if (part.kept) kept = part.kept;
      // Cut off while streaming a part with no copy: the session keeps what was stored before that part.
      else keep = checkpoint;
    }
    for (const finished of finishing.splice(0)) uploaded.push(await finished);
    state.parts += uploaded.length;
    state.offset += keep.received;
    Object.assign(state, await hashing.fields(keep, received));
    if (final && !brokeOff) state.sealed = true;
    else delete state.sealed;
  } finally {
    await open?.streamed?.abort(new Error("the request failed"));
  }
  const appended = await session.store.pieces.append(state.pending, kept, state.nextPiece);
  state.pending = appended.pending;
  state.nextPiece = appended.next;
  state.touchedAt = Date.now();
  await session.store.commit(state, { parts: uploaded, dropped: [...consumed, ...appended.replaced] });
  return { state, cutOff: brokeOff ? { received, declared: expect.length } : null };
}

/** receiving → receiving with its multipart upload: created for the first full part, saved at once so it can be aborted. */
async function openMultipart(session: SessionContext, committed: Receiving): Promise<Receiving> {
  const key = uploadObjectKey(committed.uploadId);
  const created = await step("r2.createMultipart", () => session.env.BLOBS.createMultipartUpload(key));
  const opened = { ...committed, multipartId: created.uploadId };
  await session.store.commit(opened);
  return opened;
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
