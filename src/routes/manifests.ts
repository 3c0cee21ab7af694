import { Hono } from "hono";
import { requires } from "../auth/middleware";
import { edgeCached, purgeEdgeCache } from "../cache/edge";
import { mirrored } from "../mirror/middleware";
import type { AppEnv } from "../context";
import { RegistryError } from "../errors";
import { parseRepositoryName } from "../references";
import { readAtMost } from "../streams";

/** Reads a request body of at most `limit` bytes; a larger one is refused without being read to the end. */
async function readBounded(request: Request, limit: number): Promise<Uint8Array> {
  const tooLarge = () =>
    new RegistryError("SIZE_INVALID", { limit }, { status: 413, message: `manifest is larger than ${limit} bytes` });
  const declared = Number(request.headers.get("Content-Length") ?? "0");
  if (declared > limit) throw tooLarge();
  if (!request.body) return new Uint8Array(0);
  const bytes = await readAtMost(request.body, limit);
  if (!bytes) throw tooLarge();
  return bytes;
}

// OCI dist-spec end-3 (GET/HEAD), end-7 (PUT), end-9 (DELETE).
export const manifests = new Hono<AppEnv>()
  .get("/:name{.+}/manifests/:reference", requires("pull"), mirrored, edgeCached("manifests"), async (c) => {
    const repository = parseRepositoryName(c.req.param("name"));
    const { record, body, headers: notes } = await c.var.registry.manifests.resolve(repository, c.req.param("reference"));
    const headers = {
      ...notes,
      "Content-Type": record.mediaType,
      "Content-Length": String(record.size),
      "Docker-Content-Digest": record.digest,
      ETag: `"${record.digest}"`,
    };
    // A tag can move at any time: caches must ask again, or keep it TAG_CACHE_SECONDS (set by the edge cache then).
    if (!c.req.param("reference").includes(":") && c.var.registry.config.TAG_CACHE_SECONDS === 0) c.header("Cache-Control", "no-cache");
    if (c.req.header("If-None-Match") === headers.ETag) return c.body(null, 304, headers);
    if (c.req.method === "HEAD") return c.body(null, 200, headers);
    return c.body((await body()) as string, 200, headers);
  })
  .put("/:name{.+}/manifests/:reference", requires("push"), mirrored, async (c) => {
    const repository = parseRepositoryName(c.req.param("name"));
    const reference = c.req.param("reference");
    const bytes = await readBounded(c.req.raw, c.var.registry.config.MAX_MANIFEST_BYTES);
    const { digest, subject } = await c.var.registry.manifests.put(
      repository,
      reference,
      c.req.header("Content-Type") ?? null,
      bytes,
    );
    const headers: Record<string, string> = {
      Location: `/v2/${repository}/manifests/${digest}`,
      "Docker-Content-Digest": digest,
    };
    if (subject) headers["OCI-Subject"] = subject;
    if (!reference.includes(":") && c.var.registry.config.TAG_CACHE_SECONDS > 0) await purgeEdgeCache(repository, "manifests", reference);
    return c.body(null, 201, headers);
  })
  .delete("/:name{.+}/manifests/:reference", requires("delete"), mirrored, async (c) => {
    const repository = parseRepositoryName(c.req.param("name"));
    const reference = c.req.param("reference");
    await c.var.registry.manifests.delete(repository, reference);
    await purgeEdgeCache(repository, "manifests", reference);
    return c.body(null, 202);
  });
