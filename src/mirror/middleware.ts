import type { MiddlewareHandler } from "hono";
import { secretOf, type Env } from "../config";
import type { AppEnv } from "../context";
import { pathOf } from "../routes/path";
import { MirrorBlobService } from "./blobs";
import { mirrorFor } from "./config";
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
      const secret = target.mirror.passwordSecret;
      const password = secret ? secretOf(c.env, secret) : undefined;
      const upstream = new Upstream(target.mirror, password, { log: config.LOG_REQUESTS });
      const report = new MirrorReport(target.mirror.prefix);
      c.set("registry", {
        ...c.var.registry,
        manifests: new MirrorManifestService(c.env, target, upstream, report, c.executionCtx),
        blobs: new MirrorBlobService(c.env as Env, target, upstream, c.executionCtx, report),
      });
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
