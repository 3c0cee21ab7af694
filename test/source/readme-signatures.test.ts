import { readFileSync } from "node:fs";
import { parse } from "smol-toml";
import { describe, expect, it } from "vitest";
import { parseConfig, type Env } from "../../src/config";
import { trustFor } from "../../src/signatures/trust";

// The README's SIGNATURE_TRUST example is a setting a user copies: it must pass the Worker's startup checks (its PEM
// key parses) and cover the repositories it says it covers.
const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");

function example(): string {
  const blocks = [...readme.matchAll(/```toml\n([\s\S]*?)```/g)].map((match) => match[1]!);
  const block = blocks.find((text) => text.startsWith("SIGNATURE_TRUST"));
  return (parse(block!) as { SIGNATURE_TRUST: string }).SIGNATURE_TRUST;
}

describe("the README's signature trust", () => {
  it("is a valid setting whose key covers team/* and nothing else", async () => {
    const trust = parseConfig({ AUTH_MODE: "open", SIGNATURE_TRUST: example() } as unknown as Env).SIGNATURE_TRUST;
    expect(trust[0]?.cosignKeys.map((key) => [key.name, key.key.kind])).toEqual([["release", "ec"]]);
    const team = await trustFor(trust, "team/app");
    const other = await trustFor(trust, "other/app");
    expect(team.cosignKeys.map((key) => key.name)).toEqual(["release"]);
    expect(other.cosignKeys).toEqual([]);
    expect(team.fingerprint).not.toBe(other.fingerprint);
  });

  it("is what wrangler.toml defaults to when empty", () => {
    const vars = (parse(readFileSync(new URL("../../wrangler.toml", import.meta.url), "utf8")) as { vars: Record<string, string> }).vars;
    expect(vars.SIGNATURE_TRUST).toBe("[]");
  });
});
