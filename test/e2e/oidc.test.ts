// CI without secrets, end to end: an OIDC issuer of the test's own on loopback (discovery and a key set, as GitHub's
// or GitLab's), `wrangler dev` trusting it through OIDC_TRUST_POLICIES, and real clients logging in with user "oidc"
// and a signed token as the password: skopeo --dest-creds, skopeo login, and docker login and push.
import { createServer, type Server } from "node:http";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from "jose";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { mustRun, runCommand } from "../support/command";
import { findDockerd, startDockerd, type DockerClient, type Dockerd } from "../support/dockerd";
import { buildImage } from "../support/oci-layout";
import { startRegistry, tokenAuth, type Registry } from "./harness";

const AUDIENCE = "registry.e2e";
const auth = tokenAuth();

let registry: Registry;
let work: string;
let layout: string;
let issuer: { url: string; server: Server; requests: string[]; privateKey: CryptoKey; kid: string };

/** A loopback OIDC issuer: discovery names its key set, which holds one RSA key. */
async function startIssuer(): Promise<typeof issuer> {
  const { privateKey, publicKey } = await generateKeyPair("RS256");
  const kid = "e2e-key-1";
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: "RS256", use: "sig" };
  const requests: string[] = [];
  let url = "";
  const server = createServer((request, response) => {
    requests.push(`${request.method} ${request.url}`);
    const body =
      request.url === "/.well-known/openid-configuration" ? { issuer: url, jwks_uri: `${url}/keys`, id_token_signing_alg_values_supported: ["RS256"] }
      : request.url === "/keys" ? { keys: [jwk] }
      : null;
    response.writeHead(body ? 200 : 404, { "Content-Type": "application/json" }).end(JSON.stringify(body ?? {}));
  });
  await new Promise<void>((listening) => server.listen(0, "127.0.0.1", listening));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no port");
  url = `http://127.0.0.1:${address.port}`;
  return { url, server, requests, privateKey, kid };
}

/** The token a GitHub Actions job of `repository` on main would get for AUDIENCE. */
function jobToken(repository: string, claims: JWTPayload = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ iss: issuer.url, aud: AUDIENCE, sub: `repo:${repository}:ref:refs/heads/main`, repository, ref: "refs/heads/main", iat: now, nbf: now - 5, exp: now + 600, ...claims })
    .setProtectedHeader({ alg: "RS256", kid: issuer.kid, typ: "JWT" })
    .sign(issuer.privateKey);
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "oci-e2e-oidc-"));
  issuer = await startIssuer();
  const policies = [
    { name: "ci-org/app", issuer: issuer.url, audience: AUDIENCE, claims: { repository: "ci-org/app", ref: "refs/heads/main" }, scopes: [{ repository: "ci/app", actions: ["pull", "push"] }] },
    { name: "ci-org/other", issuer: issuer.url, audience: AUDIENCE, claims: { repository: "ci-org/other" }, scopes: [{ repository: "ci/other", actions: ["pull", "push"] }] },
  ];
  registry = await startRegistry({ vars: { ...auth.vars, OIDC_TRUST_POLICIES: JSON.stringify(policies), OIDC_ALLOW_HTTP_ISSUERS: "true" } });
  layout = join(work, "layout");
  await buildImage(layout, { layers: [2048, 4096], tag: "v1" });
});

afterAll(async () => {
  await registry?.stop();
  await new Promise((closed) => issuer?.server.close(closed));
  if (work) await rm(work, { recursive: true, force: true });
});

beforeEach((context) => {
  context.onTestFailed(() => {
    console.error(`--- wrangler output (tail) ---\n${registry?.output().slice(-8000)}\n--- issuer requests ---\n${issuer?.requests.join("\n")}`);
  });
});

const skopeo = (...args: string[]) => runCommand("skopeo", ["--insecure-policy", "--tmpdir", work, ...args], { timeoutMs: 120_000 });
const copyIn = (target: string, creds: string) =>
  skopeo("copy", "--retry-times", "0", "--dest-tls-verify=false", "--dest-creds", creds, `oci:${layout}:v1`, `docker://${registry.host}/${target}`);

