import { readFileSync } from "node:fs";
import { parse } from "smol-toml";
import { describe, expect, it } from "vitest";
import { trustingPolicies } from "../../src/auth/trust-policies";
import { parseConfig, type Env } from "../../src/config";

// The README's OIDC_TRUST_POLICIES example is a setting a user copies: it must pass the Worker's startup checks and
// trust the jobs it says it trusts.
const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");

function example(): string {
  const blocks = [...readme.matchAll(/```toml\n([\s\S]*?)```/g)].map((match) => match[1]!);
  const block = blocks.find((text) => text.startsWith("OIDC_TRUST_POLICIES"));
  return (parse(block!) as { OIDC_TRUST_POLICIES: string }).OIDC_TRUST_POLICIES;
}

describe("the README's OIDC trust policies", () => {
  it("are a valid setting that trusts the jobs of its CI snippets", () => {
    const policies = parseConfig({ AUTH_MODE: "open", OIDC_TRUST_POLICIES: example() } as unknown as Env).OIDC_TRUST_POLICIES;
    expect(policies).toHaveLength(3);
    const github = { iss: "https://token.actions.githubusercontent.com", aud: "registry.example.com", repository: "my-org/app", repository_owner: "my-org", ref: "refs/heads/main" };
    expect(trustingPolicies(policies, "RS256", github).map((policy) => policy.name)).toEqual(["app releases"]);
    expect(trustingPolicies(policies, "RS256", { ...github, ref: "refs/heads/feature" })).toEqual([]);
    const gitlab = { iss: "https://gitlab.com", aud: "registry.example.com", project_path: "my-group/api", ref_type: "branch", ref_protected: "true" };
    expect(trustingPolicies(policies, "RS256", gitlab).map((policy) => policy.name)).toEqual(["gitlab api"]);
    // The snippets ask for the audience the policies name.
    expect(readme).toContain('"$ACTIONS_ID_TOKEN_REQUEST_URL&audience=registry.example.com"');
    expect(readme).toMatch(/id_tokens:\n\s+REGISTRY_ID_TOKEN:\n\s+aud: registry\.example\.com/);
  });
});
