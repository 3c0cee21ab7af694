// A Docker daemon of a test file's own (Debian's docker.io, run as root): vfs storage, no iptables and no bridge,
// its data root, exec root, socket, pid file and daemon.json in temporary directories, so that it neither needs nor
// disturbs a system daemon. Stopping it waits until dockerd and the containerd it started are gone, then removes
// the directories.
import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants, existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { mustRun, runCommand, type CommandResult } from "./command";

const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 20_000;
const OUTPUT_LIMIT = 64 * 1024;

export interface DockerdOptions {
  /** host:port of registries spoken to over plain HTTP (docker already treats 127.0.0.0/8 so; said anyway). */
  insecureRegistries?: string[];
  /** daemon.json's registry-mirrors, e.g. http://127.0.0.1:<port>. */
  registryMirrors?: string[];
}

export interface DockerClient {
  /** This client's DOCKER_CONFIG: its logins and `docker manifest` lists. */
  config: string;
  /** The docker CLI against this daemon; a non-zero exit is a result, not an error. */
  run(args: string[], options?: { timeoutMs?: number; input?: string }): Promise<CommandResult>;
  /** Like run, but a non-zero exit is an error that shows the command and its output. */
  must(args: string[], options?: { timeoutMs?: number; input?: string }): Promise<CommandResult>;
}

export interface Dockerd {
  /** unix://<exec root>/docker.sock, for DOCKER_HOST. */
  host: string;
  /** A docker CLI with a fresh DOCKER_CONFIG directory in `dir`: no credentials, no credential store. */
  client(dir: string): Promise<DockerClient>;
  /** What dockerd printed so far (the tail of it). */
  output(): string;
  /** Stops dockerd and what it started, removes its directories. Safe to call twice. */
  stop(): Promise<void>;
}

