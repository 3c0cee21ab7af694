import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseConfig, type Env } from "../../src/config";

// The README's MIRRORS examples are settings a user copies: each must pass the checks the Worker makes at startup.
const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");

/** Every `MIRRORS = '…'` or `MIRRORS = '''…'''` assignment in the README's toml blocks, as the string TOML gives. */
function mirrorExamples(): string[] {
  const blocks = [...readme.matchAll(/```toml\n([\s\S]*?)```/g)].map((match) => match[1]!);
  return blocks.flatMap((block) => [...block.matchAll(/^MIRRORS = (?:'''([\s\S]*?)'''|'([^'\n]*)')/gm)].map((match) => match[1] ?? match[2]!));
}

describe("the README's mirror examples", () => {
  it("are valid settings", () => {
    const examples = mirrorExamples();
    expect(examples.length).toBeGreaterThanOrEqual(2);
    for (const example of examples) {
      const config = parseConfig({ AUTH_MODE: "open", MIRRORS: example } as unknown as Env);
      expect(config.MIRRORS.length).toBeGreaterThan(0);
    }
  });

  it("give a tag pattern that matches what it says", () => {
    const full = mirrorExamples().map((example) => parseConfig({ AUTH_MODE: "open", MIRRORS: example } as unknown as Env)).find((config) => config.MIRRORS[0]?.prewarm);
    const pattern = new RegExp(full!.MIRRORS[0]!.prewarm!.images.find((image) => image.tagPattern)!.tagPattern!);
    expect(["22.11.0-alpine", "22.3.1-alpine"].every((tag) => pattern.test(tag))).toBe(true);
    expect(["22-alpine", "22.11.0", "220.1.1-alpine"].some((tag) => pattern.test(tag))).toBe(false);
  });
});
