// Pushes small images, indexes and artifacts with fetch, for end-to-end tests that need content with particular
// annotations, configs and referrers (what skopeo and podman cannot easily make).
import { createHash } from "node:crypto";
import { MediaTypes, randomBytes } from "./oci-layout";

export interface Pushed {
  mediaType: string;
  digest: string;
  size: number;
}

const digestOf = (bytes: Uint8Array | string) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;

export class RegistryClient {
  constructor(
    private readonly url: string,
    /** The Authorization header sent with every request (Basic with an access token or the admin token). */
    private readonly authorization: string,
  ) {}

  async pushBlob(repository: string, bytes: Uint8Array | string): Promise<Pushed> {
    const body = typeof bytes === "string" ? new TextEncoder().encode(bytes) : new Uint8Array(bytes);
    const digest = digestOf(body);
    const response = await fetch(`${this.url}/v2/${repository}/blobs/uploads/?digest=${digest}`, {
      method: "POST",
      headers: { Authorization: this.authorization, "Content-Type": "application/octet-stream" },
      body,
    });
    if (response.status !== 201) throw new Error(`blob push to ${repository}: ${response.status} ${await response.text()}`);
    return { mediaType: "application/octet-stream", digest, size: body.byteLength };
  }

  /** PUTs a manifest by tag, or by its digest when `tag` is null. */
  async pushManifest(repository: string, tag: string | null, manifest: { mediaType: string } & Record<string, unknown>): Promise<Pushed> {
    const text = JSON.stringify(manifest);
    const digest = digestOf(text);
    const response = await fetch(`${this.url}/v2/${repository}/manifests/${tag ?? digest}`, {
      method: "PUT",
      headers: { Authorization: this.authorization, "Content-Type": manifest.mediaType },
      body: text,
    });
    if (response.status !== 201) throw new Error(`manifest push to ${repository}: ${response.status} ${await response.text()}`);
    return { mediaType: manifest.mediaType, digest, size: Buffer.byteLength(text) };
  }

  /** An image whose config has an entrypoint, environment and labels, with layers of the given sizes. */
  async pushImage(
    repository: string,
    tag: string | null,
    options: { layers: number[]; seed: string; annotations?: Record<string, string>; platform?: { os: string; architecture: string } },
  ): Promise<Pushed> {
    const platform = options.platform ?? { os: "linux", architecture: "amd64" };
    const layers: Pushed[] = [];
    for (const [index, size] of options.layers.entries()) {
      const layer = await this.pushBlob(repository, randomBytes(`${options.seed}-${index}`, size));
      layers.push({ ...layer, mediaType: MediaTypes.layerGzip });
    }
    const config = {
      ...platform,
      created: "2026-11-20T10:00:00Z",
      config: {
        Env: ["PATH=/usr/local/bin:/usr/bin:/bin", `APP_NAME=${repository}`],
        Entrypoint: ["/usr/local/bin/server"],
        Cmd: ["--port", "8080"],
        WorkingDir: "/srv",
        ExposedPorts: { "8080/tcp": {} },
        Labels: { "org.opencontainers.image.source": `https://example.com/${repository}`, maintainer: "platform team" },
      },
      rootfs: { type: "layers", diff_ids: layers.map((layer) => layer.digest) },
      history: layers.map((_, index) => ({ created: "2026-11-20T10:00:00Z", created_by: `COPY step-${index + 1} /srv/ # buildkit` })),
    };
    const configBlob = await this.pushBlob(repository, JSON.stringify(config));
    return this.pushManifest(repository, tag, {
      schemaVersion: 2,
      mediaType: MediaTypes.manifest,
      config: { ...configBlob, mediaType: MediaTypes.config },
      layers,
      ...(options.annotations && { annotations: options.annotations }),
    });
  }

  async pushIndex(repository: string, tag: string, images: (Pushed & { platform: { os: string; architecture: string } })[], annotations?: Record<string, string>) {
    return this.pushManifest(repository, tag, {
      schemaVersion: 2,
      mediaType: MediaTypes.index,
      manifests: images,
      ...(annotations && { annotations }),
    });
  }

  /** An artifact attached to `subject` through the referrers API, as `oras attach` pushes it (by digest). */
  async attach(repository: string, subject: Pushed, artifactType: string, file: { name: string; content: string }): Promise<Pushed> {
    const empty = await this.pushBlob(repository, "{}");
    const payload = await this.pushBlob(repository, file.content);
    return this.pushManifest(repository, null, {
      schemaVersion: 2,
      mediaType: MediaTypes.manifest,
      artifactType,
      config: { ...empty, mediaType: MediaTypes.empty },
      layers: [{ ...payload, mediaType: artifactType, annotations: { "org.opencontainers.image.title": file.name } }],
      subject,
      annotations: { "org.opencontainers.image.created": "2026-11-21T08:30:00Z" },
    });
  }
}
