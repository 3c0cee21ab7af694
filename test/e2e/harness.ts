// Starts the registry the way a user does: `wrangler d1 migrations apply` then `wrangler dev`, on a free port, with
// its own state directory, in its own process group so that stopping it leaves no wrangler or workerd behind.
import { spawn, type ChildProcess } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const PROJECT = fileURLToPath(new URL("../..", import.meta.url));
const WRANGLER = join(PROJECT, "node_modules", ".bin", "wrangler");
const START_TIMEOUT_MS = 90_000;
const STOP_TIMEOUT_MS = 10_000;
const OUTPUT_LIMIT = 64 * 1024;

/** Vars for token authentication with a fresh signing key and admin token (the test needs the admin token back). */
export function tokenAuth(): { ADMIN_TOKEN: string; vars: Record<string, string> } {
  const ADMIN_TOKEN = randomBytes(24).toString("hex");
  const TOKEN_SIGNING_KEY = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  return { ADMIN_TOKEN, vars: { AUTH_MODE: "token", TOKEN_SIGNING_KEY, ADMIN_TOKEN } };
}

/** R2's smallest legal part size: makes small test blobs go through multipart uploads. */
export const MIN_PART_BYTES = 5 * 1024 * 1024;

export interface Registry {
  /** http://127.0.0.1:<port> */
  url: string;
  /** 127.0.0.1:<port>, for docker:// references. */
  host: string;
  /** The process group of wrangler, its node child and workerd. */
  pgid: number;
  /** Where `--persist-to` keeps D1, R2 and Durable Object state. */
  stateDir: string;
  /** What wrangler printed so far (the tail of it). */
  output(): string;
  /** Kills the whole process group, waits until it is gone, removes the state directory. Safe to call twice. */
  stop(): Promise<void>;
}

export interface StartOptions {
  /**
   * Worker vars and secrets (override wrangler.toml's [vars]), given to wrangler in an env file so that multi-line
   * values such as PEM keys survive. AUTH_MODE defaults to "open", as `npm run dev` runs it.
   */
  vars?: Record<string, string>;
  /** How long wrangler dev may take to answer GET /v2/ with 200, or 401 under token auth (default 90 s). */
  startTimeoutMs?: number;
  /** Local state to use (shared with another Worker, see startPublicBucket) instead of a fresh one; left in place. */
  stateDir?: string;
}

/** A value as a .env file line needs it: multi-line (PEM keys) double-quoted with \n, anything else single-quoted. */
function dotenvValue(value: string): string {
  if (value.includes("\n")) {
    if (value.includes('"')) throw new Error("a multi-line value with double quotes cannot go in a .env file");
    return `"${value.replaceAll("\n", "\\n")}"`;
  }
  if (value.includes("'")) throw new Error("a value with single quotes cannot go in a .env file");
  return `'${value}'`;
}

/** A TCP port that was free a moment ago (the kernel picks it; we close and hand it to wrangler). */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      if (address === null || typeof address === "string") {
        server.close();
        reject(new Error("no port"));
        return;
      }
      server.close(() => resolvePort(address.port));
    });
  });
}

const childEnv = (): NodeJS.ProcessEnv => ({
  ...process.env,
  NO_COLOR: "1",
  FORCE_COLOR: "0",
  WRANGLER_SEND_METRICS: "false",
});

class OutputTail {
  private text = "";
  append(chunk: Buffer | string): void {
    this.text += chunk.toString();
    if (this.text.length > OUTPUT_LIMIT) this.text = this.text.slice(-OUTPUT_LIMIT);
  }
  toString(): string {
    return this.text;
  }
}

function run(args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  return new Promise((done, reject) => {
    const output = new OutputTail();
    const child = spawn(WRANGLER, args, {
      cwd,
      env,
      stdio: ["ignore", "pipe", "pipe"],
      timeout: START_TIMEOUT_MS,
      killSignal: "SIGKILL",
    });
    child.stdout.on("data", (chunk: Buffer) => output.append(chunk));
    child.stderr.on("data", (chunk: Buffer) => output.append(chunk));
    child.on("error", reject);
    child.on("close", (code) => done({ code, output: output.toString() }));
  });
}

/** Live processes (not zombies) whose process group is `pgid`, read from /proc (Linux). */
export function processGroupMembers(pgid: number): number[] {
  if (!existsSync("/proc/self/stat")) {
    try {
      process.kill(-pgid, 0);
      return [pgid];
    } catch {
      return [];
    }
  }
  const members: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // exited meanwhile
    }
    // pid (comm) state ppid pgrp ...; comm may contain spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const state = fields[0];
    const pgrp = Number(fields[2]);
    if (pgrp === pgid && state !== "Z" && state !== "X") members.push(Number(entry));
  }
  return members;
}

// Groups still running when this process exits (a crash, a forgotten stop()) are killed on the way out.
const live = new Set<number>();
process.on("exit", () => {
  for (const pgid of live) signalGroup(pgid, "SIGKILL");
});

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // already gone
  }
}

const sleep = (ms: number) => new Promise((resolveSleep) => setTimeout(resolveSleep, ms));

async function killGroup(child: ChildProcess, pgid: number): Promise<void> {
  const exited = new Promise<void>((done) => {
    if (child.exitCode !== null || child.signalCode !== null) done();
    else child.once("exit", () => done());
  });
  signalGroup(pgid, "SIGTERM");
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (processGroupMembers(pgid).length > 0 && Date.now() < deadline) await sleep(100);
  if (processGroupMembers(pgid).length > 0) signalGroup(pgid, "SIGKILL");
  await Promise.race([exited, sleep(STOP_TIMEOUT_MS)]);
  const kill = Date.now() + STOP_TIMEOUT_MS;
  while (processGroupMembers(pgid).length > 0 && Date.now() < kill) {
    signalGroup(pgid, "SIGKILL");
    await sleep(100);
  }
  const left = processGroupMembers(pgid);
  if (left.length > 0) throw new Error(`processes ${left.join(", ")} of wrangler's group ${pgid} would not die`);
}

