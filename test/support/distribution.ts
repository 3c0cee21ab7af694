// CNCF Distribution (Debian's docker-registry) on loopback, as a real upstream for mirror tests and a reference
// for benchmarks: filesystem storage in a temp dir, optional htpasswd (bcrypt) authentication.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../e2e/harness";
import { mustRun } from "./command";

export interface Distribution {
  url: string;
  host: string;
  stop(): Promise<void>;
}

export interface TokenAuth {
  realm: string;
  service: string;
  issuer: string;
  certificate: string;
}

export async function startDistribution(options: { user?: string; password?: string; token?: TokenAuth } = {}): Promise<Distribution> {
  const root = await mkdtemp(join(tmpdir(), "oci-distribution-"));
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  let auth = "";
  if (options.user && options.password) {
    const line = (await mustRun("htpasswd", ["-Bbn", options.user, options.password])).stdout.toString().trim();
    await writeFile(join(root, "htpasswd"), `${line}\n`);
    auth = `auth:\n  htpasswd:\n    realm: distribution\n    path: ${join(root, "htpasswd")}\n`;
  }
  if (options.token) {
    const { realm, service, issuer, certificate } = options.token;
    auth = `auth:\n  token:\n    realm: ${realm}\n    service: ${service}\n    issuer: ${issuer}\n    rootcertbundle: ${certificate}\n`;
  }
  const config = `version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: ${join(root, "data")}
  delete:
    enabled: true
http:
  addr: ${host}
${auth}`;
  await writeFile(join(root, "config.yml"), config);
  const child: ChildProcess = spawn("docker-registry", ["serve", join(root, "config.yml")], { stdio: ["ignore", "ignore", "pipe"] });
  let output = "";
  child.stderr!.on("data", (chunk: Buffer) => (output = (output + chunk.toString()).slice(-8000)));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((done) => child.once("exit", done));
      child.kill("SIGKILL");
      await exited;
    }
    await rm(root, { recursive: true, force: true });
  };
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const status = await fetch(`http://${host}/v2/`).then((r) => r.status).catch(() => 0);
    if (status === 200 || status === 401) return { url: `http://${host}`, host, stop };
    if (child.exitCode !== null) break;
    await new Promise((done) => setTimeout(done, 100));
  }
  await stop();
  throw new Error(`docker-registry did not start on ${host}:\n${output}`);
}
