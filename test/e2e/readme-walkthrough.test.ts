// The README's "Try token mode locally" walk-through, run as written: `npm run dev:token` in the background, then
// each line of the README's block in one bash session, in the project directory, as a user would.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCommand } from "../support/command";
import { processGroupMembers } from "./harness";

const PROJECT = fileURLToPath(new URL("../..", import.meta.url));
const DEV_VARS = join(PROJECT, ".dev.vars");
const BACKUP = join(PROJECT, ".dev.vars.before-walkthrough");
const MARKER = "<!-- walkthrough:token-mode";

/** The lines of the README's fenced block right after the marker. */
function walkthrough(): string[] {
  const readme = readFileSync(join(PROJECT, "README.md"), "utf8");
  const after = readme.slice(readme.indexOf(MARKER));
  const block = /```sh\n([\s\S]*?)```/.exec(after);
  if (!block) throw new Error("README has no walk-through block after its marker");
  return block[1]!.split("\n").filter((line) => line.trim() !== "");
}

let work: string;
let server: ChildProcess;
let output = "";

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "oci-walkthrough-"));
  // The walk-through makes .dev.vars; a developer's own is put back afterwards.
  if (existsSync(DEV_VARS)) await rename(DEV_VARS, BACKUP);
  server = spawn("npm", ["run", "dev:token", "--", "--persist-to", join(work, "state")], { cwd: PROJECT, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  server.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  server.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const deadline = Date.now() + 120_000;
  for (;;) {
    const status = await fetch("http://127.0.0.1:8787/v2/").then((r) => r.status, () => 0);
    if (status === 401) break;
    if (Date.now() > deadline || server.exitCode !== null) throw new Error(`npm run dev:token did not come up (last status ${status}):\n${output}`);
    await new Promise((done) => setTimeout(done, 500));
  }
}, 180_000);

afterAll(async () => {
  if (server?.pid) {
    try {
      process.kill(-server.pid, "SIGKILL");
    } catch {}
    for (let i = 0; i < 50 && processGroupMembers(server.pid).length > 0; i++) await new Promise((done) => setTimeout(done, 100));
  }
  await rm(DEV_VARS, { force: true });
  if (existsSync(BACKUP)) await rename(BACKUP, DEV_VARS);
  await rm(join(PROJECT, "hello.txt"), { force: true });
  await rm(work, { recursive: true, force: true });
});

describe("the README's token-mode walk-through", () => {
  it("prints the admin token it keeps in .dev.vars", () => {
    const vars = readFileSync(DEV_VARS, "utf8");
    const adminToken = /^ADMIN_TOKEN='([0-9a-f]{64})'$/m.exec(vars)?.[1];
    expect(adminToken).toBeDefined();
    expect(output).toContain(`admin token (from ${DEV_VARS}): ${adminToken}`);
    expect(vars).toMatch(/^TOKEN_SIGNING_KEY="-----BEGIN PRIVATE KEY-----\\n/m);
  });

  it("runs every line as written: an access token, a push with it, refused without it, listed", async () => {
    const lines = walkthrough();
    expect(lines.length).toBeGreaterThanOrEqual(5);
    // buildah's own storage for this run, so the README's commands need no flags for it.
    const storage = join(work, "storage.conf");
    await writeFile(storage, `[storage]\ndriver = "vfs"\ngraphroot = "${join(work, "graph")}"\nrunroot = "${join(work, "run")}"\n`);
    const env = { ...process.env, CONTAINERS_STORAGE_CONF: storage, REGISTRY_ADMIN_TOKEN: "", REGISTRY_URL: "" };
    delete (env as Record<string, string | undefined>).REGISTRY_ADMIN_TOKEN;
    delete (env as Record<string, string | undefined>).REGISTRY_URL;
    const script = ["set -euo pipefail", ...lines.flatMap((line) => [`echo "+ ${line.replaceAll('"', '\\"').replaceAll("$", "\\$")}"`, line])].join("\n");
    const result = await runCommand("bash", ["-c", script], { env, timeoutMs: 240_000 });
    const printed = `${result.stdout.toString()}\n${result.stderr}`;
    expect(result.code, printed).toBe(0);
    expect(printed).toContain("refused without credentials");
    expect(printed).toMatch(/"Digest": "sha256:[0-9a-f]{64}"/);
    expect(printed).toMatch(/\tme\t-\tteam\/\*:pull,push\tno expiry/);
  }, 300_000);
});
