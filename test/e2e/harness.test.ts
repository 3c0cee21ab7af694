// The harness itself: wrangler comes up on its own port with the vars asked for, and stop() leaves nothing behind.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { MIN_PART_BYTES, processGroupMembers, startRegistry, type Registry } from "./harness";

/** Command lines of running processes that mention `text` (what `ps` would show). */
function processesMentioning(text: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) continue;
      const line = readFileSync(`/proc/${entry}/cmdline`, "utf8").replaceAll("\0", " ");
      if (line.includes(text)) found.push(`${entry}: ${line}`);
    } catch {
      // exited meanwhile
    }
  }
  return found;
}

describe.skipIf(!existsSync("/proc/self/stat"))("startRegistry", () => {
  let registry: Registry | undefined;

  afterAll(async () => {
    await registry?.stop();
  });

  it("serves /v2/ from wrangler dev and stops without leaving processes or state behind", async () => {
    registry = await startRegistry({ vars: { UPLOAD_PART_BYTES: String(MIN_PART_BYTES) } });
    const { url, host, pgid, stateDir } = registry;
    expect(url).toBe(`http://${host}`);
    expect(host).toMatch(/^127\.0\.0\.1:\d+$/);

    const base = await fetch(`${url}/v2/`);
    expect(base.status).toBe(200);
    expect(base.headers.get("docker-distribution-api-version")).toBe("registry/2.0");
    expect(await base.json()).toEqual({});

    // The --var override reached the Worker: the upload session advertises it as the smallest chunk.
    const upload = await fetch(`${url}/v2/harness/check/blobs/uploads/`, { method: "POST" });
    expect(upload.status).toBe(202);
    expect(upload.headers.get("oci-chunk-min-length")).toBe(String(MIN_PART_BYTES));

    // wrangler, its node child and workerd all run in the group, all with this registry's state directory.
    const running = processesMentioning(stateDir);
    expect(running.length).toBeGreaterThanOrEqual(2);
    const members = processGroupMembers(pgid);
    expect(members.length).toBeGreaterThanOrEqual(3);
    const commands = members.map((pid) => readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " "));
    expect(commands.some((line) => line.includes("workerd") && line.includes(`--socket-addr=entry=${host}`))).toBe(true);
    expect(existsSync(stateDir)).toBe(true);
    expect(registry.output()).toContain(`Ready on ${url}`);

    await registry.stop();
    expect(processGroupMembers(pgid)).toEqual([]);
    expect(processesMentioning(stateDir)).toEqual([]);
    expect(processesMentioning(`entry=${host}`)).toEqual([]);
    expect(existsSync(stateDir)).toBe(false);
    await expect(fetch(`${url}/v2/`)).rejects.toThrow();
    // A second stop is harmless.
    await registry.stop();
  });

  it("fails with wrangler's output when the Worker never serves /v2/, and cleans up", async () => {
    // An invalid setting: the Worker answers every request with 500 (its config does not parse).
    const failure = await startRegistry({ vars: { UPLOAD_PART_BYTES: "1" }, startTimeoutMs: 10_000 }).then(
      async (registry) => {
        await registry.stop();
        throw new Error("started although every request fails");
      },
      (error: Error) => error,
    );
    expect(failure.message).toMatch(/did not return 200 or 401 within 10 s \(last: 500\)/);
    expect(failure.message).toContain("--- wrangler output ---");
    // The Worker logged why.
    expect(failure.message).toMatch(/invalid configuration: UPLOAD_PART_BYTES/);
    const state = /--persist-to (\S+)/.exec(failure.message)?.[1];
    expect(state).toBeDefined();
    expect(processesMentioning(state!)).toEqual([]);
    expect(existsSync(state!)).toBe(false);
  });
});
