// PUT /<key> stores the body as it is (R2.put of the request stream); GET /<key> returns it. Nothing else: no
// hashing, no metadata, so the registry's figures can be read as a ratio to what R2 itself costs here.
interface Env {
  BUCKET: R2Bucket;
}

export default {
  async fetch(request, env) {
    const key = new URL(request.url).pathname.slice(1);
    if (request.method === "PUT") {
      await env.BUCKET.put(key, request.body);
      return new Response(null, { status: 201 });
    }
    if (request.method === "GET") {
      const object = await env.BUCKET.get(key);
      if (!object) return new Response(null, { status: 404 });
      return new Response(object.body, { headers: { "Content-Length": String(object.size) } });
    }
    return new Response(null, { status: 405 });
  },
} satisfies ExportedHandler<Env>;
