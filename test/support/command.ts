// Runs an external program (skopeo, curl, tar) and collects what it printed, without a shell.
import { spawn } from "node:child_process";

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
  /** The command line, for error messages. */
  line: string;
}

export function runCommand(
  command: string,
  args: string[],
  options: { timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string } = {},
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      env: options.env ?? process.env,
      timeout: options.timeoutMs ?? 120_000,
      killSignal: "SIGKILL",
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout!.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr!.on("data", (chunk: Buffer) => stderr.push(chunk));
    child.on("error", reject);
    if (options.input !== undefined) child.stdin!.end(options.input);
    child.on("close", (code, signal) =>
      resolve({
        code,
        signal,
        stdout: Buffer.concat(stdout),
        stderr: Buffer.concat(stderr).toString(),
        line: [command, ...args].join(" "),
      }),
    );
  });
}

/** Like runCommand, but a non-zero exit is an error that shows the command and its output. */
export async function mustRun(command: string, args: string[], options?: Parameters<typeof runCommand>[2]): Promise<CommandResult> {
  const result = await runCommand(command, args, options);
  if (result.code !== 0) {
    throw new Error(
      `${result.line}\nexited with ${result.code ?? result.signal}\n--- stderr ---\n${result.stderr}\n--- stdout ---\n${result.stdout.toString().slice(0, 4000)}`,
    );
  }
  return result;
}
