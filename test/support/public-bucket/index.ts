// GET /<key> answers the object's bytes, honouring Range, as a public bucket does; GET /ready answers 200.
interface Env {
  BUCKET: R2Bucket;
}

export default {
  async fetch(request, env) {
    const key = decodeURIComponent(new URL(request.url).pathname.slice(1));
    if (key === "ready") return new Response("ready");
    if (request.method !== "GET" && request.method !== "HEAD") return new Response(null, { status: 405 });
    const object = await env.BUCKET.get(key, { range: request.headers });
    if (!object) return new Response("not found", { status: 404 });
    const headers = new Headers({ ETag: object.httpEtag, "Accept-Ranges": "bytes" });
    const range = object.range as { offset: number; length: number } | undefined;
    if (range && request.headers.has("Range")) {
      headers.set("Content-Range", `bytes ${range.offset}-${range.offset + range.length - 1}/${object.size}`);
      headers.set("Content-Length", String(range.length));
      return new Response(request.method === "HEAD" ? null : object.body, { status: 206, headers });
    }
    headers.set("Content-Length", String(object.size));
    return new Response(request.method === "HEAD" ? null : object.body, { headers });
  },
} satisfies ExportedHandler<Env>;
