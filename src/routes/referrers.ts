import { Hono } from "hono";
import { requires } from "../auth/middleware";
import { mirrored } from "../mirror/middleware";
import type { AppEnv } from "../context";
import { MediaTypes } from "../manifests/schema";
import { digestOf, parsePath, pathOf } from "./path";

// OCI dist-spec end-12a/12b: manifests whose subject is the digest, as an image index.
export const referrers = new Hono<AppEnv>().get("/:name{.+}/referrers/:digest", parsePath("digest"), requires("pull"), mirrored, async (c) => {
  const { repository } = pathOf(c);
  const artifactType = c.req.query("artifactType") ?? null;
  const found = await c.var.registry.manifests.referrers(repository, digestOf(c), artifactType);
  if (artifactType !== null) c.header("OCI-Filters-Applied", "artifactType");
  const index = {
    schemaVersion: 2,
    mediaType: MediaTypes.ociIndex,
    manifests: found.map((referrer) => ({
      mediaType: referrer.mediaType,
      digest: referrer.digest,
      size: referrer.size,
      ...(referrer.artifactType !== null && { artifactType: referrer.artifactType }),
      ...(referrer.annotations !== null && { annotations: referrer.annotations }),
    })),
  };
  return c.body(JSON.stringify(index), 200, { "Content-Type": MediaTypes.ociIndex });
});
