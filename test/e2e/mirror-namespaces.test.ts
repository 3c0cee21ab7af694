// One mirror endpoint for every registry a cluster uses: containerd, with a hosts.toml per upstream registry that
// points at this registry, sends ?ns=<upstream host> on every request, and the registry serves each from its own
// mirror. Two real upstreams (Debian's docker-registry) stand in for docker.io and ghcr.io.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mustRun } from "../support/command";
import { startContainerd, type Containerd } from "../support/containerd";
import { startDistribution, type Distribution } from "../support/distribution";
import { buildImage, type BuiltImage } from "../support/oci-layout";
import { startRegistry, type Registry } from "./harness";

let work: string;
let upstreams: Distribution[] = [];
let registry: Registry;
let containerd: Containerd;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "oci-e2e-namespaces-"));
  upstreams = [await startDistribution(), await startDistribution()];
  const [a, b] = upstreams;
  registry = await startRegistry({
    vars: {
      MIRRORS: JSON.stringify([
        { prefix: "first", upstream: a!.url, timeoutSeconds: 10 },
        { prefix: "second", upstream: b!.url, timeoutSeconds: 10 },
      ]),
    },
  });
  containerd = await startContainerd(work);
}, 180_000);

afterAll(async () => {
  await containerd?.stop();
  await registry?.stop();
  for (const upstream of upstreams) await upstream.stop();
  await rm(work, { recursive: true, force: true });
});

const skopeo = (...args: string[]) => mustRun("skopeo", ["--insecure-policy", "--tmpdir", work, ...args], { timeoutMs: 150_000 });

/** containerd's hosts.toml for an upstream host: the registry itself as the mirror that is asked first. */
async function hostsFor(upstream: Distribution, dir: string) {
  await mkdir(join(dir, upstream.host), { recursive: true });
  await writeFile(
    join(dir, upstream.host, "hosts.toml"),
    [`server = "${upstream.url}"`, "", `[host."${registry.url}"]`, '  capabilities = ["pull", "resolve"]', ""].join("\n"),
  );
}

describe("containerd with hosts.toml for two upstream hosts, one mirror endpoint", () => {
  it("pulls each upstream's image through the registry, which keeps them under each mirror's prefix", async () => {
    const images: BuiltImage[] = [];
    for (const [index, upstream] of upstreams.entries()) {
      const layout = join(work, `image-${index}`);
      const image = await buildImage(layout, { layers: [3000 + index, 70_000], tag: "v1", seed: `namespaces-${index}` });
      await skopeo("copy", "--dest-tls-verify=false", `oci:${layout}:v1`, `docker://${upstream.host}/team/app:v1`);
      images.push(image);
    }
    const hostsDir = join(work, "certs.d");
    for (const upstream of upstreams) await hostsFor(upstream, hostsDir);
    for (const upstream of upstreams) await containerd.ctr("images", "pull", "--hosts-dir", hostsDir, `${upstream.host}/team/app:v1`);
    const listed = (await containerd.ctr("images", "ls")).stdout.toString();
    for (const image of images) expect(listed).toContain(image.manifest.digest);

    // With both upstreams gone, the registry still has both images, each under its mirror's prefix.
    for (const upstream of upstreams) await upstream.stop();
    for (const [index, prefix] of ["first", "second"].entries()) {
      const image = images[index]!;
      const manifest = await fetch(`${registry.url}/v2/${prefix}/team/app/manifests/${image.manifest.digest}`);
      expect(manifest.status).toBe(200);
      for (const blob of [image.config, ...image.layers]) {
        const response = await fetch(`${registry.url}/v2/${prefix}/team/app/blobs/${blob.digest}`, { method: "HEAD" });
        expect(response.status, `${prefix} ${blob.digest}`).toBe(200);
      }
      // ...and the same request with containerd's ns finds it too.
      const host = upstreams[index]!.host;
      expect((await fetch(`${registry.url}/v2/team/app/manifests/${image.manifest.digest}?ns=${host}`)).status).toBe(200);
    }
    expect((await fetch(`${registry.url}/v2/team/app/manifests/v1?ns=quay.io`)).status).toBe(404);
  });
});
