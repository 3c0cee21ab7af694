import { readFileSync } from "node:fs";
import { parse } from "smol-toml";
import { describe, expect, it } from "vitest";
import { parseConfig, type Env } from "../../src/config";
import { policiesFor } from "../../src/policies/config";

// The README's PULL_POLICIES example is a setting a user copies: it must pass the Worker's startup checks and apply
// to the repositories it says it does.
const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");

function example(): string {
  const blocks = [...readme.matchAll(/```toml\n([\s\S]*?)```/g)].map((match) => match[1]!);
  const block = blocks.find((text) => text.startsWith("PULL_POLICIES"));
  return (parse(block!) as { PULL_POLICIES: string }).PULL_POLICIES;
}

describe("the README's pull policies", () => {
  it("is a valid setting whose policies match the repositories it names", () => {
    const policies = parseConfig({ AUTH_MODE: "open", PULL_POLICIES: example() } as unknown as Env).PULL_POLICIES;
    expect(policiesFor(policies, "prod/app").map((policy) => policy.name)).toEqual(["signed-prod", "no-critical"]);
    expect(policiesFor(policies, "staging/app").map((policy) => [policy.name, policy.mode])).toEqual([
      ["no-critical", "enforce"],
      ["scanned", "audit"],
    ]);
    expect(policiesFor(policies, "dev/app")).toEqual([]);
  });

  it("is what wrangler.toml defaults to when empty", () => {
    const vars = (parse(readFileSync(new URL("../../wrangler.toml", import.meta.url), "utf8")) as { vars: Record<string, string> }).vars;
    expect(vars.PULL_POLICIES).toBe("[]");
  });
});
