import { RegistryError } from "./errors";
import { DIGEST, ENCODED, MAX_NAME_LENGTH, isRepositoryName, isTag, type Algorithm } from "./grammar";

export { isRepositoryName, isTag, type Algorithm };

export function parseRepositoryName(name: string): string {
  if (!isRepositoryName(name)) {
    throw new RegistryError("NAME_INVALID", { name: name.slice(0, MAX_NAME_LENGTH + 1) });
  }
  return name;
}

export function parseTag(tag: string): string {
  if (!isTag(tag)) throw new RegistryError("TAG_INVALID", { tag: tag.slice(0, 256) }, { message: "invalid tag" });
  return tag;
}

export interface ParsedDigest {
  digest: string;
  algorithm: Algorithm;
  encoded: string;
}

/** Validates a digest string: grammar, a supported algorithm, and the encoding that algorithm requires. */
export function parseDigest(value: string): ParsedDigest {
  const invalid = (reason: string) =>
    new RegistryError("DIGEST_INVALID", { digest: value.slice(0, 200), reason }, { message: "invalid digest" });
  if (!DIGEST.test(value)) throw invalid("not a digest");
  const separator = value.indexOf(":");
  const algorithm = value.slice(0, separator);
  const encoded = value.slice(separator + 1);
  if (algorithm !== "sha256" && algorithm !== "sha512") throw invalid(`unsupported algorithm ${algorithm}`);
  if (!ENCODED[algorithm].test(encoded)) throw invalid(`${algorithm} needs lowercase hex of the right length`);
  return { digest: value, algorithm, encoded };
}

export function isDigest(reference: string): boolean {
  return reference.includes(":");
}

/** A manifest reference: a tag or a digest. */
export type Reference = { tag: string } | { digest: ParsedDigest };

/** A manifest reference is a tag or a digest. */
export function parseReference(reference: string): Reference {
  return isDigest(reference) ? { digest: parseDigest(reference) } : { tag: parseTag(reference) };
}

/** The reference as the spec writes it in a path: the tag, or the digest. */
export function referenceText(reference: Reference): string {
  return "tag" in reference ? reference.tag : reference.digest.digest;
}

// Upload ids are random UUIDs: unguessable, and the only way to reach a session's Durable Object.
const UPLOAD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** An upload id in any other form names no upload. */
export function parseUploadId(uploadId: string): string {
  if (!UPLOAD_ID.test(uploadId)) throw new RegistryError("BLOB_UPLOAD_UNKNOWN", { uploadId: uploadId.slice(0, 64) });
  return uploadId;
}