describe("skopeo with a CI job's OIDC token", () => {
  it("pushes with the token as the password of user oidc, found through the issuer's discovery", async () => {
    const token = await jobToken("ci-org/app");
    const pushed = await copyIn("ci/app:1", `oidc:${token}`);
    expect(pushed.code, pushed.stderr).toBe(0);
    const inspected = await skopeo("inspect", "--tls-verify=false", "--raw", "--creds", `oidc:${token}`, `docker://${registry.host}/ci/app:1`);
    expect(inspected.code, inspected.stderr).toBe(0);
    expect(JSON.parse(inspected.stdout.toString()).layers).toHaveLength(2);
    expect(issuer.requests).toContain("GET /.well-known/openid-configuration");
    expect(issuer.requests.filter((request) => request === "GET /keys")).toHaveLength(1);
  });

  it("is refused for a repository the token's policy does not grant, and for a job no policy trusts", async () => {
    const app = await jobToken("ci-org/app");
    const elsewhere = await copyIn("ci/other:1", `oidc:${app}`);
    expect(elsewhere.code).not.toBe(0);
    expect(elsewhere.stderr).toMatch(/unauthorized|denied|authentication required/i);
    const fork = await copyIn("ci/app:2", `oidc:${await jobToken("someone/app-fork")}`);
    expect(fork.code).not.toBe(0);
    const wrongAudience = await copyIn("ci/app:3", `oidc:${await jobToken("ci-org/app", { aud: "another-registry" })}`);
    expect(wrongAudience.code).not.toBe(0);
    // The other repository's own job may push there.
    const other = await copyIn("ci/other:1", `oidc:${await jobToken("ci-org/other")}`);
    expect(other.code, other.stderr).toBe(0);
  });

  it("logs in with skopeo login, which stores the token like a password, and pushes with the stored login", async () => {
    const authfile = join(work, "auth.json");
    await writeFile(authfile, "{}");
    const login = await mustRun("sh", ["-c", `printf %s "$TOKEN" | skopeo login --tls-verify=false --authfile ${authfile} --username oidc --password-stdin ${registry.host}`], {
      env: { ...process.env, TOKEN: await jobToken("ci-org/app") },
    });
    expect(login.stdout.toString()).toMatch(/Login Succeeded/i);
    const pushed = await skopeo("copy", "--retry-times", "0", "--dest-tls-verify=false", "--dest-authfile", authfile, `oci:${layout}:v1`, `docker://${registry.host}/ci/app:login`);
    expect(pushed.code, pushed.stderr).toBe(0);
    const refused = await runCommand("sh", ["-c", `printf %s "$TOKEN" | skopeo login --tls-verify=false --authfile ${authfile} --username oidc --password-stdin ${registry.host}`], {
      env: { ...process.env, TOKEN: await jobToken("ci-org/app", { exp: Math.floor(Date.now() / 1000) - 120 }) },
    });
    expect(refused.code).not.toBe(0);
  });
});

const installed = findDockerd() !== undefined;
if (!installed) console.warn("the docker part of test/e2e/oidc.test.ts is skipped: dockerd is not installed");

describe.skipIf(!installed)("docker login with a CI job's OIDC token", () => {
  let daemon: Dockerd;
  let docker: DockerClient;

  beforeAll(async () => {
    daemon = await startDockerd({ insecureRegistries: [registry.host] });
    docker = await daemon.client(join(work, "docker-config"));
  });

  afterAll(async () => {
    await daemon?.stop();
  });

  it("logs in as oidc with the token on stdin, as a workflow does, and pushes where the policy allows only", async () => {
    const login = await docker.must(["login", registry.host, "--username", "oidc", "--password-stdin"], { input: await jobToken("ci-org/app") });
    expect(login.stdout.toString()).toContain("Login Succeeded");
    const context = await mkdtemp(join(work, "context-"));
    await writeFile(join(context, "hello.txt"), `pushed by a CI job ${Date.now()}\n`);
    await writeFile(join(context, "Dockerfile"), "FROM scratch\nCOPY hello.txt /hello.txt\n");
    await docker.must(["build", "-t", `${registry.host}/ci/app:docker`, context]);
    await docker.must(["push", `${registry.host}/ci/app:docker`]);
    await docker.must(["tag", `${registry.host}/ci/app:docker`, `${registry.host}/ci/other:docker`]);
    const refused = await docker.run(["push", `${registry.host}/ci/other:docker`]);
    expect(refused.code).not.toBe(0);
    expect(`${refused.stdout.toString()}${refused.stderr}`).toMatch(/denied|unauthorized|authentication required/i);
    expect(JSON.parse(await readFile(join(docker.config, "config.json"), "utf8")).auths[registry.host]).toBeDefined();
  });
});
