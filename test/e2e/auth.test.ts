// Token authentication with real clients: an access token made with the admin CLI, skopeo and podman logging in
// with it, pushing where its scopes allow and refused elsewhere, anonymous pulls of a public repository, revocation.
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mustRun, runCommand } from "../support/command";
import { buildImage } from "../support/oci-layout";
import { startRegistry, tokenAuth, type Registry } from "./harness";

const { ADMIN_TOKEN, vars: authVars } = tokenAuth();

let registry: Registry;
let work: string;
let layout: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "oci-e2e-auth-"));
  registry = await startRegistry({
    vars: { ...authVars, PUBLIC_REPOSITORIES: "public/*" },
  });
  layout = join(work, "layout");
  await buildImage(layout, { layers: [2048, 4096], tag: "v1" });
});

afterAll(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

async function admin(...args: string[]): Promise<string> {
  const result = await mustRun(process.execPath, ["bin/admin.ts", ...args, "--url", registry.url, "--admin-token", ADMIN_TOKEN]);
  return result.stdout.toString();
}

async function createToken(name: string, ...scopes: string[]): Promise<{ id: string; token: string }> {
  return JSON.parse(await admin("token", "create", "--name", name, ...scopes.flatMap((scope) => ["--scope", scope]), "--json"));
}

const skopeo = (...args: string[]) => runCommand("skopeo", ["--insecure-policy", "--tmpdir", work, ...args], { timeoutMs: 120_000 });
const copyIn = (target: string, creds?: string) =>
  skopeo("copy", "--retry-times", "0", "--dest-tls-verify=false", ...(creds ? ["--dest-creds", creds] : []), `oci:${layout}:v1`, `docker://${registry.host}/${target}`);

describe("skopeo with access tokens", () => {
  it("pushes where the token allows, is refused elsewhere, and pulls public repositories anonymously", async () => {
    const { token } = await createToken("ci", "team/*:pull,push");
    const listed = await admin("token", "list");
    expect(listed).toContain("ci");
    expect(listed).not.toContain(token.split("_")[2]);

    expect((await copyIn("team/app:1", `ci:${token}`)).code).toBe(0);
    const refused = await copyIn("other/app:1", `ci:${token}`);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/unauthorized|denied|authentication required/i);
    expect((await copyIn("team/anonymous:1")).code).not.toBe(0);

    // The admin token (a secret) can push anywhere: publish a public image.
    expect((await copyIn("public/base:1", `admin:${ADMIN_TOKEN}`)).code).toBe(0);
    const anonymous = await skopeo("inspect", "--tls-verify=false", "--raw", `docker://${registry.host}/public/base:1`);
    expect(anonymous.code).toBe(0);
    expect(JSON.parse(anonymous.stdout.toString()).layers).toHaveLength(2);
    const pulled = await skopeo("copy", "--retry-times", "0", "--src-tls-verify=false", `docker://${registry.host}/public/base:1`, `oci:${join(work, "pulled")}:1`);
    expect(pulled.code).toBe(0);
    expect((await skopeo("inspect", "--tls-verify=false", "--raw", `docker://${registry.host}/team/app:1`)).code).not.toBe(0);
    expect((await skopeo("inspect", "--tls-verify=false", "--raw", "--creds", `ci:${token}`, `docker://${registry.host}/team/app:1`)).code).toBe(0);
  });

  it("stops a revoked token", async () => {
    const { id, token } = await createToken("short-lived", "team/*:pull,push");
    expect((await copyIn("team/revoked:1", `ci:${token}`)).code).toBe(0);
    expect(await admin("token", "revoke", id)).toContain(`revoked ${id}`);
    expect((await copyIn("team/revoked:2", `ci:${token}`)).code).not.toBe(0);
  });
});

describe("podman with access tokens", () => {
  it("logs in, pushes where allowed, is refused elsewhere, and pulls public images logged out", async () => {
    const { token } = await createToken("podman", "team/*:pull,push");
    const storage = ["--root", join(work, "root"), "--runroot", join(work, "run"), "--storage-driver", "vfs"];
    const authfile = join(work, "auth.json");
    await writeFile(authfile, "{}");
    const podman = (...args: string[]) => runCommand("podman", [...storage, ...args], { timeoutMs: 180_000 });
    const must = async (...args: string[]) => {
      const result = await podman(...args);
      expect(result.code, `${result.line}\n${result.stderr}`).toBe(0);
      return result;
    };

    const buildah = (...args: string[]) => mustRun("buildah", [...storage, ...args], { timeoutMs: 180_000 });
    const container = (await buildah("from", "scratch")).stdout.toString().trim();
    const file = join(work, "payload.bin");
    await writeFile(file, randomBytes(100_000));
    await buildah("copy", container, file, "/payload.bin");
    await buildah("commit", container, "localhost/e2e/auth:1");
    const local = "localhost/e2e/auth:1";
    const login = await mustRun("sh", ["-c", `printf %s "$TOKEN" | podman ${storage.join(" ")} login --tls-verify=false --authfile ${authfile} --username podman --password-stdin ${registry.host}`], {
      env: { ...process.env, TOKEN: token },
    });
    expect(login.stdout.toString()).toMatch(/Login Succeeded/i);

    await must("push", "--tls-verify=false", "--authfile", authfile, local, `${registry.host}/team/podman:1`);
    const refused = await podman("push", "--tls-verify=false", "--authfile", authfile, local, `${registry.host}/other/podman:1`);
    expect(refused.code).not.toBe(0);

    await must("logout", "--authfile", authfile, registry.host);
    await must("rmi", "--all", "--force");
    await must("pull", "--tls-verify=false", "--authfile", authfile, `${registry.host}/public/base:1`);
    expect((await podman("pull", "--tls-verify=false", "--authfile", authfile, `${registry.host}/team/podman:1`)).code).not.toBe(0);
  });
});
