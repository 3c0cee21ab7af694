import { Hono } from "hono";
import { actorOf } from "../audit/events";
import { requires } from "../auth/middleware";
import { immutable, purgeEdgeCache, tagCached } from "../cache/edge";
import { mirrored } from "../mirror/middleware";
import { scanAfterPush } from "../osv/jobs";
import { enforcePullPolicies } from "../policies/enforce";
import { countsPulls } from "../services/pulls";
import { notifiesPulls, notify } from "../webhooks/emit";
import type { AppEnv } from "../context";
import { RegistryError } from "../errors";
import { acceptsManifest } from "../manifests/schema";
import { readAtMost } from "../streams";
import { parsePath, pathOf, referenceOf } from "./path";

/** Reads a request body of at most `limit` bytes; a larger one is refused without being read to the end. */
async function readBounded(request: Request, limit: number): Promise<Uint8Array> {
  const tooLarge = () =>
    new RegistryError("REQUEST_TOO_LARGE", { limit }, { message: `manifest is larger than ${limit} bytes (MAX_MANIFEST_BYTES)` });
  const declared = Number(request.headers.get("Content-Length") ?? "0");
  if (declared > limit) throw tooLarge();
  if (!request.body) return new Uint8Array(0);
  const bytes = await readAtMost(request.body, limit);
  if (!bytes) throw tooLarge();
  return bytes;
}

// OCI dist-spec end-3 (GET/HEAD), end-7 (PUT), end-9 (DELETE).
export const manifests = new Hono<AppEnv>()
  .get("/:name{.+}/manifests/:reference", parsePath("reference"), requires("pull"), mirrored, countsPulls, notifiesPulls, tagCached, async (c) => {
    const { repository } = pathOf(c);
    const reference = referenceOf(c);
    const { record, body, headers: notes } = await c.var.registry.manifests.resolve(repository, reference);
    // Accept lists every header of that name joined by commas.
    if (!acceptsManifest(c.req.header("Accept") ?? null, record.mediaType)) {
      throw new RegistryError("MANIFEST_UNKNOWN", { repository, mediaType: record.mediaType }, {
        message: `the manifest is ${record.mediaType}, which the request's Accept header does not include`,
      });
    }
    // Pull policies (src/policies/): the manifest about to be served, a tag's as a digest's; DENIED when it fails one.
    const governed = await enforcePullPolicies(c, repository, {
      digest: record.digest,
      mediaType: record.mediaType,
      body: record.body,
      ...("tag" in reference && { tag: reference.tag }),
    });
    const headers = {
      ...notes,
      "Content-Type": record.mediaType,
      "Content-Length": String(record.size),
      "Docker-Content-Digest": record.digest,
      ETag: `"${record.digest}"`,
    };
    // A tag can move at any time: caches must ask again, or keep it TAG_CACHE_SECONDS (set by the edge cache then).
    // Under a policy, a digest's answer can change too (a signature or a finding comes or goes): no cache keeps it.
    if (governed) c.header("Cache-Control", "private, no-cache");
    else if ("digest" in reference) c.header("Cache-Control", immutable(c.var.registry.config, repository));
    else if (c.var.registry.config.TAG_CACHE_SECONDS === 0) c.header("Cache-Control", "no-cache");
    if (c.req.header("If-None-Match") === headers.ETag) return c.body(null, 304, headers);
    if (c.req.method === "HEAD") return c.body(null, 200, headers);
    return c.body((await body()) as string, 200, headers);
  })
  .put("/:name{.+}/manifests/:reference", parsePath("reference"), requires("push"), mirrored, async (c) => {
    const { repository } = pathOf(c);
    const reference = referenceOf(c);
    const bytes = await readBounded(c.req.raw, c.var.registry.config.MAX_MANIFEST_BYTES);
    const { digest, subject, mediaType } = await c.var.registry.manifests.put(
      repository,
      reference,
      c.req.header("Content-Type") ?? null,
      bytes,
      actorOf(c),
    );
    const headers: Record<string, string> = {
      Location: `/v2/${repository}/manifests/${digest}`,
      "Docker-Content-Digest": digest,
    };
    if (subject) headers["OCI-Subject"] = subject;
    // A signature (a referrer, or a sha256-<hex>.sig tag): the signed manifest's verdict, after the response.
    c.var.registry.signatures.afterPush(repository, reference, subject);
    // An SBOM (a referrer) or an index (buildx's SBOM attestations): scanned against the OSV database, after the response.
    scanAfterPush(c.env, c.executionCtx, repository, { digest, mediaType }, subject);
    // A vulnerability report (a referrer): its subject's findings, after the response.
    c.var.registry.vulnerabilities.afterPush(repository, subject);
    // A push by tag is also a tag move when the tag named another manifest (Distribution sends it as a push too).
    notify(c, { action: "push", repository, digest, mediaType, size: bytes.byteLength, ...("tag" in reference && { tag: reference.tag }) });
    if ("tag" in reference && c.var.registry.config.TAG_CACHE_SECONDS > 0) await purgeEdgeCache(repository, "manifests", reference.tag);
    return c.body(null, 201, headers);
  })
  .delete("/:name{.+}/manifests/:reference", parsePath("reference"), requires("delete"), mirrored, async (c) => {
    const { repository } = pathOf(c);
    const reference = referenceOf(c);
    await c.var.registry.manifests.delete(repository, reference, actorOf(c));
    notify(c, { action: "delete", repository, ...("tag" in reference ? { tag: reference.tag } : { digest: reference.digest.digest }) });
    if ("tag" in reference) await purgeEdgeCache(repository, "manifests", reference.tag);
    return c.body(null, 202);
  });
