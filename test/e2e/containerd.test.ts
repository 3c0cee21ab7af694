// containerd (Debian's containerd and its ctr client) against `wrangler dev` under token auth: ctr pulls an image
// that skopeo pushed, following the Bearer challenge with Basic credentials, pushes it to another repository, and
// the bytes skopeo reads back from there are the ones pushed.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mustRun, runCommand } from "../support/command";
import { buildImage, findTagged, listBlobs, type BuiltImage } from "../support/oci-layout";
import { registryForFile } from "./fixture";
import { MIN_PART_BYTES, tokenAuth, type Registry } from "./harness";

const MiB = 1024 * 1024;
const auth = tokenAuth();
const admin = `admin:${auth.ADMIN_TOKEN}`;

let registry: Registry;
let work: string;
let containerd: ChildProcess | undefined;
let socket: string;

registryForFile("oci-e2e-containerd-", { vars: { UPLOAD_PART_BYTES: String(MIN_PART_BYTES), ...auth.vars } }, (started, dir) => {
  registry = started;
  work = dir;
});

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/** A containerd daemon of the test's own: its root, state and socket in the scratch directory, no CRI plugin. */
beforeAll(async () => {
  const home = join(work, "containerd");
  socket = join(home, "containerd.sock");
  const config = join(work, "containerd.toml");
  await writeFile(
    config,
    [
      "version = 2",
      `root = "${join(home, "root")}"`,
      `state = "${join(home, "state")}"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      "[grpc]",
      `  address = "${socket}"`,
    ].join("\n"),
  );
  const output: Buffer[] = [];
  containerd = spawn("containerd", ["--config", config], { stdio: ["ignore", "pipe", "pipe"] });
  containerd.stdout!.on("data", (chunk: Buffer) => output.push(chunk));
  containerd.stderr!.on("data", (chunk: Buffer) => output.push(chunk));
  for (let waited = 0; !existsSync(socket); waited += 100) {
    if (waited > 20_000 || containerd.exitCode !== null) throw new Error(`containerd did not start:\n${Buffer.concat(output).toString().slice(-4000)}`);
    await sleep(100);
  }
});

afterAll(async () => {
  if (containerd && containerd.exitCode === null) {
    const exited = new Promise((done) => containerd!.once("exit", done));
    containerd.kill("SIGTERM");
    await exited;
  }
});

const ctr = (...args: string[]) => mustRun("ctr", ["--address", socket, ...args], { timeoutMs: 150_000 });
const skopeo = (...args: string[]) => mustRun("skopeo", ["--insecure-policy", "--tmpdir", work, ...args], { timeoutMs: 150_000 });

describe("containerd (ctr) against wrangler dev", () => {
  let image: BuiltImage;

  it("pulls an image skopeo pushed, through the token flow, with every digest verified", async () => {
    const source = join(work, "src");
    image = await buildImage(source, { layers: [4096, 12 * MiB], tag: "v1", seed: "containerd" });
    await skopeo("copy", "--retry-times", "0", "--dest-tls-verify=false", "--dest-creds", admin, `oci:${source}:v1`, `docker://${registry.host}/e2e/ctr:v1`);

    await ctr("images", "pull", "--plain-http", "--user", admin, `${registry.host}/e2e/ctr:v1`);
    const listed = (await ctr("images", "ls")).stdout.toString();
    expect(listed).toContain(`${registry.host}/e2e/ctr:v1`);
    expect(listed).toContain(image.manifest.digest);
    // containerd checks each blob's digest as it writes it to its content store: all of them are there.
    const content = (await ctr("content", "ls", "-q")).stdout.toString();
    for (const blob of [image.manifest, image.config, ...image.layers]) expect(content, blob.digest).toContain(blob.digest);
  });

  it("is refused without credentials", async () => {
    const denied = await runCommand("ctr", ["--address", socket, "images", "pull", "--plain-http", `${registry.host}/e2e/ctr:v1`], { timeoutMs: 60_000 });
    expect(denied.code).not.toBe(0);
    expect(`${denied.stderr}${denied.stdout}`).toMatch(/401|unauthorized|authorization/i);
  });

  it("pushes the image to another repository, and it reads back byte for byte", async () => {
    await ctr("images", "tag", `${registry.host}/e2e/ctr:v1`, `${registry.host}/e2e/ctr-pushed:v2`);
    await ctr("images", "push", "--plain-http", "--user", admin, `${registry.host}/e2e/ctr-pushed:v2`);
    const out = join(work, "out");
    await skopeo("copy", "--retry-times", "0", "--src-tls-verify=false", "--src-creds", admin, `docker://${registry.host}/e2e/ctr-pushed:v2`, `oci:${out}:v2`);
    expect((await findTagged(out, "v2"))?.digest).toBe(image.manifest.digest);
    const pulled = await listBlobs(out);
    for (const blob of [image.config, ...image.layers]) expect(pulled.get(blob.digest)?.sha256, blob.digest).toBe(blob.digest);
  });
});
