import { app } from "./app";
import { configOf, type Env } from "./config";
import { collectGarbage } from "./gc/run";
import { prewarmMirrors } from "./mirror/prewarm";
import { runOsvJobs } from "./osv/jobs";
import { handleWebhookBatch } from "./webhooks/deliver";
import type { WebhookMessage } from "./webhooks/events";

export { MirrorBlobFetch } from "./mirror/blob-fetch";
export { UploadSession } from "./uploads/upload-session";

export default {
  fetch: app.fetch,
  // Cron Trigger: one bounded garbage collection pass (eviction included), one pre-warming pass, then the OSV work
  // (feeds, SBOM discovery, rescans; src/osv/jobs.ts), each bounded.
  scheduled: (_controller, env, ctx) =>
    ctx.waitUntil(
      (async () => {
        await collectGarbage(env).catch((error) => console.error(JSON.stringify({ event: "gc-failed", error: String(error) })));
        await prewarmMirrors(env, ctx);
        await runOsvJobs(env, configOf(env)).catch((error) => console.error(JSON.stringify({ event: "osv-jobs-failed", error: String(error) })));
      })(),
    ),
  // Queues: webhook deliveries (registry-events) and the ones given up on (registry-events-dlq).
  queue: (batch, env) => handleWebhookBatch(batch, env),
} satisfies ExportedHandler<Env, WebhookMessage>;
