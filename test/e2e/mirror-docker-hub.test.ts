// The mirror in front of an upstream shaped like Docker Hub: Debian's docker-registry with token auth, its token
// service on another host name (localhost, while the registry is 127.0.0.1), public repositories anyone may pull and
// a private one that only the mirror's configured credentials open.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mustRun, runCommand } from "../support/command";
import { startDistribution, type Distribution } from "../support/distribution";
import { buildImage, listBlobs } from "../support/oci-layout";
import { startTokenService, type TokenService } from "../support/token-service";
import { startRegistry, type Registry } from "./harness";

const USER = "hub-user";
const PASSWORD = "hub-password";

let work: string;
let tokens: TokenService;
let upstream: Distribution;
let registry: Registry;

const skopeo = (...args: string[]) => mustRun("skopeo", ["--insecure-policy", "--tmpdir", work, ...args], { timeoutMs: 120_000 });

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "oci-e2e-hub-"));
  tokens = await startTokenService(work, USER, PASSWORD);
  upstream = await startDistribution({ token: tokens });
  registry = await startRegistry({
    vars: {
      MIRRORS: JSON.stringify([{ prefix: "hub", upstream: upstream.url, library: true, username: USER, passwordSecret: "MIRROR_HUB_PASSWORD", timeoutSeconds: 10 }]),
      MIRROR_HUB_PASSWORD: PASSWORD,
    },
  });
  for (const [name, seed] of [["library/alpine:3", "alpine"], ["private/app:1", "private"]] as const) {
    await buildImage(join(work, seed), { layers: [2000, 300_000], tag: "v", seed });
    await skopeo("copy", "--retry-times", "0", "--dest-tls-verify=false", "--dest-creds", `${USER}:${PASSWORD}`, `oci:${join(work, seed)}:v`, `docker://${upstream.host}/${name}`);
  }
}, 180_000);

afterAll(async () => {
  await registry?.stop();
  await upstream?.stop();
  await tokens?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe("a Docker-Hub-shaped upstream (token realm on another host)", () => {
  it("is private where it says so: its private repository refuses anonymous pulls", async () => {
    const denied = await runCommand("skopeo", ["inspect", "--tls-verify=false", `docker://${upstream.host}/private/app:1`], { timeoutMs: 60_000 });
    expect(denied.code).not.toBe(0);
  });

  it("pulls a public image anonymously and a private one with the mirror's credentials sent to the realm", async () => {
    tokens.requests.length = 0;
    for (const [reference, seed] of [["hub/alpine:3", "alpine"], ["hub/private/app:1", "private"]] as const) {
      const out = join(work, `pulled-${seed}`);
      await skopeo("copy", "--retry-times", "0", "--src-tls-verify=false", `docker://${registry.host}/${reference}`, `oci:${out}:v`);
      const source = await listBlobs(join(work, seed));
      const pulled = await listBlobs(out);
      for (const [digest, blob] of source) expect(pulled.get(digest)?.sha256, `${reference} ${digest}`).toBe(blob.sha256);
    }
    const privateScopes = tokens.requests.filter((request) => request.scopes.some((scope) => scope.includes("private/app")));
    expect(privateScopes.length).toBeGreaterThan(0);
    for (const request of privateScopes) expect(request.user).toBe(USER);
  });
});
