// An image in another registry (or another repository of the same one): manifests fetched with every media type
// accepted, blobs streamed from the offset asked (a Range request), following redirects to blob storage.
import { Readable } from "node:stream";
import { discard, header, readText, send } from "../http.ts";
import { MANIFEST_ACCEPT, mediaTypeOf, sha256Digest, type Descriptor, type Manifest } from "../manifests.ts";
import { formatReference, type ImageReference } from "../reference.ts";
import { fail, type RegistryClient } from "../registry-client.ts";

export class RegistrySource {
  readonly client: RegistryClient;
  readonly reference: ImageReference;
  readonly description: string;

  constructor(client: RegistryClient, reference: ImageReference) {
    this.client = client;
    this.reference = reference;
    this.description = formatReference(reference);
  }

  async root(): Promise<Manifest> {
    return this.#fetchManifest(this.reference.digest ?? this.reference.tag ?? "latest", this.reference.digest);
  }

  async manifest(wanted: Descriptor): Promise<Manifest> {
    return this.#fetchManifest(wanted.digest, wanted.digest);
  }

  /** `digest`: the digest the bytes must have. */
  async #fetchManifest(reference: string, digest: string | undefined): Promise<Manifest> {
    const path = `/v2/${this.reference.repository}/manifests/${reference}`;
    const response = await this.client.request("GET", path, { headers: { Accept: MANIFEST_ACCEPT } });
    if (response.statusCode !== 200) return fail(response, `GET ${this.description} manifest ${reference}`);
    const parts: Buffer[] = [];
    for await (const chunk of response) parts.push(chunk);
    const bytes = Buffer.concat(parts);
    const actual = sha256Digest(bytes);
    if (digest && actual !== digest) throw new Error(`${this.description}: manifest ${digest} arrived with digest ${actual}`);
    const served = header(response, "content-type")?.split(";")[0]?.trim();
    return { digest: actual, bytes, mediaType: mediaTypeOf(bytes, served) };
  }

  async openBlob(blob: Descriptor, start: number): Promise<Readable> {
    const headers = start > 0 ? { Range: `bytes=${start}-` } : {};
    let response = await this.client.request("GET", `/v2/${this.reference.repository}/blobs/${blob.digest}`, { headers });
    for (let hops = 0; hops < 5 && [301, 302, 303, 307, 308].includes(response.statusCode ?? 0); hops++) {
      const location = header(response, "location");
      discard(response);
      if (!location) break;
      const next = new URL(location, this.client.origin);
      // Presigned storage URLs carry their own authorization; ours must not leak to another host.
      response = next.origin === this.client.origin.origin
        ? await this.client.request("GET", next, { headers })
        : await send(next, { method: "GET", headers });
    }
    if (response.statusCode === 206 || (response.statusCode === 200 && start === 0)) return response;
    if (response.statusCode === 200) return skip(response, start);
    throw new Error(`GET ${this.description} blob ${blob.digest}: HTTP ${response.statusCode} ${await readText(response, 4096)}`);
  }
}

/** A whole-body response (a server that ignored Range) from `start` on. */
async function* skipping(stream: Readable, start: number): AsyncGenerator<Buffer> {
  let left = start;
  for await (const chunk of stream) {
    if (left >= chunk.length) {
      left -= chunk.length;
      continue;
    }
    yield left > 0 ? chunk.subarray(left) : chunk;
    left = 0;
  }
}

const skip = (stream: Readable, start: number): Readable => Readable.from(skipping(stream, start), { objectMode: false });
