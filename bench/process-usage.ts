// Resident memory and CPU time of the processes under test, read from /proc (Linux): the workerd processes in
// wrangler's process group for the registry, the docker-registry process for CNCF Distribution.
import { readdirSync, readFileSync } from "node:fs";
import { processGroupMembers } from "../test/e2e/harness.ts";

const USER_HZ = 100;

export interface Usage {
  rssBytes: number;
  /** user + system time, all threads */
  cpuSeconds: number;
}

/** Summed over `pids`; a process that exited meanwhile counts for nothing. */
export function usageOf(pids: number[]): Usage {
  let rssBytes = 0;
  let cpuSeconds = 0;
  for (const pid of pids) {
    try {
      const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      rssBytes += Number(rss?.[1] ?? 0) * 1024;
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      // pid (comm) state ...: comm may contain spaces; utime and stime are the 14th and 15th fields.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      cpuSeconds += (Number(fields[11]) + Number(fields[12])) / USER_HZ;
    } catch {
      // exited meanwhile
    }
  }
  return { rssBytes, cpuSeconds };
}

const commandName = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return undefined;
  }
};

export interface WranglerWorkerd {
  /** The workerd that runs the Worker (with miniflare's entry Worker and local D1, R2, Durable Objects). */
  worker: number[];
  /** The workerd of wrangler's proxy, which listens on the public port and forwards to the Worker (dev only). */
  proxy: number[];
}

/** The workerd processes of a `wrangler dev` serving on `host` (127.0.0.1:<port>), told apart by their command lines. */
export function wranglerWorkerd(pgid: number, host: string): WranglerWorkerd {
  const found: WranglerWorkerd = { worker: [], proxy: [] };
  for (const pid of processGroupMembers(pgid)) {
    if (commandName(pid) !== "workerd") continue;
    let commandLine = "";
    try {
      commandLine = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    } catch {
      continue; // exited meanwhile
    }
    (commandLine.includes(`--socket-addr=entry=${host}\0`) ? found.proxy : found.worker).push(pid);
  }
  // Without a proxy, the Worker's own workerd listens on the port.
  return found.worker.length === 0 ? { worker: found.proxy, proxy: [] } : found;
}

/** All the workerd processes of a `wrangler dev`. */
export function workerdUsage(pgid: number): Usage {
  return usageOf(processGroupMembers(pgid).filter((pid) => commandName(pid) === "workerd"));
}

/** Children of this process running `command` (found by name: the code that spawned them keeps the handle). */
export function childPids(command: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (parent === process.pid && commandName(Number(entry)) === command) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

/** Keeps the largest RSS seen, sampling every `intervalMs` until stopped. */
export class PeakRss {
  peakBytes = 0;
  private readonly usage: () => Usage;
  private readonly timer: NodeJS.Timeout;

  constructor(usage: () => Usage, intervalMs = 50) {
    this.usage = usage;
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  sample(): void {
    this.peakBytes = Math.max(this.peakBytes, this.usage().rssBytes);
  }

  stop(): number {
    clearInterval(this.timer);
    this.sample();
    return this.peakBytes;
  }
}
