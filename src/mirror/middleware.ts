import type { MiddlewareHandler } from "hono";
import type { Waiter } from "../cache/edge";
import { secretOf, type Env } from "../config";
import type { AppEnv } from "../context";
import { pathOf } from "../routes/path";
import { MirrorBlobService } from "./blobs";
import { mirrorFor, type MirrorTarget } from "./config";
import { MirrorManifestService, readOnly } from "./manifests";
import { flushWhenDue } from "./stats";
import { MirrorReport } from "./status";
import { Upstream } from "./upstream";

/**
 * For a repository under a mirror's prefix, the routes get mirror-backed services (the same interfaces, backed by
 * the upstream) and writes are refused; each answer says how it was served (X-Mirror-Status) and is counted. Other
 * repositories pass through untouched.
 */
export const mirrored: MiddlewareHandler<AppEnv> = async (c, next) => {
  const { config } = c.var.registry;
  if (config.MIRRORS.length > 0) {
    const { repository } = pathOf(c);
    const target = mirrorFor(config.MIRRORS, repository);
    if (target) {
      if (c.req.method !== "GET" && c.req.method !== "HEAD") throw readOnly();
      const { manifests, blobs, report } = mirrorServices(c.env, target, c.executionCtx, config.LOG_REQUESTS);
      c.set("registry", { ...c.var.registry, manifests, blobs });
      // Marked after the edge cache (tagCached, inside this) has kept or answered the response: it keeps only answers
      // without X-Mirror-Status (a stale one says so itself), and one it answers reached no service, so is a hit.
      await next();
      report.finish(c.req.method, c.res);
      flushWhenDue(c.env.DB, c.executionCtx);
      return;
    }
  }
  await next();
};

/** The services that back one mirrored repository, and the report of how they served it. */
export function mirrorServices(env: Env, target: MirrorTarget, waiter: Waiter, log: boolean) {
  const secret = target.mirror.passwordSecret;
  const password = secret ? secretOf(env, secret) : undefined;
  const upstream = new Upstream(target.mirror, password, { log });
  const report = new MirrorReport(target.mirror.prefix);
  return {
    manifests: new MirrorManifestService(env, target, upstream, report, waiter),
    blobs: new MirrorBlobService(env, target, upstream, waiter, report),
    report,
  };
}
