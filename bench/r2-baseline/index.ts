// PUT /<key> stores the body as it is (R2.put of the request stream); GET /<key> returns it. Nothing else: no
// hashing, no metadata, so the registry's figures can be read as a ratio to what R2 itself costs here.
// PUT /<key>?partBytes=<n> stores the body as a multipart object of n-byte parts, to tell the cost of reading a
// multipart object (as the registry's chunked uploads are) from that of reading a single one.
interface Env {
  BUCKET: R2Bucket;
}

export default {
  async fetch(request, env) {
    const key = new URL(request.url).pathname.slice(1);
    const partBytes = Number(new URL(request.url).searchParams.get("partBytes") ?? 0);
    if (request.method === "PUT" && partBytes > 0 && request.body) {
      const upload = await env.BUCKET.createMultipartUpload(key);
      const reader = request.body.getReader({ mode: "byob" });
      const parts: R2UploadedPart[] = [];
      for (;;) {
        const { done, value } = await reader.readAtLeast(partBytes, new Uint8Array(partBytes));
        if (value && value.byteLength > 0) parts.push(await upload.uploadPart(parts.length + 1, value));
        if (done || !value || value.byteLength < partBytes) break;
      }
      await upload.complete(parts);
      return new Response(null, { status: 201 });
    }
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
