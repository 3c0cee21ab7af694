import { app } from "./app";
import type { Env } from "./config";

export { MirrorBlobFetch } from "./mirror/blob-fetch";
export { UploadSession } from "./uploads/upload-session";

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>;
