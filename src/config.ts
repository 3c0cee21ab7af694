import { z } from "zod";
import type { UploadSession } from "./uploads/upload-session";

export interface Env {
  BLOBS: R2Bucket;
  DB: D1Database;
  UPLOADS: DurableObjectNamespace<UploadSession>;
  MAX_BODY_BYTES?: string;
  UPLOAD_PART_BYTES?: string;
  MAX_MANIFEST_BYTES?: string;
  UPLOAD_TTL_SECONDS?: string;
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

const bytes = (min: number, max: number, fallback: number) =>
  z.coerce.number().int().min(min).max(max).default(fallback);

const ConfigSchema = z.object({
  MAX_BODY_BYTES: bytes(1, 5 * GiB, 100_000_000),
  // R2 multipart: every part but the last is 5 MiB..5 GiB and equal; 16 MiB x 10,000 parts = 156 GiB per blob.
  UPLOAD_PART_BYTES: bytes(5 * MiB, 5 * GiB, 16 * MiB),
  MAX_MANIFEST_BYTES: bytes(4 * MiB, 64 * MiB, 4 * MiB),
  UPLOAD_TTL_SECONDS: z.coerce.number().int().min(60).default(86_400),
});

export type Config = z.infer<typeof ConfigSchema>;

export class ConfigError extends Error {
  constructor(readonly issues: string[]) {
    super(`invalid configuration: ${issues.join("; ")}`);
    this.name = "ConfigError";
  }
}

const parsed = new WeakMap<object, Config>();

/** Parses the Worker's vars once per isolate; a bad setting fails loudly, naming it. */
export function configOf(env: Env): Config {
  const cached = parsed.get(env);
  if (cached) return cached;
  const result = ConfigSchema.safeParse(env);
  if (!result.success) {
    throw new ConfigError(result.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`));
  }
  parsed.set(env, result.data);
  return result.data;
}
