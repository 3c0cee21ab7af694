// The relay (cli/edge-oci-registry.ts relay) in front of `wrangler dev` with an 8 MiB MAX_BODY_BYTES and token
// auth: skopeo pushing a ~100 MiB layer straight to the registry is refused with its 413 message; through the relay
// the same push succeeds with podman login's credentials and pulls back identical; monolithic and streamed
// (unknown-length) upload bodies are re-cut too, and podman pushes through it. ~100 MiB rather than several GiB
// keeps this file near a minute; the relay's memory does not grow with the layer (measured by hand for 1 GiB).
import { createHash } from "node:crypto";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { mustRun, runCommand } from "../support/command";
import { buildImage, randomBytes, randomBytesStream, sha256File, type BuiltImage } from "../support/oci-layout";
import { createAccessToken } from "./fixture";
import { startRegistry, tokenAuth, type Registry } from "./harness";
import { startRelay, type Relay } from "../support/relay";

const MiB = 1024 * 1024;
const MAX_BODY = 8 * MiB;
const LAYER_CONTENT = 100 * MiB;
const { ADMIN_TOKEN, vars: authVars } = tokenAuth();


let registry: Registry;
let relay: Relay;
let work: string;
let token: string;
let layout: string;
let image: BuiltImage;
let authfile: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "oci-e2e-relay-"));
  const started = startRegistry({
    vars: {
      MAX_BODY_BYTES: String(MAX_BODY),
      UPLOAD_PART_BYTES: String(5 * MiB),
      ...authVars,
    },
  });
  layout = join(work, "layout");
  image = await buildImage(layout, { layers: [LAYER_CONTENT], tag: "v1", seed: "relay" });
  registry = await started;
  token = await createAccessToken(registry, ADMIN_TOKEN, "relay", ["team/*:pull,push"]);
  relay = await startRelay(registry.url);
  authfile = join(work, "auth.json");
  await writeFile(authfile, "{}");
});

afterAll(async () => {
  await relay?.stop();
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

beforeEach((context) => {
  context.onTestFailed(() => {
    console.error(`--- relay output ---\n${relay?.output().slice(-4000)}\n--- wrangler output (tail) ---\n${registry?.output().slice(-6000)}`);
  });
});

const skopeo = (...args: string[]) => runCommand("skopeo", ["--insecure-policy", "--tmpdir", work, ...args], { timeoutMs: 150_000 });
const storage = () => ["--root", join(work, "root"), "--runroot", join(work, "run"), "--storage-driver", "vfs"];
const sha256 = (bytes: Uint8Array) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;

async function bearer(repository: string): Promise<string> {
  const url = `${registry.url}/token?service=${registry.host}&scope=repository:${repository}:pull,push`;
  const response = await fetch(url, { headers: { Authorization: `Basic ${Buffer.from(`ci:${token}`).toString("base64")}` } });
  expect(response.status).toBe(200);
  return `Bearer ${((await response.json()) as { token: string }).token}`;
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** One request through node:http with a streamed body: with Content-Length when given, else chunked. */
function send(url: string, method: string, headers: Record<string, string>, body?: Readable): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const outgoing = request(url, { method, headers });
    outgoing.on("error", reject);
    outgoing.on("response", (response) => {
      let text = "";
      response.on("data", (chunk: Buffer) => (text += chunk.toString()));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, headers: response.headers, text }));
    });
    if (body) body.pipe(outgoing);
    else outgoing.end();
  });
}

/** GETs a blob through the relay and hashes it as it streams. */
async function pulledDigest(repository: string, digest: string, authorization: string): Promise<string> {
  const response = await fetch(`${relay.url}/v2/${repository}/blobs/${digest}`, { headers: { Authorization: authorization } });
  expect(response.status).toBe(200);
  const hash = createHash("sha256");
  for await (const chunk of response.body!) hash.update(chunk);
  return `sha256:${hash.digest("hex")}`;
}

