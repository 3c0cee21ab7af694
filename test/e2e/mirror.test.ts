// The pull-through mirror against a real upstream: CNCF Distribution with htpasswd authentication, seeded by skopeo.
// Pulls go through the mirror both ways (docker's registry-mirrors path style, and a prefix namespace), then keep
// working from the cache with the upstream stopped; a tag moved upstream shows after the tag TTL.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mustRun, runCommand } from "../support/command";
import { startDistribution, type Distribution } from "../support/distribution";
import { buildImage, listBlobs } from "../support/oci-layout";
import { startRegistry, type Registry } from "./harness";

const USER = "mirror";
const PASSWORD = "upstream-password";
const TAG_TTL_SECONDS = 3;

let upstream: Distribution;
let registry: Registry;
let work: string;

const skopeo = (...args: string[]) => mustRun("skopeo", ["--insecure-policy", "--tmpdir", work, ...args], { timeoutMs: 120_000 });

async function seed(layout: string, tag: string, target: string) {
  await skopeo("copy", "--retry-times", "0", "--dest-tls-verify=false", "--dest-creds", `${USER}:${PASSWORD}`, `oci:${layout}:${tag}`, `docker://${upstream.host}/${target}`);
}

async function digestVia(host: string, reference: string, creds?: string): Promise<string> {
  const result = await skopeo("inspect", "--tls-verify=false", ...(creds ? ["--creds", creds] : []), "--format", "{{.Digest}}", `docker://${host}/${reference}`);
  return result.stdout.toString().trim();
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "oci-e2e-mirror-"));
  upstream = await startDistribution({ user: USER, password: PASSWORD });
  registry = await startRegistry({
    vars: {
      MIRRORS: JSON.stringify([
        { prefix: "hub", upstream: upstream.url, library: true, username: USER, passwordSecret: "MIRROR_UPSTREAM_PASSWORD", tagTtlSeconds: TAG_TTL_SECONDS, timeoutSeconds: 3 },
        { prefix: "", upstream: upstream.url, library: true, username: USER, passwordSecret: "MIRROR_UPSTREAM_PASSWORD", tagTtlSeconds: TAG_TTL_SECONDS, timeoutSeconds: 3 },
      ]),
      MIRROR_UPSTREAM_PASSWORD: PASSWORD,
    },
  });
  await buildImage(join(work, "alpine"), { layers: [3000, 2 * 1024 * 1024], tag: "3.20" });
  await seed(join(work, "alpine"), "3.20", "library/alpine:3.20");
});

afterAll(async () => {
  await registry?.stop();
  await upstream?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe("mirror in front of a real Distribution registry", () => {
  it("pulls through both ways of use, byte for byte, then from the cache with the upstream stopped", async () => {
    const expected = await digestVia(upstream.host, "library/alpine:3.20", `${USER}:${PASSWORD}`);
    const source = await listBlobs(join(work, "alpine"));

    for (const [reference, out] of [["library/alpine:3.20", "via-root"], ["hub/alpine:3.20", "via-prefix"]] as const) {
      expect(await digestVia(registry.host, reference)).toBe(expected);
      await skopeo("copy", "--retry-times", "0", "--src-tls-verify=false", `docker://${registry.host}/${reference}`, `oci:${join(work, out)}:1`);
      const pulled = await listBlobs(join(work, out));
      for (const [digest, blob] of pulled) {
        expect(blob.sha256).toBe(digest);
        if (source.has(digest)) expect(blob).toEqual(source.get(digest));
      }
    }

    await upstream.stop();
    // Within the TTL and past it (stale), the cache answers.
    for (const wait of [0, (TAG_TTL_SECONDS + 1) * 1000]) {
      await new Promise((done) => setTimeout(done, wait));
      const result = await runCommand("skopeo", ["--insecure-policy", "--tmpdir", work, "copy", "--retry-times", "0", "--src-tls-verify=false", `docker://${registry.host}/hub/alpine:3.20`, `oci:${join(work, `offline-${wait}`)}:1`], { timeoutMs: 120_000 });
      expect(result.code, result.stderr).toBe(0);
    }
    const stale = await fetch(`${registry.url}/v2/hub/alpine/manifests/3.20`, { headers: { Accept: "application/vnd.oci.image.manifest.v1+json" } });
    expect(stale.status).toBe(200);
    expect(stale.headers.get("X-Mirror-Status")).toBe("stale");
  });
});

describe("tag TTL", () => {
  let second: Distribution;
  afterAll(async () => second?.stop());

  it("shows a tag moved upstream once its TTL has passed", async () => {
    // A fresh upstream (the other one was stopped) behind a fresh mirror.
    second = await startDistribution({ user: USER, password: PASSWORD });
    const mirror = await startRegistry({
      vars: {
        MIRRORS: JSON.stringify([{ prefix: "hub", upstream: second.url, username: USER, passwordSecret: "MIRROR_UPSTREAM_PASSWORD", tagTtlSeconds: TAG_TTL_SECONDS }]),
        MIRROR_UPSTREAM_PASSWORD: PASSWORD,
      },
    });
    try {
      await buildImage(join(work, "v1"), { layers: [1000], tag: "v1" });
      await buildImage(join(work, "v2"), { layers: [2000], tag: "v2" });
      const push = (layout: string, tag: string) =>
        skopeo("copy", "--retry-times", "0", "--dest-tls-verify=false", "--dest-creds", `${USER}:${PASSWORD}`, `oci:${join(work, layout)}:${tag}`, `docker://${second.host}/team/app:latest`);
      await push("v1", "v1");
      const first = await digestVia(mirror.host, "hub/team/app:latest");
      await push("v2", "v2");
      const moved = await digestVia(second.host, "team/app:latest", `${USER}:${PASSWORD}`);
      expect(moved).not.toBe(first);
      expect(await digestVia(mirror.host, "hub/team/app:latest")).toBe(first);
      await new Promise((done) => setTimeout(done, (TAG_TTL_SECONDS + 1) * 1000));
      expect(await digestVia(mirror.host, "hub/team/app:latest")).toBe(moved);
    } finally {
      await mirror.stop();
    }
  });
});
