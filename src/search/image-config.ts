import { z } from "zod";
import { RegistryError } from "../errors";
import { parseDigest } from "../references";
import type { BlobService } from "../services/blobs";
import { readAtMost } from "../streams";

// OCI image-spec config.md (Docker's container image config has the same fields): what a tag page shows.
export const ImageConfig = z.looseObject({
  created: z.string().optional(),
  author: z.string().optional(),
  architecture: z.string().optional(),
  os: z.string().optional(),
  variant: z.string().optional(),
  config: z
    .looseObject({
      User: z.string().optional(),
      ExposedPorts: z.record(z.string(), z.unknown()).nullish(),
      Env: z.array(z.string()).nullish(),
      Entrypoint: z.array(z.string()).nullish(),
      Cmd: z.array(z.string()).nullish(),
      Volumes: z.record(z.string(), z.unknown()).nullish(),
      WorkingDir: z.string().optional(),
      Labels: z.record(z.string(), z.string()).nullish(),
      StopSignal: z.string().optional(),
    })
    .nullish(),
  history: z
    .array(
      z.looseObject({
        created: z.string().optional(),
        created_by: z.string().optional(),
        comment: z.string().optional(),
        empty_layer: z.boolean().optional(),
      }),
    )
    .nullish(),
});
export type ImageConfig = z.infer<typeof ImageConfig>;

export const IMAGE_CONFIG_MEDIA_TYPES: ReadonlySet<string> = new Set([
  "application/vnd.oci.image.config.v1+json",
  "application/vnd.docker.container.image.v1+json",
]);

// A config is a few KiB; one this large is not worth rendering, and reading it must not cost the isolate's memory.
export const MAX_CONFIG_BYTES = 1024 * 1024;

export type ConfigRead = { config: ImageConfig; problem: null } | { config: null; problem: string };

/** Reads and parses an image's config blob through its repository, at most MAX_CONFIG_BYTES of it. */
export async function readImageConfig(blobs: BlobService, repository: string, digest: string): Promise<ConfigRead> {
  let record;
  try {
    record = await blobs.stat(repository, parseDigest(digest));
  } catch (error) {
    if (error instanceof RegistryError && error.code === "BLOB_UNKNOWN") return { config: null, problem: "the config blob is not stored in this repository" };
    throw error;
  }
  if (record.size > MAX_CONFIG_BYTES) return { config: null, problem: `the config is larger than ${MAX_CONFIG_BYTES} bytes` };
  const bytes = await readAtMost((await blobs.open(repository, record, null)).body, MAX_CONFIG_BYTES);
  if (!bytes) return { config: null, problem: `the config is larger than ${MAX_CONFIG_BYTES} bytes` };
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return { config: null, problem: "the config is not JSON" };
  }
  const parsed = ImageConfig.safeParse(json);
  return parsed.success ? { config: parsed.data, problem: null } : { config: null, problem: "the config is not an image config" };
}
