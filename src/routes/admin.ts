import { Hono, type MiddlewareHandler } from "hono";
import { ADMIN_ACTOR, actorOf } from "../audit/events";
import { nextPageQuery, parseAuditQuery, readAuditLog } from "../audit/log";
import { recordAdminRun } from "../audit/requests";
import { parseBasic, sameSecret } from "../auth/credentials";
import { verifyLimited } from "../auth/throttle";
import type { AppEnv } from "../context";
import { RegistryError } from "../errors";
import { collectGarbage, gcSummary } from "../gc/run";
import { prewarmMirrors, prewarmStatus } from "../mirror/prewarm";
import { mirrorStats } from "../mirror/stats";
import { importRequest, ImportQuery, osvStatus } from "../osv/admin";
import { runOsvJobs } from "../osv/jobs";
import { AccessTokenService, NewAccessToken, parseAccessTokenId } from "../services/access-tokens";
import { webhookStatus } from "../webhooks/status";
import { readJson } from "./bodies";

/** The admin API answers only to the admin token (a secret), as Bearer or as a Basic password. */
const adminOnly: MiddlewareHandler<AppEnv> = async (c, next) => {
  const adminToken = c.var.registry.config.ADMIN_TOKEN;
  if (!adminToken) throw new RegistryError("DENIED", null, { message: "the admin API is disabled: set the ADMIN_TOKEN secret" });
  const header = c.req.header("Authorization") ?? "";
  const basic = parseBasic(header);
  const presented = /^Bearer\s/i.test(header) ? header.replace(/^Bearer\s+/i, "").trim() : basic?.password;
  // Under the failed-login limit, as every check of a secret is.
  const admitted =
    presented !== undefined &&
    (await verifyLimited(c, { user: basic?.user ?? "", secret: presented }, async () => ((await sameSecret(presented, adminToken)) ? true : null)));
  if (!admitted) {
    throw new RegistryError("UNAUTHORIZED", null, { message: "the admin token is required", headers: { "WWW-Authenticate": 'Bearer realm="admin"' } });
  }
  await next();
};

export const admin = new Hono<AppEnv>()
  .use("/admin/*", adminOnly)
  .post("/admin/tokens", async (c) => {
    const body = NewAccessToken.safeParse(await readJson(c));
    if (!body.success) {
      throw new RegistryError("REQUEST_INVALID", body.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })), {
        message: "invalid access token request",
      });
    }
    return c.json(await new AccessTokenService(c.env.DB).create(body.data, actorOf(c, ADMIN_ACTOR)), 201);
  })
  // One garbage collection pass now; ?dryRun=true reports what would go, with sizes, and changes nothing.
  .post("/admin/gc", async (c) => {
    const report = await collectGarbage(c.env, { dryRun: c.req.query("dryRun") === "true" });
    await recordAdminRun(c, "admin.gc", gcSummary(report));
    return c.json(report);
  })
  .get("/admin/usage", async (c) => c.json(await c.var.registry.quota.usage()))
  // Per mirror: hits, misses, revalidations, stale serves, upstream errors, bytes fetched upstream and bytes saved.
  .get("/admin/mirrors", async (c) => c.json({ mirrors: await mirrorStats(c.env.DB, c.var.registry.config.MIRRORS) }))
  // Pre-warming: per mirror with a prewarm setting, each tag kept warm and how its last refresh went.
  .get("/admin/mirrors/prewarm", async (c) => c.json({ mirrors: await prewarmStatus(c.env.DB, c.var.registry.config.MIRRORS) }))
  // One pre-warming pass now (as the cron runs it): what it refreshed.
  .post("/admin/mirrors/prewarm", async (c) => {
    const mirrors = await prewarmMirrors(c.env, c.executionCtx);
    await recordAdminRun(c, "admin.prewarm", { mirrors: mirrors.map((mirror) => ({ prefix: mirror.prefix, refreshed: mirror.refreshed.length })) });
    return c.json({ mirrors });
  })
  // Per webhook endpoint: deliveries, failed attempts, dead letters, the last success and failure.
  .get("/admin/webhooks", async (c) => c.json({ endpoints: await webhookStatus(c.env.DB, c.var.registry.config.WEBHOOKS) }))
  .get("/admin/tokens", async (c) => c.json({ tokens: await new AccessTokenService(c.env.DB).list() }))
  // The OSV database (SBOM scanning): records, packages, its generation, each OSV_FEEDS feed's progress.
  .get("/admin/osv", async (c) => c.json(await osvStatus(c.env.DB, c.var.registry.config.OSV_FEEDS)))
  // OSV records: one as JSON, a JSON array, or an OSV export zip (?ecosystem= checks what they affect, ?skip= resumes).
  .post("/admin/osv/import", async (c) => {
    const query = ImportQuery.safeParse({ ecosystem: c.req.query("ecosystem"), skip: c.req.query("skip") });
    if (!query.success) {
      throw new RegistryError("REQUEST_INVALID", query.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })), { message: "invalid OSV import query" });
    }
    const report = await importRequest(c.env.DB, c.req.raw, query.data);
    await recordAdminRun(c, "admin.osv", { import: { ecosystem: query.data.ecosystem ?? null, imported: report.imported, rejected: report.rejected } });
    return c.json(report);
  })
  // One OSV pass now, as the cron runs it: feeds, SBOM discovery, rescans.
  .post("/admin/osv/refresh", async (c) => {
    const run = await runOsvJobs(c.env, c.var.registry.config);
    await recordAdminRun(c, "admin.osv", { refresh: { feeds: run.feeds.map((feed) => feed.status), rescanned: run.rescanned.length } });
    return c.json(run);
  })
  // The audit log, newest first: ?action=&repository=&actor=&since=&until=&limit=&cursor= (README: "Audit log").
  .get("/admin/audit", async (c) => {
    const query = parseAuditQuery((name) => c.req.query(name));
    const page = await readAuditLog(c.var.registry.db.current, query);
    if (page.next) c.header("Link", `</admin/audit?${nextPageQuery((name) => c.req.query(name), page.next)}>; rel="next"`);
    return c.json(page);
  })
  .delete("/admin/tokens/:id", async (c) => {
    await new AccessTokenService(c.env.DB).revoke(parseAccessTokenId(c.req.param("id")), actorOf(c, ADMIN_ACTOR));
    return c.body(null, 204);
  });
