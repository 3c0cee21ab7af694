// Answers every request with the same small JSON body, the size of an image manifest: what a request costs in
// `wrangler dev` (wrangler's proxy, miniflare's entry Worker, one isolate) before any registry code runs.
// GET /d1 answers the same body read from local D1 by primary key, one statement through a D1 session, as a manifest GET reads it: the
// floor of a request that has to ask D1 (which the registry's GET by tag and by digest do, see bench/RESULTS.md).
const body = JSON.stringify({ schemaVersion: 2, padding: "x".repeat(740) });

interface Env {
  DB: D1Database;
}

let seeded: Promise<unknown> | null = null;

export default {
  async fetch(request, env) {
    if (new URL(request.url).pathname !== "/d1") {
      return new Response(body, { headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" } });
    }
    seeded ??= env.DB.batch([
      env.DB.prepare("CREATE TABLE IF NOT EXISTS manifests (repository TEXT NOT NULL, digest TEXT NOT NULL, body BLOB NOT NULL, PRIMARY KEY (repository, digest))"),
      env.DB.prepare("INSERT OR IGNORE INTO manifests VALUES ('bench/small', 'sha256:0', ?)").bind(body),
    ]);
    await seeded;
    // Through a session, as the registry reads (src/storage/database.ts).
    const row = await env.DB.withSession("first-unconstrained").prepare("SELECT body FROM manifests WHERE repository = ? AND digest = ?").bind("bench/small", "sha256:0").first<{ body: string }>();
    return new Response(row!.body, { headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" } });
  },
} satisfies ExportedHandler<Env>;