describe("a layer larger than the registry's body limit", () => {
  it("is refused when skopeo pushes it straight to the registry, with the registry's 413 message", async () => {
    const direct = await skopeo(
      "copy", "--retry-times", "0", "--dest-tls-verify=false", "--dest-creds", `ci:${token}`,
      `oci:${layout}:v1`, `docker://${registry.host}/team/big:direct`,
    );
    expect(direct.code).not.toBe(0);
    expect(direct.stderr).toContain(`request body is larger than this registry accepts (${MAX_BODY} bytes, MAX_BODY_BYTES): push through`);
    expect(direct.stderr).toContain("edge-oci-registry relay");
  });

  it("goes through the relay with podman login's credentials, and pulls back through it with identical digests", async () => {
    const login = await mustRun("sh", ["-c", `printf %s "$TOKEN" | podman ${storage().join(" ")} login --tls-verify=false --authfile ${authfile} --username ci --password-stdin ${relay.host}`], {
      env: { ...process.env, TOKEN: token },
    });
    expect(login.stdout.toString()).toMatch(/Login Succeeded/i);

    const layer = image.layers[0]!;
    expect(layer.size).toBeGreaterThan(LAYER_CONTENT);
    const pushed = await skopeo("copy", "--retry-times", "0", "--dest-tls-verify=false", "--authfile", authfile, `oci:${layout}:v1`, `docker://${relay.host}/team/big:1`);
    expect(pushed.code, pushed.stderr).toBe(0);
    const chunks = Math.ceil(layer.size / MAX_BODY);
    expect(relay.output()).toContain(`${layer.size} bytes re-cut into ${chunks} PATCH requests of at most ${MAX_BODY}`);

    const dir = join(work, "pulled");
    const pulled = await skopeo("copy", "--retry-times", "0", "--src-tls-verify=false", "--authfile", authfile, `docker://${relay.host}/team/big:1`, `dir:${dir}`);
    expect(pulled.code, pulled.stderr).toBe(0);
    expect((await readFile(join(dir, "manifest.json"))).equals(image.manifestBytes)).toBe(true);
    const blobs = (await readdir(dir)).filter((name) => /^[0-9a-f]{64}$/.test(name)).map((name) => `sha256:${name}`);
    expect(blobs.sort()).toEqual([image.config.digest, layer.digest].sort());
    for (const digest of blobs) expect(await sha256File(join(dir, digest.slice(7)))).toBe(digest);
  });
});

