import { SHA256, type SavedState } from "@stablelib/sha256";
import type { Algorithm } from "./references";

const SUBTLE_NAME: Record<Algorithm, string> = { sha256: "SHA-256", sha512: "SHA-512" };

export function toHex(bytes: ArrayBuffer | Uint8Array): string {
  const view = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let out = "";
  for (const byte of view) out += byte.toString(16).padStart(2, "0");
  return out;
}

/** The digest of bytes already in memory (manifests). */
export async function digestOf(bytes: Uint8Array, algorithm: Algorithm = "sha256"): Promise<string> {
  return `${algorithm}:${toHex(await crypto.subtle.digest(SUBTLE_NAME[algorithm], bytes))}`;
}

/** The digest of a stream, hashed natively as it passes; memory stays flat. */
export async function digestOfStream(stream: ReadableStream<Uint8Array>, algorithm: Algorithm): Promise<string> {
  const digester = new crypto.DigestStream(SUBTLE_NAME[algorithm]);
  await stream.pipeTo(digester);
  return `${algorithm}:${toHex(await digester.digest)}`;
}

/** The hash state of an upload, saved between requests so the digest is never recomputed from stored bytes. */
export type HashState = SavedState;

/** A SHA-256 that can stop after any chunk, be stored, and carry on in another request or isolate. */
export class ResumableSha256 {
  private readonly hash = new SHA256();

  static from(state: HashState | undefined): ResumableSha256 {
    const hasher = new ResumableSha256();
    if (state) hasher.hash.restoreState(state);
    return hasher;
  }

  update(chunk: Uint8Array): void {
    this.hash.update(chunk);
  }

  save(): HashState {
    return this.hash.saveState();
  }

  /** The digest so far, leaving the state usable for more bytes. */
  digest(): string {
    const copy = ResumableSha256.from(this.save());
    return `sha256:${toHex(copy.hash.digest())}`;
  }
}
