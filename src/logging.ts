import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "./context";

const REPOSITORY = /^\/v2\/(.+?)\/(?:manifests|blobs|tags|referrers)\//;

/**
 * One JSON line per request: what was asked, by whom, the answer, bytes each way, and how long it took. Writes,
 * failures and slow requests are always logged; successful quick reads (GET and HEAD below 400, or a 401 challenge
 * or a 404, both of which every pull and push asks for as a matter of course) only at LOG_READ_SAMPLE_RATE, and
 * their lines say so (`sampled`: multiply counts by 1/sampled).
 */
export const requestLog: MiddlewareHandler<AppEnv> = async (c, next) => {
  const started = Date.now();
  await next();
  const config = c.var.registry?.config;
  if (!config?.LOG_REQUESTS) return;
  const durationMs = Date.now() - started;
  const status = c.res.status;
  const routine = (c.req.method === "GET" || c.req.method === "HEAD") && (status < 400 || status === 401 || status === 404) && durationMs < config.LOG_SLOW_MS;
  if (routine && Math.random() >= config.LOG_READ_SAMPLE_RATE) return;
  console.log(
    JSON.stringify({
      event: "request",
      method: c.req.method,
      path: c.req.path.slice(0, 300),
      repository: REPOSITORY.exec(c.req.path)?.[1] ?? null,
      status,
      bytesIn: Number(c.req.header("Content-Length") ?? 0),
      bytesOut: Number(c.res.headers.get("Content-Length") ?? 0),
      durationMs,
      caller: c.get("access")?.subject ?? null,
      client: c.req.header("CF-Connecting-IP") ?? null,
      ...(routine && { sampled: config.LOG_READ_SAMPLE_RATE }),
    }),
  );
};
