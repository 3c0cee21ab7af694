// The push command (cli/edge-oci-registry.ts push) against `wrangler dev` with a small MAX_BODY_BYTES and token
// auth: OCI layouts and docker-save tarballs go up in chunks the registry accepts and come back byte for byte
// (skopeo pulls them), blobs the repository has are skipped, blobs of another repository are mounted, a killed push
// resumes from the registry's offset, and a chunk cut off mid-body is retried from there. A counting proxy between
// the command and the registry sees every request body.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { createServer, request, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { mustRun, runCommand, type CommandResult } from "../support/command";
import { buildImage, blobPath, randomBytes, sha256File, type BuiltImage } from "../support/oci-layout";
import { createAccessToken } from "./fixture";
import { startRegistry, tokenAuth, type Registry } from "./harness";

const MiB = 1024 * 1024;
const MAX_BODY = 8 * MiB;
const CLI = fileURLToPath(new URL("../../cli/edge-oci-registry.ts", import.meta.url));
const { ADMIN_TOKEN, vars: authVars } = tokenAuth();

let registry: Registry;
let proxy: CountingProxy;
let work: string;
let token: string;
let layout: string;
let image: BuiltImage;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "oci-e2e-push-cli-"));
  const started = startRegistry({
    vars: {
      MAX_BODY_BYTES: String(MAX_BODY),
      UPLOAD_PART_BYTES: String(5 * MiB),
      ...authVars,
    },
  });
  layout = join(work, "layout");
  // 20 MiB of random content: three chunks of at most 8 MiB.
  image = await buildImage(layout, { layers: [20 * MiB, 4096], tag: "v1", seed: "push-cli" });
  registry = await started;
  token = await createAccessToken(registry, ADMIN_TOKEN, "push-cli", ["team/*:pull,push"]);
  proxy = await startCountingProxy(registry.url);
});

