// The docker daemon with `registry-mirrors` pointing at the registry, as CI fleets run it: `docker pull alpine`
// goes to the mirror (prefix ""), which fetches from the upstream (Debian's docker-registry, standing in for Docker
// Hub: there is no way out to the real one here, so a pull that works went through the mirror). The CLI's own
// Docker Hub login is sent to the mirror, which must not let it get in the way of a public pull.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mustRun } from "../support/command";
import { findDockerd, startDockerd, type DockerClient, type Dockerd } from "../support/dockerd";
import { startDistribution, type Distribution } from "../support/distribution";
import { buildImage } from "../support/oci-layout";
import { startRegistry, tokenAuth, type Registry } from "./harness";

const available = findDockerd() !== undefined;
let work: string;
let upstream: Distribution;
let registry: Registry;
let daemon: Dockerd;
let image: Awaited<ReturnType<typeof buildImage>>;

beforeAll(async () => {
  if (!available) return;
  work = await mkdtemp(join(tmpdir(), "oci-e2e-docker-mirror-"));
  upstream = await startDistribution();
  image = await buildImage(join(work, "alpine"), { layers: [4000, 500_000], tag: "3", seed: "docker-mirror" });
  await mustRun("skopeo", ["--insecure-policy", "copy", "--dest-tls-verify=false", `oci:${join(work, "alpine")}:3`, `docker://${upstream.host}/library/alpine:3`]);
  registry = await startRegistry({
    vars: {
      ...tokenAuth().vars,
      // A registry that is only a mirror: everything it holds is public.
      PUBLIC_REPOSITORIES: "*",
      MIRRORS: JSON.stringify([{ prefix: "", upstream: upstream.url, library: true, timeoutSeconds: 10 }]),
    },
  });
  daemon = await startDockerd({ insecureRegistries: [registry.host], registryMirrors: [registry.url] });
}, 240_000);

afterAll(async () => {
  await daemon?.stop();
  await registry?.stop();
  await upstream?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

async function clientWithHubLogin(): Promise<DockerClient> {
  const client = await daemon.client(await mkdtemp(join(work, "client-")));
  // What `docker login` to Docker Hub leaves behind: credentials this registry has never heard of.
  await writeFile(join(client.config, "config.json"), JSON.stringify({ auths: { "https://index.docker.io/v1/": { auth: Buffer.from("someone:dckr_pat_not-ours").toString("base64") } } }));
  return client;
}

describe.skipIf(!available)("dockerd with registry-mirrors", () => {
  it("pulls docker.io images through the mirror, with a Docker Hub login in the client's config", async () => {
    const client = await clientWithHubLogin();
    const pulled = await client.must(["pull", "alpine:3"], { timeoutMs: 180_000 });
    expect(pulled.stdout.toString()).toContain(image.manifest.digest);
    const log = registry.output();
    // The registry's request log shows the daemon's requests for it.
    expect(log).toMatch(/library\/alpine/);
    expect((await client.must(["image", "inspect", "--format", "{{.Id}}", "alpine:3"])).stdout.toString().trim()).toBe(image.config.digest);
  });

  it("keeps serving it from the mirror's store once the upstream is gone", async () => {
    await upstream.stop();
    const client = await clientWithHubLogin();
    await client.must(["rmi", "alpine:3"]);
    const pulled = await client.must(["pull", "alpine:3"], { timeoutMs: 180_000 });
    expect(pulled.stdout.toString()).toContain(image.manifest.digest);
  });
});