/** The dockerd executable (root's PATH has sbin, another user's may not), or undefined when Docker is not installed. */
export function findDockerd(): string | undefined {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/local/sbin", "/usr/sbin", "/sbin"];
  for (const dir of dirs.filter(Boolean)) {
    const candidate = join(dir, "dockerd");
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/** Live processes whose command line names `path` (dockerd's containerd and any shim it started name the exec root). */
function processesNaming(path: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const state = readFileSync(`/proc/${entry}/stat`, "utf8").split(") ")[1]?.[0];
      if (state === "Z" || state === "X") continue;
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(path)) found.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

/** Mount points at or under `dir`, deepest first (dockerd bind-mounts its data root onto itself). */
function mountsUnder(dir: string): string[] {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((line) => line.split(" ")[4])
    .filter((point): point is string => point !== undefined && (point === dir || point.startsWith(`${dir}/`)))
    .sort((a, b) => b.length - a.length);
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

// Daemons still running when this process exits (a crash, a forgotten stop(), a Ctrl-C) are told to shut down on
// the way out: SIGTERM, which stops their containerd and unmounts their data root (SIGKILL would leave the mount).
const live = new Set<number>();
process.on("exit", () => {
  for (const pid of live) signal(pid, "SIGTERM");
});
// Signals that end this process without an "exit" event: the daemons first, then die as asked.
for (const name of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.once(name, () => {
    for (const pid of live) signal(pid, "SIGTERM");
    process.kill(process.pid, name);
  });
}

export async function startDockerd(options: DockerdOptions = {}): Promise<Dockerd> {
  const dockerd = findDockerd();
  if (!dockerd) throw new Error("dockerd is not installed (Debian: apt-get install docker.io)");
  // The exec root holds the API socket and containerd's sockets: a short path keeps them under sun_path's 108 bytes.
  const execRoot = await mkdtemp("/tmp/dkr-");
  const root = await mkdtemp(join(tmpdir(), "oci-e2e-dockerd-"));
  const dataRoot = join(root, "data");
  await mkdir(dataRoot);
  const socket = join(execRoot, "docker.sock");
  const configFile = join(root, "daemon.json");
  await writeFile(
    configFile,
    JSON.stringify({ "insecure-registries": options.insecureRegistries ?? [], "registry-mirrors": options.registryMirrors ?? [] }),
  );
  const host = `unix://${socket}`;

  let output = "";
  const child: ChildProcess = spawn(
    dockerd,
    [
      "--storage-driver=vfs", "--iptables=false", "--ip6tables=false", "--bridge=none",
      "--data-root", dataRoot, "--exec-root", execRoot, "-H", host,
      "--config-file", configFile, "--pidfile", join(root, "dockerd.pid"),
    ],
    // Its own process group: a Ctrl-C meant for the test runner reaches it through the handlers above, not twice.
    { stdio: ["ignore", "pipe", "pipe"], detached: true },
  );
  const append = (chunk: Buffer) => {
    output += chunk.toString();
    if (output.length > OUTPUT_LIMIT) output = output.slice(-OUTPUT_LIMIT);
  };
  child.stdout!.on("data", append);
  child.stderr!.on("data", append);
  let spawnError: Error | undefined;
  child.on("error", (error) => (spawnError = error));
  if (child.pid !== undefined) live.add(child.pid);
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  const running = () => child.exitCode === null && child.signalCode === null && spawnError === undefined;

  // DOCKER_BUILDKIT=0: the legacy builder, which needs no buildx plugin (Debian's docker.io has none).
  const env = (config: string): NodeJS.ProcessEnv => ({ ...process.env, DOCKER_HOST: host, DOCKER_CONFIG: config, DOCKER_BUILDKIT: "0" });

  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      if (running() && child.pid !== undefined) {
        signal(child.pid, "SIGTERM");
        if ((await Promise.race([exited.then(() => true), sleep(STOP_TIMEOUT_MS).then(() => false)])) === false) {
          signal(child.pid, "SIGKILL");
          await exited;
        }
      }
      if (child.pid !== undefined) live.delete(child.pid);
      // containerd stops with dockerd (dockerd stops it, or the parent-death signal kills it): give it a moment,
      // then kill what is left.
      const deadline = Date.now() + STOP_TIMEOUT_MS;
      for (let left = processesNaming(execRoot); left.length > 0; left = processesNaming(execRoot)) {
        if (Date.now() > deadline) throw new Error(`processes ${left.join(", ")} of dockerd (exec root ${execRoot}) would not die`);
        if (Date.now() > deadline - STOP_TIMEOUT_MS / 2) for (const pid of left) signal(pid, "SIGKILL");
        await sleep(100);
      }
      // A dockerd that did not shut down cleanly leaves its data root mounted on itself.
      for (const point of [...mountsUnder(root), ...mountsUnder(execRoot)]) await runCommand("umount", [point], { timeoutMs: 10_000 });
      await rm(root, { recursive: true, force: true, maxRetries: 3 });
      await rm(execRoot, { recursive: true, force: true, maxRetries: 3 });
    })());

  const started = Date.now();
  let last: CommandResult | undefined;
  while (Date.now() - started < START_TIMEOUT_MS) {
    if (!running()) break;
    if (existsSync(socket)) {
      last = await runCommand("docker", ["version", "--format", "{{.Server.Version}}"], { env: env(join(root, "probe")), timeoutMs: 10_000 });
      if (last.code === 0) break;
    }
    await sleep(200);
  }
  if (last?.code !== 0) {
    const why = spawnError
      ? `failed to spawn: ${spawnError.message}`
      : !running()
        ? `exited (code ${child.exitCode}, signal ${child.signalCode})`
        : `did not answer \`docker version\` within ${START_TIMEOUT_MS / 1000} s (last: ${last?.stderr.trim() ?? "no socket"})`;
    await stop();
    throw new Error(`dockerd ${why}\n--- dockerd output ---\n${output.slice(-8000)}`);
  }

  return {
    host,
    output: () => output,
    stop,
    async client(dir) {
      await mkdir(dir, { recursive: true });
      // docker falls back to a detected credential store (pass, where it is installed, then failing with "pass not
      // initialized") only while config.json names no credentials at all: an empty entry for a host nobody uses
      // keeps logins in this file. `{"auths":{}}` alone is not enough.
      await writeFile(join(dir, "config.json"), JSON.stringify({ auths: { "placeholder.invalid": {} } }));
      const options = (given: { timeoutMs?: number; input?: string } = {}) => ({ env: env(dir), timeoutMs: given.timeoutMs ?? 120_000, input: given.input });
      return {
        config: dir,
        run: (args, given) => runCommand("docker", args, options(given)),
        must: (args, given) => mustRun("docker", args, options(given)),
      };
    },
  };
}
