import { Hono } from "hono";
import { actorOf } from "../audit/events";
import { requires } from "../auth/middleware";
import { immutable, purgeEdgeCache } from "../cache/edge";
import { mirrored } from "../mirror/middleware";
import type { AppEnv } from "../context";
import { parseRange } from "../ranges";
import { downloadUrl } from "../services/downloads";
import { digestOf, parsePath, pathOf } from "./path";

// OCI dist-spec end-2 (GET/HEAD) and end-10 (DELETE).
export const blobs = new Hono<AppEnv>()
  .get("/:name{.+}/blobs/:digest", parsePath("digest"), requires("pull"), mirrored, async (c) => {
    const { repository } = pathOf(c);
    const digest = digestOf(c);
    // The link row is read on every request, cached bytes or not: a cache never answers for a deleted link.
    const record = await c.var.registry.blobs.stat(repository, digest);
    const headers: Record<string, string> = {
      "Content-Type": "application/octet-stream",
      "Docker-Content-Digest": record.digest,
      ETag: `"${record.digest}"`,
      "Accept-Ranges": "bytes",
    };
    // Bytes streamed from a mirror's upstream are checked only once stored: no cache may keep this response.
    if (c.var.registry.blobs.servesStoredCopy(record)) headers["Cache-Control"] = immutable(c.var.registry.config, repository);
    else headers["X-Mirror-Status"] = "miss";
    if (c.req.header("If-None-Match") === headers.ETag) return c.body(null, 304, headers);
    const range = parseRange(c.req.header("Range") ?? null, record.size);
    const length = range ? range.length : record.size;
    headers["Content-Length"] = String(length);
    if (range) headers["Content-Range"] = `bytes ${range.offset}-${range.offset + range.length - 1}/${record.size}`;
    const status = range ? 206 : 200;
    if (c.req.method === "HEAD") return c.body(null, status, headers);
    // Large layers can skip the Worker: the client follows a 307 (with its Range) to R2.
    const location = c.var.registry.blobs.servesStoredCopy(record) ? await downloadUrl(c.var.registry.config, repository, record) : null;
    if (location) return c.body(null, 307, { Location: location, "Docker-Content-Digest": record.digest, "Cache-Control": "no-store" });
    const { body, cache } = await c.var.registry.blobs.open(repository, record, range);
    if (cache) headers["X-Edge-Cache"] = cache;
    return c.body(body, status, headers);
  })
  .delete("/:name{.+}/blobs/:digest", parsePath("digest"), requires("delete"), mirrored, async (c) => {
    const { repository } = pathOf(c);
    const digest = digestOf(c);
    await c.var.registry.blobs.unlink(repository, digest, actorOf(c));
    await purgeEdgeCache(repository, "blobs", digest.digest);
    return c.body(null, 202);
  });
