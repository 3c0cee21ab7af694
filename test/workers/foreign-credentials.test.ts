import { beforeAll, describe, expect, it } from "vitest";
import { ADMIN, basic, call, claimsOf, createToken, SERVICE } from "./token-auth";

// The docker daemon sends its Docker Hub login to a registry-mirrors mirror. Public pulls must not depend on it.
const dockerHubLogin = basic("dckr_pat_not-ours-at-all", "someone");
let valid: string;

beforeAll(async () => {
  valid = (await createToken("mirror-reader", [{ repository: "team/*", actions: ["pull"] }])).token;
  expect(ADMIN).toBeDefined();
});

function tokenRequest(auth: string, client: string, ...scopes: string[]) {
  const query = new URLSearchParams({ service: SERVICE });
  for (const scope of scopes) query.append("scope", scope);
  return call(`/token?${query}`, { auth, client });
}

describe("credentials this registry does not know, sent with a pull anyone may make", () => {
  it("get the anonymous grant for public pulls, are never counted as failed logins, and are refused for anything more", async () => {
    const client = "203.0.113.77";
    for (let i = 0; i < 25; i++) {
      const response = await tokenRequest(dockerHubLogin, client, "repository:public/base:pull");
      expect(response.status).toBe(200);
      const claims = claimsOf(((await response.json()) as { token: string }).token);
      expect(claims.sub).toBe("anonymous");
      expect(claims.access).toEqual([{ type: "repository", name: "public/base", actions: ["pull"] }]);
    }
    // Nothing was counted: the client's own valid token still works at once.
    expect((await tokenRequest(basic(valid), client, "repository:team/app:pull")).status).toBe(200);
    // Anything beyond a public pull checks the credentials as always.
    expect((await tokenRequest(dockerHubLogin, client, "repository:public/base:pull", "repository:team/app:pull")).status).toBe(401);
    expect((await tokenRequest(dockerHubLogin, client, "repository:public/base:pull,push")).status).toBe(401);
    // docker login asks for no scope: checked.
    expect((await tokenRequest(dockerHubLogin, client)).status).toBe(401);
  });

  it("are answered the same whether they are right or wrong, so the answer tells a guesser nothing", async () => {
    const right = await tokenRequest(basic(valid), "203.0.113.78", "repository:public/base:pull");
    const wrong = await tokenRequest(basic(`${valid.slice(0, -1)}x`), "203.0.113.78", "repository:public/base:pull");
    const [a, b] = [claimsOf(((await right.json()) as { token: string }).token), claimsOf(((await wrong.json()) as { token: string }).token)];
    expect([right.status, a.sub, a.access]).toEqual([wrong.status, b.sub, b.access]);
  });
});
