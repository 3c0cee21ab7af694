import { Hono, type Context } from "hono";
import { auditsRefusals, registryWrite } from "./audit/requests";
import { authenticate } from "./auth/middleware";
import { ConfigError } from "./config";
import { registryOf, type AppEnv } from "./context";
import { RegistryError } from "./errors";
import { requestLog } from "./logging";
import { SMALL_BODY_BYTES } from "./routes/bodies";
import { drain, DRAIN_LIMIT } from "./streams";
import { BOOKMARK_HEADER } from "./storage/database";
import { admin } from "./routes/admin";
import { base } from "./routes/base";
import { blobs } from "./routes/blobs";
import { catalog } from "./routes/catalog";
import { manifests } from "./routes/manifests";
import { referrers } from "./routes/referrers";
import { search } from "./routes/search";
import { tags } from "./routes/tags";
import { token } from "./routes/token";
import { uploads } from "./routes/uploads";
import { ui } from "./ui/app";

export const app = new Hono<AppEnv>();

app.use("*", requestLog);
app.use("*", async (c, next) => {
  c.set("registry", registryOf(c.env, c.req.raw, c.executionCtx));
  await next();
  c.res.headers.set("Docker-Distribution-API-Version", "registry/2.0");
  const bookmark = c.var.registry.db.latestBookmark();
  if (bookmark) c.res.headers.set(BOOKMARK_HEADER, bookmark);
});

app.use("/v2/*", authenticate);
// Refused writes of authenticated callers go to the audit log (src/audit/requests.ts).
app.use("/v2/*", auditsRefusals(registryWrite));
app.use("/api/*", authenticate);

app.route("/", token);
app.route("/", admin);
app.route("/", base);
app.route("/v2", catalog);
// Uploads before blobs: "/blobs/uploads/" must not be read as a blob digest.
app.route("/v2", uploads);
app.route("/v2", blobs);
app.route("/v2", manifests);
app.route("/v2", tags);
app.route("/v2", referrers);
// Browsing: the search API and the web UI (which knows its visitor from a session cookie, see src/ui/session.ts).
app.route("/", search);
app.route("/", ui);

/**
 * A refused request's unread body is read (and dropped) before the answer, so that a client still sending reads the
 * answer instead of a reset connection: up to DRAIN_LIMIT for the registry API (layers), up to SMALL_BODY_BYTES
 * elsewhere, where no client sends more (a body declared larger is left unread there).
 */
async function unread(c: Context<AppEnv>): Promise<void> {
  const request = c.req.raw;
  if (!request.body || request.bodyUsed) return;
  const limit = c.req.path.startsWith("/v2/") ? DRAIN_LIMIT : SMALL_BODY_BYTES;
  if (Number(request.headers.get("Content-Length") ?? 0) > limit) return;
  await drain(request.body, limit);
}

app.notFound(async (c) => {
  await unread(c);
  return new RegistryError("NOT_FOUND", { path: c.req.path.slice(0, 300) }, { message: "no such endpoint" }).toResponse(c.req.method);
});

app.onError(async (error, c) => {
  await unread(c);
  const response = (() => {
    if (error instanceof RegistryError) return error.toResponse(c.req.method);
    if (error instanceof ConfigError) {
      console.error(error.message);
      return new RegistryError("UNKNOWN", { issues: error.issues }, { message: "the registry is misconfigured" }).toResponse(c.req.method);
    }
    console.error("unhandled error", c.req.method, c.req.path, error);
    return new RegistryError("UNKNOWN", null).toResponse(c.req.method);
  })();
  response.headers.set("Docker-Distribution-API-Version", "registry/2.0");
  return response;
});
