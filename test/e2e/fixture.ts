// The set-up most end-to-end test files share: one registry and one scratch directory for the whole file.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach } from "vitest";
import { mustRun } from "../support/command";
import { startRegistry, type Registry, type StartOptions } from "./harness";

/**
 * Starts a registry and makes a scratch directory before the file's tests (handed to `ready`), stops and removes
 * both after them, and prints the tail of wrangler's output when a test fails.
 */
export function registryForFile(prefix: string, options: StartOptions, ready: (registry: Registry, work: string) => void): void {
  let registry: Registry | undefined;
  let work: string | undefined;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), prefix));
    registry = await startRegistry(options);
    ready(registry, work);
  });

  afterAll(async () => {
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  beforeEach((context) => {
    context.onTestFailed(() => {
      console.error(`--- wrangler output (tail) ---\n${registry?.output().slice(-8000)}`);
    });
  });
}

/** An access token made with the admin CLI against a running registry (`ocr_…`), for the given scopes. */
export async function createAccessToken(registry: Registry, adminToken: string, name: string, scopes: string[]): Promise<string> {
  const created = await mustRun(process.execPath, [
    "bin/admin.ts", "token", "create", "--name", name, ...scopes.flatMap((scope) => ["--scope", scope]), "--json",
    "--url", registry.url, "--admin-token", adminToken,
  ]);
  return (JSON.parse(created.stdout.toString()) as { token: string }).token;
}
