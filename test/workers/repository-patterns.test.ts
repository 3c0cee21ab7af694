import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { patternMatches } from "../../src/auth/scopes";
import { rangeOf, repositoriesMatching } from "../../src/storage/repository-patterns";

const NAMES = ["team", "team-b/app", "team/a", "team/a/prod", "team/a-prod", "team/app", "team/b/prod", "teamx/prod", "zoo/prod", "a/team/x"];

describe("repository patterns as index ranges", () => {
  it("gives each pattern the range of names it can match", () => {
    for (const pattern of ["team/*", "team/a", "*", "*/prod", "team/*/prod"]) {
      const { from, to } = rangeOf(pattern);
      for (const name of NAMES) if (patternMatches(pattern, name)) expect(name >= from && name < to, `${pattern} ${name}`).toBe(true);
    }
    expect(rangeOf("team/a")).toEqual({ from: "team/a", to: "team/a\u0001" });
  });

  it("pages through the names matching any of the patterns, in order, as the patterns match them", async () => {
    await env.DB.batch(NAMES.map((name) => env.DB.prepare("INSERT OR IGNORE INTO repositories (name, created_at) VALUES (?, 0)").bind(name)));
    const cases = [["team/*"], ["team/a"], ["team/*/prod", "zoo/*"], ["*/prod"], ["team/*", "team/a", "team"], ["nothing/*"]];
    for (const patterns of cases) {
      const expected = NAMES.filter((name) => patterns.some((pattern) => patternMatches(pattern, name))).sort();
      for (const limit of [1, 2, 100]) {
        const seen: string[] = [];
        for (let after = ""; ; ) {
          const page = await repositoriesMatching(env.DB, patterns, after, limit);
          seen.push(...page);
          if (page.length < limit) break;
          after = page.at(-1)!;
        }
        expect(seen, `${patterns} n=${limit}`).toEqual(expected);
      }
    }
  });
});
