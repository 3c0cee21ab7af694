import { Hono, type Context } from "hono";
import { requires } from "../auth/middleware";
import { mirrored } from "../mirror/middleware";
import type { AppEnv } from "../context";
import { RegistryError } from "../errors";
import { parseContentRange } from "../ranges";
import { parseDigest, parseRepositoryName } from "../references";
import { parsePath, pathOf, uploadIdOf } from "./path";
import type { ChunkExpectation } from "../uploads/upload-session";
import { rangeHeader, tooLarge } from "../uploads/upload-session";

const uploadLocation = (repository: string, uploadId: string) => `/v2/${repository}/blobs/uploads/${uploadId}`;
const blobLocation = (repository: string, digest: string) => `/v2/${repository}/blobs/${digest}`;

/** The declared body length, refused with 413 when over the configured limit (app.onError reads the body first). */
async function declaredLength(c: Context<AppEnv>): Promise<number | undefined> {
  const header = c.req.header("Content-Length");
  if (header === undefined) return undefined;
  if (!/^\d{1,15}$/.test(header)) throw new RegistryError("SIZE_INVALID", { contentLength: header.slice(0, 32) });
  const length = Number(header);
  if (length > c.var.registry.config.MAX_BODY_BYTES) throw tooLarge(c.var.registry.config.MAX_BODY_BYTES);
  return length;
}

/** What a chunk declares about itself: where it starts (Content-Range) and how long it is. */
async function chunkExpectation(c: Context<AppEnv>): Promise<ChunkExpectation> {
  const length = await declaredLength(c);
  const range = parseContentRange(c.req.header("Content-Range") ?? null);
  if (range && length !== undefined && range.length !== length) {
    throw new RegistryError(
      "RANGE_INVALID",
      { contentRange: c.req.header("Content-Range"), contentLength: length },
      { message: "Content-Range and Content-Length disagree" },
    );
  }
  return { start: range?.start, length: range?.length ?? length };
}

function hasBody(c: Context<AppEnv>, expect: ChunkExpectation): boolean {
  return c.req.raw.body !== null && expect.length !== 0;
}

function uploadHeaders(repository: string, uploadId: string, offset: number): Record<string, string> {
  return {
    Location: uploadLocation(repository, uploadId),
    Range: rangeHeader(offset),
    "Docker-Upload-UUID": uploadId,
  };
}

// OCI dist-spec end-4a/4b (POST), end-5 (PATCH), end-6 (PUT), end-11 (mount), end-13 (GET status), DELETE.
export const uploads = new Hono<AppEnv>()
  .post("/:name{.+}/blobs/uploads/", parsePath(), requires("push"), mirrored, async (c) => {
    const { repository } = pathOf(c);
    const { blobs, uploads: sessions, config, quota } = c.var.registry;

    const mount = c.req.query("mount");
    const from = c.req.query("from");
    if (mount !== undefined) {
      const digest = parseDigest(mount);
      // Mounting needs pull on the source; without it the client just uploads, learning nothing about the source.
      const mayPull = (name: string) => c.var.access.allows(name, "pull");
      const source = from === undefined ? null : tryName(from);
      const mounted =
        from === undefined
          ? await blobs.mountFromAny(repository, digest, mayPull)
          : source !== null && mayPull(source) && (await blobs.mount(repository, digest, source));
      if (mounted) return c.body(null, 201, { Location: blobLocation(repository, digest.digest), "Docker-Content-Digest": digest.digest });
    }

    const whole = c.req.query("digest");
    if (whole !== undefined) {
      const digest = parseDigest(whole);
      const length = await declaredLength(c);
      if (length === undefined) {
        throw new RegistryError("LENGTH_REQUIRED", null, { message: "a monolithic upload needs Content-Length" });
      }
      await quota.ensureRoom(length);
      const record = await blobs.putWhole(repository, digest, c.req.raw.body, length);
      return c.body(null, 201, { Location: blobLocation(repository, record.digest), "Docker-Content-Digest": record.digest });
    }

    await quota.ensureRoom(0);
    const uploadId = await sessions.start(repository);
    return c.body(null, 202, {
      ...uploadHeaders(repository, uploadId, 0),
      "OCI-Chunk-Min-Length": String(Math.min(config.UPLOAD_PART_BYTES, config.MAX_BODY_BYTES)),
      "OCI-Chunk-Max-Length": String(config.MAX_BODY_BYTES),
    });
  })
  .get("/:name{.+}/blobs/uploads/:id", parsePath("uploadId"), requires("push"), mirrored, async (c) => {
    const { repository } = pathOf(c);
    const uploadId = uploadIdOf(c);
    const offset = await c.var.registry.uploads.status(repository, uploadId);
    return c.body(null, 204, uploadHeaders(repository, uploadId, offset));
  })
  .patch("/:name{.+}/blobs/uploads/:id", parsePath("uploadId"), requires("push"), mirrored, async (c) => {
    const { repository } = pathOf(c);
    const uploadId = uploadIdOf(c);
    const expect = await chunkExpectation(c);
    await c.var.registry.quota.ensureRoom(expect.length ?? 0);
    const body = hasBody(c, expect) ? c.req.raw.body : null;
    const offset = await c.var.registry.uploads.append(repository, uploadId, body, expect);
    return c.body(null, 202, uploadHeaders(repository, uploadId, offset));
  })
  .put("/:name{.+}/blobs/uploads/:id", parsePath("uploadId"), requires("push"), mirrored, async (c) => {
    const { repository } = pathOf(c);
    const uploadId = uploadIdOf(c);
    const query = c.req.query("digest");
    if (query === undefined) throw new RegistryError("DIGEST_INVALID", null, { message: "the digest query parameter is required" });
    const digest = parseDigest(query);
    const expect = await chunkExpectation(c);
    const body = hasBody(c, expect) ? c.req.raw.body : null;
    const { uploads: sessions, quota } = c.var.registry;
    const record = await sessions.complete(repository, uploadId, digest, body, expect, quota);
    return c.body(null, 201, { Location: blobLocation(repository, record.digest), "Docker-Content-Digest": record.digest });
  })
  .delete("/:name{.+}/blobs/uploads/:id", parsePath("uploadId"), requires("push"), mirrored, async (c) => {
    const { repository } = pathOf(c);
    await c.var.registry.uploads.cancel(repository, uploadIdOf(c));
    return c.body(null, 204);
  });

/** A mount source that is not a valid name is treated as not found: the client uploads instead. */
function tryName(name: string): string | null {
  try {
    return parseRepositoryName(name);
  } catch {
    return null;
  }
}
