import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import { configOf, ConfigError, namedSecrets, parseConfig, type Env } from "../../src/config";
import worker from "../../src/index";
import { ORIGIN } from "./helpers";

// Whatever a mirror's passwordSecret names is sent to its upstream: only MIRROR_… secrets may be named, and one
// that is named must be set, or the Worker does not start.
afterEach(() => vi.restoreAllMocks());

const ghcr = (passwordSecret: string) => JSON.stringify([{ prefix: "ghcr", upstream: "https://ghcr.io", username: "me", passwordSecret }]);

function issuesOf(settings: Record<string, unknown>): string[] {
  try {
    configOf({ ...env, ...settings } as Env);
    return [];
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return error.issues;
  }
}

async function pullThroughMirror(settings: Record<string, unknown>): Promise<Response> {
  const ctx = createExecutionContext();
  const response = await worker.fetch(new Request(`${ORIGIN}/v2/ghcr/org/app/manifests/1`), { ...env, ...settings } as typeof env, ctx);
  await waitOnExecutionContext(ctx);
  return response;
}

describe("a mirror's passwordSecret", () => {
  for (const name of ["TOKEN_SIGNING_KEY", "ADMIN_TOKEN", "R2_SECRET_ACCESS_KEY", "GHCR_TOKEN", "MIRROR_", "mirror_ghcr"]) {
    it(`may not name ${name}, and nothing is sent upstream`, async () => {
      const upstream = vi.spyOn(globalThis, "fetch");
      const issues = issuesOf({ MIRRORS: ghcr(name) });
      expect(issues).toHaveLength(1);
      expect(issues[0]).toMatch(/^MIRRORS\.0\.passwordSecret: .*starts with MIRROR_/);
      const response = await pullThroughMirror({ MIRRORS: ghcr(name), R2_SECRET_ACCESS_KEY: "r2-secret" });
      expect(response.status).toBe(500);
      expect(await response.text()).toContain("MIRRORS.0.passwordSecret");
      expect(upstream).not.toHaveBeenCalled();
    });
  }

  it("stops the Worker from starting, naming MIRRORS and the secret, when the secret it names is not set", async () => {
    const upstream = vi.spyOn(globalThis, "fetch");
    const issues = issuesOf({ MIRRORS: ghcr("MIRROR_GHCR_TOKEN") });
    expect(issues).toEqual([expect.stringMatching(/^MIRRORS\.0\.passwordSecret \(mirror "ghcr"\): names the secret MIRROR_GHCR_TOKEN, which is not set/)]);
    expect(issuesOf({ MIRRORS: ghcr("MIRROR_GHCR_TOKEN"), MIRROR_GHCR_TOKEN: "" })).toHaveLength(1);
    // A binding is no secret, even one whose name has the prefix.
    expect(issuesOf({ MIRRORS: ghcr("MIRROR_FETCHES") })).toEqual([expect.stringContaining("names the secret MIRROR_FETCHES, which is not set")]);
    const response = await pullThroughMirror({ MIRRORS: ghcr("MIRROR_GHCR_TOKEN") });
    expect(response.status).toBe(500);
    expect(await response.text()).toContain("MIRROR_GHCR_TOKEN");
    expect(upstream).not.toHaveBeenCalled();
  });

  it("is accepted when it names a MIRROR_ secret that is set", () => {
    expect(issuesOf({ MIRRORS: ghcr("MIRROR_GHCR_TOKEN"), MIRROR_GHCR_TOKEN: "ghp_upstream" })).toEqual([]);
  });

  it("is listed, unchecked, for check-config, which cannot read secrets", () => {
    // Without the webhooks vitest.config.ts sets for every test (their secrets are listed too).
    const config = parseConfig({ ...env, WEBHOOKS: "[]", MIRRORS: ghcr("MIRROR_GHCR_TOKEN") } as Env);
    expect(namedSecrets(config)).toEqual([{ setting: 'MIRRORS.0.passwordSecret (mirror "ghcr")', secret: "MIRROR_GHCR_TOKEN" }]);
    expect(() => parseConfig({ ...env, MIRRORS: ghcr("ADMIN_TOKEN") } as Env)).toThrow(/MIRRORS\.0\.passwordSecret/);
  });
});
