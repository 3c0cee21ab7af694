import { AwsClient } from "aws4fetch";
import { isPublicRepository } from "../auth/access";
import type { Config } from "../config";
import type { BlobRecord } from "../storage/blob-records";

// Signing keys derived from the secret are the same all day: kept per isolate, as aws4fetch allows.
const signingKeys = new Map<string, ArrayBuffer>();

/**
 * Where a client may fetch a blob's bytes from R2 itself (BLOB_REDIRECT), or null when the Worker streams them.
 * Small blobs stay with the Worker, where the edge cache serves them; a public URL never leaks a private blob.
 */
export async function downloadUrl(config: Config, repository: string, blob: BlobRecord): Promise<string | null> {
  if (config.BLOB_REDIRECT === "off" || blob.size < config.BLOB_REDIRECT_MIN_BYTES) return null;
  if (config.BLOB_REDIRECT === "public") {
    if (!isPublicRepository(config, repository)) return null;
    return `${config.BLOB_PUBLIC_URL!.replace(/\/+$/, "")}/${blob.objectKey}`;
  }
  const client = new AwsClient({
    accessKeyId: config.R2_ACCESS_KEY_ID!,
    secretAccessKey: config.R2_SECRET_ACCESS_KEY!,
    service: "s3",
    region: "auto",
    cache: signingKeys,
  });
  const url = new URL(`${config.R2_S3_ENDPOINT!.replace(/\/+$/, "")}/${config.R2_BUCKET_NAME!}/${blob.objectKey}`);
  url.searchParams.set("X-Amz-Expires", String(config.BLOB_REDIRECT_TTL_SECONDS));
  const signed = await client.sign(url, { method: "GET", aws: { signQuery: true } });
  return signed.url;
}
