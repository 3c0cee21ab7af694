import { Hono } from "hono";
import { requires } from "../auth/middleware";
import { mirrored } from "../mirror/middleware";
import type { AppEnv } from "../context";
import { MediaTypes } from "../manifests/schema";
import { decodeCursor, encodeCursor } from "../search/cursor";
import { parsePage } from "./pagination";
import { digestOf, parsePath, pathOf } from "./path";

// OCI dist-spec end-12a/12b: manifests whose subject is the digest, as an image index, a page at a time (the Link
// header leads on; `last` is an opaque position).
export const referrers = new Hono<AppEnv>().get("/:name{.+}/referrers/:digest", parsePath("digest"), requires("pull"), mirrored, async (c) => {
  const { repository } = pathOf(c);
  const subject = digestOf(c);
  const artifactType = c.req.query("artifactType") ?? null;
  const page = parsePage((name) => c.req.query(name));
  const position = decodeCursor(page.last ?? undefined);
  const after = position && { createdAt: position.key, digest: position.name };
  const { items, next } = await c.var.registry.manifests.referrers(repository, subject, artifactType, { limit: page.limit, after });
  if (artifactType !== null) c.header("OCI-Filters-Applied", "artifactType");
  if (next) {
    const query = new URLSearchParams({ n: String(page.limit), last: encodeCursor({ key: next.createdAt, name: next.digest }) });
    if (artifactType !== null) query.set("artifactType", artifactType);
    c.header("Link", `</v2/${repository}/referrers/${subject.digest}?${query}>; rel="next"`);
  }
  const index = {
    schemaVersion: 2,
    mediaType: MediaTypes.ociIndex,
    manifests: items.map((referrer) => ({
      mediaType: referrer.mediaType,
      digest: referrer.digest,
      size: referrer.size,
      ...(referrer.artifactType !== null && { artifactType: referrer.artifactType }),
      ...(referrer.annotations !== null && { annotations: referrer.annotations }),
    })),
  };
  return c.body(JSON.stringify(index), 200, { "Content-Type": MediaTypes.ociIndex });
});
