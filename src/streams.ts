// Small bodies read whole, never past a limit: a larger one is cut off, not buffered.

/** The stream's bytes, or null (and the stream cancelled) once it passes `limit`. */
export async function readAtMost(stream: ReadableStream<Uint8Array>, limit: number): Promise<Uint8Array | null> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      return null;
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return bytes;
}

/**
 * Reads and drops what is left of a request body that is being refused, up to `limit` bytes: a client still sending
 * reads the answer instead of a reset connection (wrangler dev, and some proxies, reset one whose body was not read).
 */
export async function drain(stream: ReadableStream<Uint8Array> | null | undefined, limit = DRAIN_LIMIT): Promise<void> {
  if (!stream) return;
  try {
    const reader = stream.getReader();
    await discard(async () => {
      const { done, value } = await reader.read();
      return done ? null : value;
    }, () => reader.cancel(), limit);
  } catch {
    // Locked by a reader that failed: nothing more to read.
  }
}

/** Reads with `read` until the end or past `limit` bytes (then `cancel`s), dropping what it reads. */
export async function discard(read: () => Promise<Uint8Array | null>, cancel: () => Promise<void>, limit = DRAIN_LIMIT): Promise<void> {
  let total = 0;
  try {
    for (;;) {
      const chunk = await read();
      if (!chunk) return;
      total += chunk.byteLength;
      if (total > limit) return await cancel();
    }
  } catch {
    // Broken off: nothing more to read.
  }
}

/** How much of a refused body is read before the answer: beyond that the connection is closed. */
export const DRAIN_LIMIT = 1024 * 1024 * 1024;
