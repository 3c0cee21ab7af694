import type { ParsedDigest } from "../references";

// Where bytes live in R2. D1's blobs.object_key is the single source of truth for which object holds a digest.
// Keys are never reused: every write of a blob's bytes gets a fresh key (a multipart upload's key is fixed before
// its digest is known anyway), so garbage collection can delete the exact object a dead row named without ever
// touching bytes written since for the same digest.

/** A fresh key for new bytes of this digest. */
export function blobKey(digest: ParsedDigest): string {
  return `blobs/${digest.algorithm}/${digest.encoded}/${crypto.randomUUID()}`;
}

/** A fresh key for the bytes of a manifest too large for D1 (manifests.body_key names it, as for blobs). */
export function manifestKey(digest: ParsedDigest): string {
  return `manifests/${digest.algorithm}/${digest.encoded}/${crypto.randomUUID()}`;
}

export function uploadObjectKey(uploadId: string): string {
  return `uploads/${uploadId}/data`;
}


/** R2 put options that make R2 itself reject bytes whose hash is not the digest. */
export function checksumOption(digest: ParsedDigest): R2PutOptions {
  return digest.algorithm === "sha256" ? { sha256: digest.encoded } : { sha512: digest.encoded };
}
