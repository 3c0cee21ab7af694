// PUT /<key> stores the body as it is (R2.put of the request stream); GET /<key> returns it. Nothing else: no
// hashing, no metadata, so the registry's figures can be read as a ratio to what R2 itself costs here.
// PUT /<key>?partBytes=<n> stores the body as a multipart object of n-byte parts, to tell the cost of reading a
// multipart object (as the registry's chunked uploads are) from that of reading a single one.
//
// The hops of a push, each alone, to tell where the registry's push time goes (bench/uploads.ts):
//   PUT /hop/drain      the Worker reads the body in 1 MiB reads, as the registry does, and drops it (client → Worker)
//   PUT /hop/hash       the same, hashing every byte with the resumable SHA-256 in JavaScript (@stablelib/sha256)
//   PUT /hop/native-hash  the same, hashing with the runtime's native crypto.DigestStream
//   PUT /hop/do-drain   the Worker hands the body to a Durable Object, which reads and drops it (Worker → DO)
//   PUT /hop/do-parts   the Durable Object writes it as a multipart object of ?partBytes= parts (DO → R2)
import { DurableObject } from "cloudflare:workers";
import { SHA256 } from "@stablelib/sha256";

interface Env {
  BUCKET: R2Bucket;
  HOP: DurableObjectNamespace<Hop>;
}

const READ_BYTES = 1024 * 1024;

/** Reads a body to its end in reads of at least `bytes`, handing each to `take`. */
async function readAll(body: ReadableStream<Uint8Array>, bytes: number, take: (chunk: Uint8Array) => unknown): Promise<number> {
  const reader = body.getReader({ mode: "byob" });
  let total = 0;
  for (;;) {
    const { done, value } = await reader.readAtLeast(bytes, new Uint8Array(bytes));
    if (value && value.byteLength > 0) {
      total += value.byteLength;
      await take(value);
    }
    if (done || !value || value.byteLength < bytes) return total;
  }
}

async function multipartPut(bucket: R2Bucket, key: string, body: ReadableStream<Uint8Array>, partBytes: number): Promise<void> {
  const upload = await bucket.createMultipartUpload(key);
  const parts: R2UploadedPart[] = [];
  await readAll(body, partBytes, async (part) => parts.push(await upload.uploadPart(parts.length + 1, part)));
  await upload.complete(parts);
}

export class Hop extends DurableObject<Env> {
  async drain(body: ReadableStream<Uint8Array>): Promise<number> {
    return readAll(body, READ_BYTES, () => undefined);
  }

  async parts(key: string, body: ReadableStream<Uint8Array>, partBytes: number): Promise<void> {
    await multipartPut(this.env.BUCKET, key, body, partBytes);
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const key = url.pathname.slice(1);
    const partBytes = Number(url.searchParams.get("partBytes") ?? 0);
    if (request.method === "PUT" && key.startsWith("hop/") && request.body) {
      const hop = env.HOP.get(env.HOP.idFromName(crypto.randomUUID()));
      if (key === "hop/drain") await readAll(request.body, READ_BYTES, () => undefined);
      else if (key === "hop/hash") {
        const hash = new SHA256();
        await readAll(request.body, READ_BYTES, (chunk) => hash.update(chunk));
        hash.digest();
      } else if (key === "hop/native-hash") {
        const digester = new crypto.DigestStream("SHA-256");
        const writer = digester.getWriter();
        await readAll(request.body, READ_BYTES, (chunk) => writer.write(chunk));
        await writer.close();
        await digester.digest;
      } else if (key === "hop/do-drain") await hop.drain(request.body);
      else if (key === "hop/do-parts" && partBytes > 0) await hop.parts(key, request.body, partBytes);
      else return new Response(null, { status: 404 });
      return new Response(null, { status: 201 });
    }
    if (request.method === "PUT" && partBytes > 0 && request.body) {
      await multipartPut(env.BUCKET, key, request.body, partBytes);
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