describe("upload bodies the relay re-cuts", () => {
  it("turns a monolithic POST ?digest= into a session, PATCHes and a PUT", async () => {
    const size = 20 * MiB + 123;
    const digest = sha256(randomBytes("relay monolithic", size));
    const authorization = await bearer("team/mono");
    const reply = await send(
      `${relay.url}/v2/team/mono/blobs/uploads/?digest=${digest}`,
      "POST",
      { Authorization: authorization, "Content-Type": "application/octet-stream", "Content-Length": String(size) },
      randomBytesStream("relay monolithic", size),
    );
    expect(reply.status, reply.text).toBe(201);
    expect(reply.headers["docker-content-digest"]).toBe(digest);
    expect(relay.output()).toContain(`POST /v2/team/mono/blobs/uploads/: ${size} bytes re-cut into 3 PATCH requests`);
    expect(await pulledDigest("team/mono", digest, authorization)).toBe(digest);
  });

  it("learns the limit with a throwaway upload when a big body comes first, and serves the token realm with --proxy-token", async () => {
    const fresh = await startRelay(registry.url, "--proxy-token");
    try {
      const challenge = await fetch(`${fresh.url}/v2/`);
      expect(challenge.status).toBe(401);
      const realm = /realm="([^"]+)"/.exec(challenge.headers.get("www-authenticate") ?? "")?.[1];
      expect(realm).toBe(`${fresh.url}/token`);
      const tokenReply = await fetch(`${realm}?service=${registry.host}&scope=repository:team/fresh:pull,push`, {
        headers: { Authorization: `Basic ${Buffer.from(`ci:${token}`).toString("base64")}` },
      });
      expect(tokenReply.status).toBe(200);
      const authorization = `Bearer ${((await tokenReply.json()) as { token: string }).token}`;

      const size = 9 * MiB;
      const digest = sha256(randomBytes("relay fresh", size));
      const reply = await send(
        `${fresh.url}/v2/team/fresh/blobs/uploads/?digest=${digest}`,
        "POST",
        { Authorization: authorization, "Content-Type": "application/octet-stream", "Content-Length": String(size) },
        randomBytesStream("relay fresh", size),
      );
      expect(reply.status, reply.text).toBe(201);
      expect(fresh.output()).toContain(`POST /v2/team/fresh/blobs/uploads/: ${size} bytes re-cut into 2 PATCH requests of at most ${MAX_BODY}`);
    } finally {
      await fresh.stop();
    }
  });

  it("re-cuts a PUT ?digest= with a body, and a PATCH of unknown length (chunked, as docker and podman stream)", async () => {
    const authorization = await bearer("team/streamed");
    for (const [method, size] of [["PUT", 17 * MiB + 7], ["PATCH", 17 * MiB + 1]] as const) {
      const seed = `relay ${method}`;
      const digest = sha256(randomBytes(seed, size));
      const started = await send(`${relay.url}/v2/team/streamed/blobs/uploads/`, "POST", { Authorization: authorization, "Content-Length": "0" });
      expect(started.status).toBe(202);
      expect(started.headers["oci-chunk-max-length"]).toBe(String(MAX_BODY));
      const location = new URL(String(started.headers.location), relay.url);
      let done: Reply;
      if (method === "PUT") {
        location.searchParams.set("digest", digest);
        done = await send(location.href, "PUT", { Authorization: authorization, "Content-Length": String(size) }, randomBytesStream(seed, size));
      } else {
        // No Content-Length: node sends the body chunked.
        const patched = await send(location.href, "PATCH", { Authorization: authorization, "Content-Type": "application/octet-stream" }, randomBytesStream(seed, size));
        expect(patched.status, patched.text).toBe(202);
        expect(patched.headers.range).toBe(`0-${size - 1}`);
        const next = new URL(String(patched.headers.location), relay.url);
        expect(next.origin).toBe(relay.url);
        next.searchParams.set("digest", digest);
        done = await send(next.href, "PUT", { Authorization: authorization, "Content-Length": "0" });
      }
      expect(done.status, done.text).toBe(201);
      expect(done.headers["docker-content-digest"]).toBe(digest);
      expect(relay.output()).toMatch(new RegExp(`${method} /v2/team/streamed/blobs/uploads/[0-9a-f-]+: ${size} bytes re-cut into 3 PATCH requests`));
      expect(await pulledDigest("team/streamed", digest, authorization)).toBe(digest);
    }
  });

  it("lets podman push an image whose layer is over the limit (compressed as it streams, of unknown length)", async () => {
    const buildah = (...args: string[]) => mustRun("buildah", [...storage(), ...args], { timeoutMs: 120_000 });
    const container = (await buildah("from", "scratch")).stdout.toString().trim();
    const file = join(work, "payload.bin");
    await writeFile(file, randomBytes("relay podman payload", 20 * MiB));
    await buildah("copy", container, file, "/payload.bin");
    await buildah("commit", container, "localhost/e2e/relay:1");
    const pushed = await runCommand("podman", [...storage(), "push", "--tls-verify=false", "--authfile", authfile, "localhost/e2e/relay:1", `${relay.host}/team/podman:1`], { timeoutMs: 120_000 });
    expect(pushed.code, pushed.stderr).toBe(0);
    expect(relay.output()).toMatch(/PATCH \/v2\/team\/podman\/blobs\/uploads\/[0-9a-f-]+: \d+ bytes re-cut into 3 PATCH requests/);

    const inspected = await skopeo("inspect", "--tls-verify=false", "--authfile", authfile, `docker://${relay.host}/team/podman:1`);
    expect(inspected.code, inspected.stderr).toBe(0);
    expect((JSON.parse(inspected.stdout.toString()) as { Layers: string[] }).Layers).toHaveLength(1);
  });
});
