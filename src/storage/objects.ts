import type { ParsedDigest } from "../references";

// Where bytes live in R2. Blobs pushed whole (or small) are content addressed; a multipart upload's object key
// must be fixed before its digest is known, so it lives under the upload and D1's blobs.object_key points to it.

export function blobKey(digest: ParsedDigest): string {
  return `blobs/${digest.algorithm}/${digest.encoded}`;
}

export function manifestKey(digest: ParsedDigest): string {
  return `manifests/${digest.algorithm}/${digest.encoded}`;
}

export function uploadObjectKey(uploadId: string): string {
  return `uploads/${uploadId}/data`;
}

/** Bytes received but not yet cut into a full multipart part. */
export function pendingPieceKey(uploadId: string, sequence: number): string {
  return `uploads/${uploadId}/pending/${sequence}`;
}

/** R2 put options that make R2 itself reject bytes whose hash is not the digest. */
export function checksumOption(digest: ParsedDigest): R2PutOptions {
  return digest.algorithm === "sha256" ? { sha256: digest.encoded } : { sha512: digest.encoded };
}