async function ping(url: string): Promise<number | string> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
    await response.arrayBuffer();
    return response.status;
  } catch (error) {
    return String((error as Error).cause ?? error);
  }
}

// Signals that end this process without an "exit" event: take the wrangler groups down too, then die as asked.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.once(signal, () => {
    for (const pgid of live) signalGroup(pgid, "SIGKILL");
    process.kill(process.pid, signal);
  });
}

type Launch = { ok: true; registry: Registry } | { ok: false; portTaken: boolean; error: Error };

/**
 * One `wrangler dev` on a fresh free port; stopped again if it does not come up (GET readyPath answers 200 or 401).
 * `extra` are more arguments for wrangler (vars, another Worker's config).
 */
async function launch(state: string, env: NodeJS.ProcessEnv, extra: string[], timeoutMs: number, readyPath = "/v2/"): Promise<Launch> {
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const url = `http://${host}`;
  const args = [
    "dev",
    "--ip", "127.0.0.1",
    "--port", String(port),
    "--persist-to", state,
    "--show-interactive-dev-session=false",
    ...extra,
  ];
  const output = new OutputTail();
  // detached: a new session and process group, led by wrangler; its node child and workerd inherit it.
  const child = spawn(WRANGLER, args, { cwd: PROJECT, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  child.stdout!.on("data", (chunk: Buffer) => output.append(chunk));
  child.stderr!.on("data", (chunk: Buffer) => output.append(chunk));
  let spawnError: Error | undefined;
  child.on("error", (error) => {
    spawnError = error;
  });
  const pgid = child.pid;
  if (pgid === undefined) {
    return { ok: false, portTaken: false, error: new Error(`could not start wrangler: ${spawnError ?? "no pid"}`) };
  }
  live.add(pgid);

  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= killGroup(child, pgid).finally(() => live.delete(pgid));
    return stopped;
  };

  const exited = () => child.exitCode !== null || child.signalCode !== null;
  const started = Date.now();
  let last: number | string = "not tried";
  while (Date.now() - started < timeoutMs) {
    if (spawnError || exited()) break;
    last = await ping(`${url}${readyPath}`);
    if (last === 200 || last === 401) return { ok: true, registry: { url, host, pgid, stateDir: state, output: () => output.toString(), stop } };
    await sleep(250);
  }
  const why = spawnError
    ? `failed to spawn: ${spawnError.message}`
    : exited()
      ? `exited (code ${child.exitCode}, signal ${child.signalCode}) before serving`
      : `GET ${url}${readyPath} did not return 200 or 401 within ${timeoutMs / 1000} s (last: ${last})`;
  await stop();
  return {
    ok: false,
    // Someone else took the port between freePort() and wrangler's bind.
    portTaken: /address already in use/i.test(output.toString()),
    error: new Error(`wrangler ${args.join(" ")}\n${why}\n--- wrangler output ---\n${output.toString()}`),
  };
}

export async function startRegistry(options: StartOptions = {}): Promise<Registry> {
  // One temporary root per registry: local state (D1, R2, Durable Objects) and wrangler's log files.
  const root = await mkdtemp(join(tmpdir(), "oci-e2e-"));
  const state = options.stateDir ?? join(root, "state");
  const env = { ...childEnv(), WRANGLER_LOG_PATH: join(root, "logs") };
  const removeRoot = () => rm(root, { recursive: true, force: true });

  try {
    const migrate = await run(["d1", "migrations", "apply", "DB", "--local", "--persist-to", state], PROJECT, env);
    if (migrate.code !== 0) throw new Error(`wrangler d1 migrations apply exited with ${migrate.code}:\n${migrate.output}`);

    const envFile = join(root, "worker.env");
    const values = { AUTH_MODE: "open", ...options.vars };
    await writeFile(envFile, Object.entries(values).map(([name, value]) => `${name}=${dotenvValue(value)}\n`).join(""));
    const vars = ["--env-file", envFile];
    for (let attempt = 1; ; attempt++) {
      const launched = await launch(state, env, vars, options.startTimeoutMs ?? START_TIMEOUT_MS);
      if (launched.ok) {
        const { registry } = launched;
        let stopped: Promise<void> | undefined;
        return {
          ...registry,
          stop: () => (stopped ??= registry.stop().finally(removeRoot)),
        };
      }
      if (!launched.portTaken || attempt === 3) throw launched.error;
    }
  } catch (error) {
    await removeRoot();
    throw error;
  }
}

/**
 * What a public R2 bucket (or its custom domain) serves, emulated by a bare Worker reading the local R2 state in
 * `stateDir` (test/support/public-bucket): the target of BLOB_REDIRECT=public for a registry started on that state.
 */
export async function startPublicBucket(stateDir: string): Promise<{ url: string; stop(): Promise<void> }> {
  const config = join(PROJECT, "test", "support", "public-bucket", "wrangler.toml");
  const logs = await mkdtemp(join(tmpdir(), "oci-e2e-bucket-"));
  const env = { ...childEnv(), WRANGLER_LOG_PATH: logs };
  for (let attempt = 1; ; attempt++) {
    const launched = await launch(stateDir, env, ["-c", config], START_TIMEOUT_MS, "/ready");
    if (launched.ok) {
      return { url: launched.registry.url, stop: () => launched.registry.stop().finally(() => rm(logs, { recursive: true, force: true })) };
    }
    if (!launched.portTaken || attempt === 3) throw launched.error;
  }
}
