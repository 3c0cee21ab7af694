// Answers every request with the same small JSON body, the size of an image manifest: what a request costs in
// `wrangler dev` (wrangler's proxy, miniflare's entry Worker, one isolate) before any registry code runs.
const body = JSON.stringify({ schemaVersion: 2, padding: "x".repeat(740) });

export default {
  fetch() {
    return new Response(body, { headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" } });
  },
} satisfies ExportedHandler;
