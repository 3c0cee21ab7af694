// What the readers of attached artifacts (signatures, vulnerability reports, SBOMs) read of them: small manifests
// from D1 and blobs linked in the repository, never more than a bound.
import { readAtMost } from "../streams";
import type { Database } from "./database";
import { BlobRecords } from "./blob-records";
import { ManifestRecords } from "./manifest-records";

/** A manifest's text, when D1 holds it (artifact manifests are small; larger ones, in R2, are not read). */
export async function storedManifestText(db: Database, repository: string, digest: string): Promise<string | null> {
  return (await new ManifestRecords(db).find(repository, digest))?.body ?? null;
}

/**
 * A blob of the repository, whole, when it is at most `limit` bytes: "missing" when it is not linked there (or its
 * bytes are gone), "too large" past the limit; never more than `limit` bytes are read.
 */
export async function linkedBlobBytes(db: Database, bucket: R2Bucket, repository: string, digest: string, limit: number): Promise<Uint8Array | "missing" | "too large"> {
  const record = await new BlobRecords(db).find(repository, digest);
  if (!record) return "missing";
  if (record.size > limit) return "too large";
  const object = await bucket.get(record.objectKey);
  if (!object) return "missing";
  return (await readAtMost(object.body, limit)) ?? "too large";
}
