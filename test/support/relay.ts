// `npx edge-oci-registry relay --to <registry>` started for a test on a free loopback port.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { freePort } from "../e2e/harness";

const CLI = fileURLToPath(new URL("../../cli/edge-oci-registry.ts", import.meta.url));

export interface Relay {
  host: string;
  url: string;
  output(): string;
  stop(): Promise<void>;
}

export async function startRelay(target: string, ...options: string[]): Promise<Relay> {
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, [CLI, "relay", "--to", target, "--listen", `127.0.0.1:${port}`, ...options], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const deadline = Date.now() + 10_000;
  while (!output.includes("relay listening on")) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the relay did not start:\n${output}`);
    await new Promise((wait) => setTimeout(wait, 50));
  }
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    output: () => output,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      await exited;
    },
  };
}