afterAll(async () => {
  await proxy?.close();
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

beforeEach((context) => {
  proxy?.reset();
  context.onTestFailed(() => {
    console.error(`--- wrangler output (tail) ---\n${registry?.output().slice(-6000)}`);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// A proxy that counts request bodies by method and can cut one PATCH off mid-body.

interface CountingProxy {
  url: string;
  host: string;
  /** Body bytes of every PATCH, one entry per request (as many as arrived, for one cut off). */
  patches: number[];
  /** Body bytes of POSTs and PUTs to blob uploads (monolithic uploads and final chunks). */
  uploadBodyBytes: number;
  reset(): void;
  /** The `index`th PATCH from now (0 = the next) is cut off after `bytes` of its body: both connections destroyed. */
  cutPatch(index: number, bytes: number): void;
  close(): Promise<void>;
}

async function startCountingProxy(target: string): Promise<CountingProxy> {
  const upstream = new URL(target);
  let cut: { index: number; bytes: number } | null = null;
  const state = { patches: [] as number[], uploadBodyBytes: 0 };
  const server: Server = createServer((req, res) => {
    const outgoing = request(new URL(req.url ?? "/", upstream), {
      method: req.method,
      headers: { ...req.headers, host: upstream.host },
    });
    const isPatch = req.method === "PATCH";
    const index = isPatch ? state.patches.push(0) - 1 : -1;
    const cutAfter = isPatch && cut?.index === index ? cut.bytes : null;
    let seen = 0;
    req.on("data", (chunk: Buffer) => {
      if (cutAfter !== null && seen + chunk.length > cutAfter) {
        const keep = chunk.subarray(0, cutAfter - seen);
        seen += keep.length;
        state.patches[index] = seen;
        outgoing.write(keep, () => {
          outgoing.destroy();
          req.socket.destroy();
        });
        req.pause();
        return;
      }
      seen += chunk.length;
      if (isPatch) state.patches[index] = seen;
      else if (/\/blobs\/uploads\//.test(req.url ?? "")) state.uploadBodyBytes += chunk.length;
      if (!outgoing.write(chunk)) {
        req.pause();
        outgoing.once("drain", () => req.resume());
      }
    });
    req.on("end", () => outgoing.end());
    outgoing.on("error", () => res.destroy());
    outgoing.on("response", (response: IncomingMessage) => {
      res.writeHead(response.statusCode ?? 502, response.headers);
      response.pipe(res);
    });
  });
  await new Promise<void>((listening) => server.listen(0, "127.0.0.1", listening));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    get patches() {
      return state.patches;
    },
    get uploadBodyBytes() {
      return state.uploadBodyBytes;
    },
    reset() {
      state.patches = [];
      state.uploadBodyBytes = 0;
      cut = null;
    },
    cutPatch(index, bytes) {
      cut = { index: state.patches.length + index, bytes };
    },
    close: () => new Promise<void>((closed) => {
      server.closeAllConnections();
      server.close(() => closed());
    }),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Running the command.

interface PushSummary {
  digest: string;
  mediaType: string;
  bytesSent: number;
  blobs: { digest: string; size: number; outcome: "exists" | "mounted" | "uploaded"; sent: number; retries: number; resumedFrom?: number }[];
}

/** The environment of a push: no credentials from this machine, state under the test's directory. */
function cliEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: work, DOCKER_CONFIG: join(work, "no-docker-config"), XDG_STATE_HOME: join(work, "xdg-state"), ...extra };
}

function push(args: string[], env: NodeJS.ProcessEnv = cliEnv({ REGISTRY_TOKEN: token })): Promise<CommandResult> {
  return runCommand(process.execPath, [CLI, "push", "--json", ...args], { env, timeoutMs: 120_000 });
}

async function mustPush(args: string[], env?: NodeJS.ProcessEnv): Promise<PushSummary> {
  const result = await push(args, env);
  expect(result.code, `${result.line}\n${result.stderr}`).toBe(0);
  return JSON.parse(result.stdout.toString()) as PushSummary;
}

/** Pulls with skopeo into a dir: transport (manifest and blobs byte for byte, digests verified by skopeo). */
async function pullBack(reference: string): Promise<{ manifest: Buffer; files: Map<string, string> }> {
  const dir = join(work, `pulled-${reference.replace(/[^a-z0-9]/gi, "-")}`);
  await rm(dir, { recursive: true, force: true });
  await mustRun("skopeo", [
    "--insecure-policy", "--tmpdir", work, "copy", "--retry-times", "0", "--src-tls-verify=false", "--src-creds", `ci:${token}`,
    `docker://${registry.host}/${reference}`, `dir:${dir}`,
  ], { timeoutMs: 120_000 });
  const files = new Map<string, string>();
  for (const name of await readdir(dir)) {
    if (/^[0-9a-f]{64}$/.test(name)) files.set(`sha256:${name}`, await sha256File(join(dir, name)));
  }
  return { manifest: await readFile(join(dir, "manifest.json")), files };
}

async function bearer(repository: string): Promise<string> {
  const url = `${registry.url}/token?service=${registry.host}&scope=repository:${repository}:pull,push`;
  const response = await fetch(url, { headers: { Authorization: `Basic ${Buffer.from(`ci:${token}`).toString("base64")}` } });
  expect(response.status).toBe(200);
  return `Bearer ${((await response.json()) as { token: string }).token}`;
}

const sha256 = (bytes: Uint8Array) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;

// ---------------------------------------------------------------------------------------------------------------

describe("push from an OCI layout", () => {
  it("uploads in chunks no larger than OCI-Chunk-Max-Length, and skopeo pulls back the same bytes", async () => {
    const summary = await mustPush([`${layout}`, `${proxy.url}/team/app:1`]);
    expect(summary.digest).toBe(image.manifest.digest);
    const layer = image.layers[0]!;
    expect(summary.blobs.find((blob) => blob.digest === layer.digest)).toMatchObject({ outcome: "uploaded", sent: layer.size });

    // The 20 MiB layer went up as three PATCHes of at most 8 MiB; the small blobs as monolithic POSTs.
    expect(proxy.patches).toEqual([MAX_BODY, MAX_BODY, layer.size - 2 * MAX_BODY]);
    expect(proxy.uploadBodyBytes).toBe(image.config.size + image.layers[1]!.size);

    const pulled = await pullBack("team/app:1");
    expect(pulled.manifest.equals(image.manifestBytes)).toBe(true);
    expect([...pulled.files.keys()].sort()).toEqual([image.config.digest, ...image.layers.map((l) => l.digest)].sort());
    for (const [digest, actual] of pulled.files) expect(actual).toBe(digest);
  });

  it("skips blobs the repository already has: a second push sends no blob bytes", async () => {
    // Credentials from the docker config file this time.
    const dockerConfig = join(work, "docker-config");
    await mkdir(dockerConfig, { recursive: true });
    const auth = Buffer.from(`ci:${token}`).toString("base64");
    await writeFile(join(dockerConfig, "config.json"), JSON.stringify({ auths: { [proxy.host]: { auth } } }));

    const summary = await mustPush([`oci:${layout}:v1`, `${proxy.url}/team/app:again`], cliEnv({ DOCKER_CONFIG: dockerConfig }));
    expect(summary.digest).toBe(image.manifest.digest);
    expect(summary.bytesSent).toBe(0);
    expect(summary.blobs.map((blob) => blob.outcome)).toEqual(["exists", "exists", "exists"]);
    expect(proxy.patches).toEqual([]);
    expect(proxy.uploadBodyBytes).toBe(0);
  });

  it("pushes the same image from an OCI archive (a tar of the layout) with the same digest", async () => {
    const archive = join(work, "layout.tar");
    await mustRun("tar", ["-cf", archive, "-C", layout, "."]);
    const summary = await mustPush([archive, `${proxy.url}/team/app:archive`]);
    expect(summary.digest).toBe(image.manifest.digest);
    expect(summary.blobs.map((blob) => blob.outcome)).toEqual(["exists", "exists", "exists"]);
  });

  it("mounts the blobs of an image in another repository of the same registry instead of copying them", async () => {
    const summary = await mustPush(["--plain-http", `docker://${proxy.host}/team/app:1`, `${proxy.url}/team/copy:1`]);
    expect(summary.digest).toBe(image.manifest.digest);
    expect(summary.blobs.map((blob) => blob.outcome)).toEqual(["mounted", "mounted", "mounted"]);
    expect(proxy.patches).toEqual([]);
    expect(proxy.uploadBodyBytes).toBe(0);
    const pulled = await pullBack("team/copy:1");
    expect(pulled.manifest.equals(image.manifestBytes)).toBe(true);
  });

  it("takes the credentials from the docker credential helper the config names (docker-credential-pass)", async () => {
    // A real helper with a real store: pass, encrypting with a GnuPG key made for this test.
    const gnupg = join(work, "gnupg");
    await mkdir(gnupg, { recursive: true, mode: 0o700 });
    const helperEnv = { PATH: process.env.PATH, HOME: work, GNUPGHOME: gnupg, PASSWORD_STORE_DIR: join(work, "password-store") };
    await mustRun("gpg", ["--batch", "--passphrase", "", "--quick-gen-key", "ci@registry.test", "default", "default", "never"], { env: helperEnv });
    await mustRun("pass", ["init", "ci@registry.test"], { env: helperEnv });
    await mustRun("docker-credential-pass", ["store"], { env: helperEnv, input: JSON.stringify({ ServerURL: proxy.host, Username: "ci", Secret: token }) });
    const dockerConfig = join(work, "docker-config-helper");
    await mkdir(dockerConfig, { recursive: true });
    await writeFile(join(dockerConfig, "config.json"), JSON.stringify({ credsStore: "pass", auths: { [proxy.host]: {} } }));

    const summary = await mustPush([`oci:${layout}:v1`, `${proxy.url}/team/app:helper`], { ...cliEnv({ DOCKER_CONFIG: dockerConfig }), ...helperEnv });
    expect(summary.digest).toBe(image.manifest.digest);

    // A helper named for this host that is not installed is named, and the push is refused for want of credentials.
    await writeFile(join(dockerConfig, "config.json"), JSON.stringify({ credHelpers: { [proxy.host]: "not-installed" } }));
    const refused = await push([layout, `${proxy.url}/team/app:helper`], { ...cliEnv({ DOCKER_CONFIG: dockerConfig }), ...helperEnv });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("docker-credential-not-installed could not run");
  });

  it("is refused without credentials, saying why", async () => {
    const refused = await push([layout, `${proxy.url}/team/app:anonymous`], cliEnv());
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/HTTP 401.*credentials/);
    const wrong = await push(["--creds", "ci:ocr_not-a-token", layout, `${proxy.url}/team/app:wrong`], cliEnv());
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/token.*HTTP 401/);
  });
});

describe("push from a docker save tarball", () => {
  it("reads the archive from stdin and pushes a Docker schema 2 manifest whose digests are the archive's", async () => {
    // The docker save format: <id>/layer.tar (uncompressed), <config sha256>.json, manifest.json.
    const archive = join(work, "docker-archive");
    const layerDirs = [join(work, "rootfs-1"), join(work, "rootfs-2")];
    await mkdir(join(layerDirs[0]!, "data"), { recursive: true });
    await mkdir(layerDirs[1]!, { recursive: true });
    await writeFile(join(layerDirs[0]!, "data", "big.bin"), randomBytes("docker-archive layer", 10 * MiB));
    await writeFile(join(layerDirs[1]!, "hello.txt"), "hello from a docker save archive\n");
    await mkdir(join(archive, "1111"), { recursive: true });
    await mkdir(join(archive, "2222"), { recursive: true });
    const layerTars = [join(archive, "1111", "layer.tar"), join(archive, "2222", "layer.tar")];
    for (const [i, dir] of layerDirs.entries()) await mustRun("tar", ["-cf", layerTars[i]!, "-C", dir, "."]);
    const diffIds = await Promise.all(layerTars.map((tar) => sha256File(tar)));
    const config = Buffer.from(JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: { Cmd: ["/bin/sh"] },
      rootfs: { type: "layers", diff_ids: diffIds },
      history: [{ created_by: "layer 1" }, { created_by: "layer 2" }],
    }));
    const configDigest = sha256(config);
    await writeFile(join(archive, `${configDigest.slice(7)}.json`), config);
    await writeFile(join(archive, "manifest.json"), JSON.stringify([
      { Config: `${configDigest.slice(7)}.json`, RepoTags: ["example/app:1"], Layers: ["1111/layer.tar", "2222/layer.tar"] },
    ]));
    const tarball = join(work, "image.tar");
    await mustRun("tar", ["-cf", tarball, "-C", archive, "."]);

    const summary = await new Promise<PushSummary>((resolve, reject) => {
      const child = spawn(process.execPath, [CLI, "push", "--json", "-", `${proxy.url}/team/saved:1`], {
        env: cliEnv({ REGISTRY_TOKEN: token }),
        stdio: ["pipe", "pipe", "pipe"],
      });
      const out: Buffer[] = [];
      let err = "";
      child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
      child.stderr.on("data", (chunk: Buffer) => (err += chunk.toString()));
      createReadStream(tarball).pipe(child.stdin);
      child.on("error", reject);
      child.on("close", (code) => {
        if (code === 0) resolve(JSON.parse(Buffer.concat(out).toString()) as PushSummary);
        else reject(new Error(`push - exited with ${code}\n${err}`));
      });
    });
    expect(summary.mediaType).toBe("application/vnd.docker.distribution.manifest.v2+json");

    const response = await fetch(`${registry.url}/v2/team/saved/manifests/1`, {
      headers: { Authorization: await bearer("team/saved"), Accept: summary.mediaType },
    });
    expect(response.status).toBe(200);
    const manifestBytes = Buffer.from(await response.arrayBuffer());
    expect(sha256(manifestBytes)).toBe(summary.digest);
    const manifest = JSON.parse(manifestBytes.toString()) as { config: { digest: string; mediaType: string }; layers: { digest: string; mediaType: string; size: number }[] };
    expect(manifest.config).toMatchObject({ digest: configDigest, mediaType: "application/vnd.docker.container.image.v1+json" });
    expect(manifest.layers.map((layer) => layer.digest)).toEqual(diffIds);
    expect(manifest.layers.every((layer) => layer.mediaType === "application/vnd.docker.image.rootfs.diff.tar")).toBe(true);
    expect(proxy.patches.every((bytes) => bytes <= MAX_BODY)).toBe(true);
    expect(proxy.patches.length).toBe(2);

    const pulled = await pullBack("team/saved:1");
    expect(pulled.manifest.equals(manifestBytes)).toBe(true);
    expect([...pulled.files.keys()].sort()).toEqual([configDigest, ...diffIds].sort());
    for (const [digest, actual] of pulled.files) expect(actual).toBe(digest);
  });
});

describe("interrupted pushes", () => {
  it("resumes a killed push from the registry's offset without re-sending completed chunks", async () => {
    const big = join(work, "layout-resume");
    const built = await buildImage(big, { layers: [40 * MiB], tag: "v1", seed: "push-cli resume" });
    const layer = built.layers[0]!;
    const stateFile = join(work, "resume-state.json");
    const args = ["--state", stateFile, big, `${proxy.url}/team/resume:1`];

    // Kill the push (SIGKILL: no cleanup) once the registry has acknowledged its first chunk.
    const killed = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, [CLI, "push", "--verbose", ...args], { env: cliEnv({ REGISTRY_TOKEN: token }) });
      let err = "";
      child.stderr.on("data", (chunk: Buffer) => {
        err += chunk.toString();
        if (/sent \d+ of/.test(err)) child.kill("SIGKILL");
      });
      child.on("error", reject);
      child.on("close", (_code, signal) => (signal === "SIGKILL" ? resolve(err) : reject(new Error(`not killed:\n${err}`))));
    });
    expect(killed).toMatch(/sent 8388608 of/);

    // Where the registry says the upload is.
    const saved = JSON.parse(await readFile(stateFile, "utf8")) as Record<string, { location: string }>;
    const [entry] = Object.values(saved);
    expect(entry).toBeDefined();
    const location = new URL(new URL(entry!.location).pathname, registry.url);
    const authorization = await bearer("team/resume");
    const offsetNow = async () => {
      const status = await fetch(location, { headers: { Authorization: authorization } });
      expect(status.status).toBe(204);
      return Number(status.headers.get("range")!.split("-")[1]) + 1;
    };
    // The chunk in flight when the push died settles first (the registry keeps what it stored of it).
    let offset = await offsetNow();
    for (let settled = 0; settled < 3; ) {
      await new Promise((wait) => setTimeout(wait, 200));
      const now = await offsetNow();
      settled = now === offset ? settled + 1 : 0;
      offset = now;
    }
    expect(offset).toBeGreaterThanOrEqual(MAX_BODY);
    expect(offset).toBeLessThan(layer.size);

    proxy.reset();
    const summary = await mustPush(args);
    expect(summary.digest).toBe(built.manifest.digest);
    const resumed = summary.blobs.find((blob) => blob.digest === layer.digest)!;
    expect(resumed).toMatchObject({ outcome: "uploaded", resumedFrom: offset, sent: layer.size - offset });
    // Counted on the wire: only the bytes from the offset on.
    expect(proxy.patches.reduce((sum, bytes) => sum + bytes, 0)).toBe(layer.size - offset);
    expect(JSON.parse(await readFile(stateFile, "utf8"))).toEqual({});

    const pulled = await pullBack("team/resume:1");
    expect(pulled.files.get(layer.digest)).toBe(layer.digest);
  });

  it("retries a chunk cut off mid-body from the offset the registry reports", async () => {
    const layer = image.layers[0]!;
    // The second PATCH loses its connection 3 MiB in.
    const cutAt = 3 * MiB;
    proxy.cutPatch(1, cutAt);
    const summary = await mustPush(["--no-state", layout, `${proxy.url}/team/retried:1`]);
    const retried = summary.blobs.find((blob) => blob.digest === layer.digest)!;
    expect(retried.retries).toBeGreaterThanOrEqual(1);
    expect(proxy.patches[1]).toBe(cutAt);
    // Sent once, plus at most the part of the cut-off chunk the registry had not stored.
    const onWire = proxy.patches.reduce((sum, bytes) => sum + bytes, 0);
    expect(onWire).toBeGreaterThanOrEqual(layer.size);
    expect(onWire).toBeLessThanOrEqual(layer.size + cutAt);
    // What the command wrote to its socket: the cut-off chunk in full, as far as the kernel took it.
    expect(retried.sent).toBeGreaterThanOrEqual(onWire);

    const pulled = await pullBack("team/retried:1");
    expect(pulled.manifest.equals(image.manifestBytes)).toBe(true);
    expect(pulled.files.get(layer.digest)).toBe(layer.digest);
    // The layout's blob is what was pushed.
    expect(await sha256File(blobPath(layout, layer.digest))).toBe(layer.digest);
  });
});
