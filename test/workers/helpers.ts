import { createExecutionContext, SELF, waitOnExecutionContext } from "cloudflare:test";
import { expect } from "vitest";
import worker from "../../src/index";

export const ORIGIN = "http://registry.test";
export const MiB = 1024 * 1024;

export function call(path: string, init?: RequestInit): Promise<Response> {
  return SELF.fetch(`${ORIGIN}${path}`, init);
}

export function randomBytes(size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let at = 0; at < size; at += 65536) crypto.getRandomValues(bytes.subarray(at, Math.min(at + 65536, size)));
  return bytes;
}

export async function sha256(bytes: Uint8Array | string): Promise<string> {
  const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return `sha256:${[...hash].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** A blob body as text (blobs are served as octet-stream). */
export async function textOf(response: Response): Promise<string> {
  return new TextDecoder().decode(await response.arrayBuffer());
}

/** Asserts an OCI error response and returns its body. */
export async function expectError(response: Response, status: number, code: string) {
  expect(response.status).toBe(status);
  const body = (await response.json()) as { errors: { code: string; message: string; detail: unknown }[] };
  expect(body.errors[0]?.code).toBe(code);
  expect(typeof body.errors[0]?.message).toBe("string");
  return body;
}

/** Pushes a blob in one request (POST ?digest=) and returns its digest. */
export async function pushBlob(repository: string, bytes: Uint8Array | string): Promise<string> {
  const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  const digest = await sha256(data);
  const response = await call(`/v2/${repository}/blobs/uploads/?digest=${digest}`, { method: "POST", body: data });
  expect(response.status).toBe(201);
  return digest;
}

export async function startUpload(repository: string): Promise<string> {
  const response = await call(`/v2/${repository}/blobs/uploads/`, { method: "POST" });
  expect(response.status).toBe(202);
  return response.headers.get("Location")!;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  [key: string]: unknown;
}

export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
export const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
export const DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json";
export const EMPTY_CONFIG = { mediaType: "application/vnd.oci.empty.v1+json", digest: "", size: 2 };

/** Pushes a config and layers of the given sizes; returns a valid OCI image manifest that references them. */
export async function pushImage(repository: string, layerSizes: number[] = [1024, 2048]) {
  const config = JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } });
  const configDigest = await pushBlob(repository, config);
  const layers: Descriptor[] = [];
  for (const size of layerSizes) {
    const bytes = randomBytes(size);
    layers.push({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: await pushBlob(repository, bytes), size });
  }
  return {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: configDigest, size: config.length },
    layers,
  };
}

export async function putManifest(
  repository: string,
  reference: string,
  manifest: unknown,
  contentType = OCI_MANIFEST,
): Promise<Response> {
  const body = typeof manifest === "string" ? manifest : JSON.stringify(manifest);
  return call(`/v2/${repository}/manifests/${reference}`, {
    method: "PUT",
    headers: { "Content-Type": contentType },
    body,
  });
}

/** Pushes a manifest and returns its digest, asserting success. */
export async function pushManifest(repository: string, reference: string, manifest: unknown, contentType = OCI_MANIFEST) {
  const response = await putManifest(repository, reference, manifest, contentType);
  expect(response.status, await response.clone().text()).toBe(201);
  return response.headers.get("Docker-Content-Digest")!;
}

export function descriptorOf(body: string, digest: string, mediaType = OCI_MANIFEST): Descriptor {
  return { mediaType, digest, size: new TextEncoder().encode(body).byteLength };
}

/**
 * A request to the Worker with an env of its own (extra settings), after the work it left to waitUntil (what a
 * push starts after its response: signature verdicts, reports, scans). Bodies get their Content-Length.
 */
export async function callWith(withEnv: object, path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (init.body instanceof Uint8Array) headers.set("Content-Length", String(init.body.byteLength));
  if (typeof init.body === "string") headers.set("Content-Length", String(new TextEncoder().encode(init.body).byteLength));
  const ctx = createExecutionContext();
  const response = await worker.fetch(new Request(`${ORIGIN}${path}`, { ...init, headers }), withEnv as never, ctx);
  await waitOnExecutionContext(ctx);
  return response;
}

/** A blob pushed whole (POST ?digest=) through `send`: its digest and size, for a descriptor. */
export async function pushBlobThrough(
  send: (path: string, init: RequestInit) => Promise<Response>,
  repository: string,
  bytes: Uint8Array | string,
): Promise<{ digest: string; size: number }> {
  const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  const digest = await sha256(data);
  const response = await send(`/v2/${repository}/blobs/uploads/?digest=${digest}`, { method: "POST", body: data });
  expect(response.status).toBe(201);
  return { digest, size: data.byteLength };
}
