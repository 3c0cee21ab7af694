import { app } from "./app";
import type { Env } from "./config";
import { collectGarbage } from "./gc/run";

export { MirrorBlobFetch } from "./mirror/blob-fetch";
export { UploadSession } from "./uploads/upload-session";

export default {
  fetch: app.fetch,
  // Cron Trigger: one bounded garbage collection pass.
  scheduled: (_controller, env, ctx) => ctx.waitUntil(collectGarbage(env).then(() => undefined)),
} satisfies ExportedHandler<Env>;
