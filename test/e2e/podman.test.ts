// podman and buildah, the way a user pushes and pulls: images built from scratch with buildah, in a storage of
// the test's own (vfs driver), pushed in OCI and Docker formats and as a manifest list, then pulled back.
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mustRun } from "../support/command";
import { MIN_PART_BYTES, startRegistry, type Registry } from "./harness";

let registry: Registry;
let work: string;
let storage: string[];

const podman = (...args: string[]) => mustRun("podman", [...storage, ...args], { timeoutMs: 300_000 });
const buildah = (...args: string[]) => mustRun("buildah", [...storage, ...args], { timeoutMs: 300_000 });

/** Builds a two-layer image from random files with buildah; returns its image id (the config digest). */
async function buildImage(name: string, sizes: [number, number]): Promise<string> {
  const container = (await buildah("from", "scratch")).stdout.toString().trim();
  for (const [index, size] of sizes.entries()) {
    const file = join(work, `${name.replaceAll("/", "_")}-${index}.bin`);
    await writeFile(file, randomBytes(size));
    await buildah("copy", container, file, `/layer-${index}.bin`);
    await buildah("commit", "--format", "oci", container, `${name}:layer-${index}`);
  }
  await buildah("rm", container);
  return (await podman("image", "inspect", "--format", "{{.Id}}", `${name}:layer-1`)).stdout.toString().trim();
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "oci-e2e-podman-"));
  storage = ["--root", join(work, "root"), "--runroot", join(work, "run"), "--storage-driver", "vfs"];
  registry = await startRegistry({ vars: { UPLOAD_PART_BYTES: String(MIN_PART_BYTES) } });
});

afterAll(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe("podman", () => {
  it("pushes an image (OCI format) and pulls it back with the same id", async () => {
    const id = await buildImage("localhost/e2e/podman", [64 * 1024, 7 * 1024 * 1024]);
    const remote = `${registry.host}/e2e/podman:oci`;
    await podman("push", "--tls-verify=false", "--format", "oci", "localhost/e2e/podman:layer-1", remote);
    await podman("rmi", "--all", "--force");
    await podman("pull", "--tls-verify=false", remote);
    expect((await podman("image", "inspect", "--format", "{{.Id}}", remote)).stdout.toString().trim()).toBe(id);
  });

  it("pushes in Docker schema 2 format, served with the Docker media type", async () => {
    await buildImage("localhost/e2e/docker-format", [1024, 2048]);
    const remote = `${registry.host}/e2e/podman:docker`;
    await podman("push", "--tls-verify=false", "--format", "v2s2", "localhost/e2e/docker-format:layer-1", remote);
    const response = await fetch(`${registry.url}/v2/e2e/podman/manifests/docker`, {
      headers: { Accept: "application/vnd.docker.distribution.manifest.v2+json" },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("Content-Type")).toBe("application/vnd.docker.distribution.manifest.v2+json");
    await podman("rmi", "--all", "--force");
    await podman("pull", "--tls-verify=false", remote);
  });

  it("pushes a manifest list with podman manifest push --all and pulls an entry by digest", async () => {
    await buildImage("localhost/e2e/list-a", [1000, 2000]);
    await buildImage("localhost/e2e/list-b", [3000, 4000]);
    await podman("manifest", "create", "localhost/e2e/list:1");
    await podman("manifest", "add", "--arch", "amd64", "--os", "linux", "localhost/e2e/list:1", "containers-storage:localhost/e2e/list-a:layer-1");
    await podman("manifest", "add", "--arch", "arm64", "--os", "linux", "localhost/e2e/list:1", "containers-storage:localhost/e2e/list-b:layer-1");
    const remote = `${registry.host}/e2e/list:1`;
    await podman("manifest", "push", "--all", "--tls-verify=false", "localhost/e2e/list:1", `docker://${remote}`);

    const index = (await (await fetch(`${registry.url}/v2/e2e/list/manifests/1`)).json()) as {
      manifests: { digest: string; platform: { architecture: string } }[];
    };
    expect(index.manifests.map((entry) => entry.platform.architecture).sort()).toEqual(["amd64", "arm64"]);
    const arm = index.manifests.find((entry) => entry.platform.architecture === "arm64")!;
    await podman("pull", "--tls-verify=false", `${registry.host}/e2e/list@${arm.digest}`);
  });
});
