import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "./context";

const REPOSITORY = /^\/v2\/(.+?)\/(?:manifests|blobs|tags|referrers)\//;

/** One JSON line per request: what was asked, by whom, the answer, bytes each way, and how long it took. */
export const requestLog: MiddlewareHandler<AppEnv> = async (c, next) => {
  const started = Date.now();
  await next();
  if (!c.var.registry?.config.LOG_REQUESTS) return;
  const bytesIn = Number(c.req.header("Content-Length") ?? 0);
  const bytesOut = Number(c.res.headers.get("Content-Length") ?? 0);
  console.log(
    JSON.stringify({
      event: "request",
      method: c.req.method,
      path: c.req.path.slice(0, 300),
      repository: REPOSITORY.exec(c.req.path)?.[1] ?? null,
      status: c.res.status,
      bytesIn,
      bytesOut,
      durationMs: Date.now() - started,
      caller: c.get("access")?.subject ?? null,
      client: c.req.header("CF-Connecting-IP") ?? null,
    }),
  );
};
