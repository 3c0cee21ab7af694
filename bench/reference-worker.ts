// A reference Worker (bench/r2-baseline/, bench/constant-worker/) under `wrangler dev`, in its own process group and
// state directory, so that the registry's figures can be read against what the same local runtime costs by itself.
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, processGroupMembers } from "../test/e2e/harness.ts";

const PROJECT = fileURLToPath(new URL("..", import.meta.url));
const WRANGLER = join(PROJECT, "node_modules", ".bin", "wrangler");
const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

export interface ReferenceWorker {
  /** http://127.0.0.1:<port> */
  url: string;
  /** 127.0.0.1:<port> */
  host: string;
  /** The process group of wrangler, its node child and workerd. */
  pgid: number;
  stop(): Promise<void>;
}

/** `wrangler dev` of bench/<directory>/wrangler.toml; up once any request gets an HTTP answer. */
export async function startReferenceWorker(directory: string): Promise<ReferenceWorker> {
  const root = await mkdtemp(join(tmpdir(), `oci-bench-${directory}-`));
  const port = await freePort();
  const child = spawn(
    WRANGLER,
    [
      "dev",
      "-c", join(PROJECT, "bench", directory, "wrangler.toml"),
      "--ip", "127.0.0.1",
      "--port", String(port),
      "--persist-to", join(root, "state"),
      "--show-interactive-dev-session=false",
    ],
    {
      cwd: PROJECT,
      detached: true,
      stdio: "ignore",
      env: { ...process.env, NO_COLOR: "1", WRANGLER_SEND_METRICS: "false", WRANGLER_LOG_PATH: join(root, "logs") },
    },
  );
  const pgid = child.pid!;
  const host = `127.0.0.1:${port}`;
  const url = `http://${host}`;
  const stop = async () => {
    for (const signal of ["SIGTERM", "SIGKILL"] as const) {
      try {
        process.kill(-pgid, signal);
      } catch {
        // gone
      }
      for (let tries = 0; tries < 100 && processGroupMembers(pgid).length > 0; tries++) await sleep(100);
    }
    await rm(root, { recursive: true, force: true });
  };
  process.once("exit", () => {
    try {
      process.kill(-pgid, "SIGKILL");
    } catch {
      // gone
    }
  });
  for (let tries = 0; tries < 360; tries++) {
    try {
      const response = await fetch(`${url}/ping`, { signal: AbortSignal.timeout(5_000) });
      await response.arrayBuffer();
      return { url, host, pgid, stop };
    } catch {
      // not up yet
    }
    await sleep(250);
  }
  await stop();
  throw new Error(`the ${directory} Worker did not come up`);
}
