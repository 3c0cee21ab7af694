// The per-team deploy scripts, as far as they go without a Cloudflare account: setup's plan and config checks.
import { describe, expect, it } from "vitest";
import { mustRun, runCommand } from "../support/command";

describe("npm run setup -- --env <team> --dry-run", () => {
  it("shows each wrangler command that creates the team's bucket, queues, database, schema and secrets", async () => {
    const { stdout } = await mustRun(process.execPath, ["scripts/setup.ts", "--env", "example-team", "--dry-run"]);
    const commands = stdout.toString().split("\n").filter((line) => line.startsWith("$ wrangler"));
    expect(commands).toEqual([
      "$ wrangler r2 bucket create registry-example-team-blobs",
      "$ wrangler queues create registry-example-team-events",
      "$ wrangler queues create registry-example-team-events-dlq",
      "$ wrangler d1 create registry-example-team",
      "$ wrangler d1 migrations apply DB --remote --env example-team",
      "$ wrangler secret put TOKEN_SIGNING_KEY --env example-team   (secret on stdin)",
      "$ wrangler secret put ADMIN_TOKEN --env example-team   (secret on stdin)",
    ]);
  });

  it("refuses an environment that is not in wrangler.toml", async () => {
    const result = await runCommand(process.execPath, ["scripts/setup.ts", "--env", "nobody", "--dry-run"]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain("no [env.nobody] in wrangler.toml");
  });
});

describe("npm run check-config", () => {
  it("validates every environment of wrangler.toml with the Worker's own schema", async () => {
    const { stdout } = await mustRun(process.execPath, ["scripts/check-config.ts", "--all"]);
    expect(stdout.toString()).toContain("env example-team: configuration is valid");
  });
});
