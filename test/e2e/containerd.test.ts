// containerd (Debian's containerd and its ctr client) against `wrangler dev` under token auth: ctr pulls an image
// that skopeo pushed, following the Bearer challenge with Basic credentials, pushes it to another repository, and
// the bytes skopeo reads back from there are the ones pushed.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mustRun, runCommand } from "../support/command";
import { startContainerd, type Containerd } from "../support/containerd";
import { buildImage, findTagged, listBlobs, type BuiltImage } from "../support/oci-layout";
import { registryForFile } from "./fixture";
import { MIN_PART_BYTES, tokenAuth, type Registry } from "./harness";

const MiB = 1024 * 1024;
const auth = tokenAuth();
const admin = `admin:${auth.ADMIN_TOKEN}`;

let registry: Registry;
let work: string;
let containerd: Containerd;

registryForFile("oci-e2e-containerd-", { vars: { UPLOAD_PART_BYTES: String(MIN_PART_BYTES), ...auth.vars } }, (started, dir) => {
  registry = started;
  work = dir;
});

beforeAll(async () => {
  containerd = await startContainerd(work);
});

afterAll(() => containerd?.stop());

const ctr = (...args: string[]) => containerd.ctr(...args);
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
    const denied = await runCommand("ctr", ["--address", containerd.socket, "images", "pull", "--plain-http", `${registry.host}/e2e/ctr:v1`], { timeoutMs: 60_000 });
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
