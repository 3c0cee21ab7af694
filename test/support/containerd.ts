// A containerd daemon of a test's own: its root, state and socket in the test's scratch directory, no CRI plugin.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { mustRun } from "./command";

export interface Containerd {
  socket: string;
  /** Runs `ctr --address <socket> …`, failing on a non-zero exit. */
  ctr(...args: string[]): ReturnType<typeof mustRun>;
  stop(): Promise<void>;
}

export async function startContainerd(work: string): Promise<Containerd> {
  const home = join(work, "containerd");
  const socket = join(home, "containerd.sock");
  const config = join(work, "containerd.toml");
  await writeFile(
    config,
    ["version = 2", `root = "${join(home, "root")}"`, `state = "${join(home, "state")}"`, 'disabled_plugins = ["io.containerd.grpc.v1.cri"]', "[grpc]", `  address = "${socket}"`].join("\n"),
  );
  const output: Buffer[] = [];
  const daemon = spawn("containerd", ["--config", config], { stdio: ["ignore", "pipe", "pipe"] });
  daemon.stdout!.on("data", (chunk: Buffer) => output.push(chunk));
  daemon.stderr!.on("data", (chunk: Buffer) => output.push(chunk));
  for (let waited = 0; !existsSync(socket); waited += 100) {
    if (waited > 20_000 || daemon.exitCode !== null) throw new Error(`containerd did not start:\n${Buffer.concat(output).toString().slice(-4000)}`);
    await new Promise((done) => setTimeout(done, 100));
  }
  return {
    socket,
    ctr: (...args: string[]) => mustRun("ctr", ["--address", socket, ...args], { timeoutMs: 150_000 }),
    stop: async () => {
      if (daemon.exitCode !== null) return;
      const exited = new Promise((done) => daemon.once("exit", done));
      daemon.kill("SIGTERM");
      await exited;
    },
  };
}
