// A security review of the audit log, webhooks and signature verdicts: each test is an attack that must fail.
import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import type { WebhookMessage } from "../../src/webhooks/events";
import { expectError, ORIGIN, pushImage, pushManifest } from "./helpers";
import { ADMIN, basic, bearer, call, claimsOf, createToken, randomAddress, SERVICE, tokenEnv } from "./token-auth";

interface Row {
  actor: string;
  client: string | null;
  action: string;
  repository: string | null;
  target: string | null;
  result: string;
  detail: string | null;
}

async function rowsOf(client: string): Promise<Row[]> {
  const { results } = await env.DB.prepare("SELECT actor, client, action, repository, target, result, detail FROM audit_events WHERE client = ? ORDER BY id").bind(client).all<Row>();
  return results;
}

let puller: { id: string; token: string };
let deleter: { id: string; token: string };

beforeAll(async () => {
  puller = await createToken("review-puller", [{ repository: "review/*", actions: ["pull"] }]);
  deleter = await createToken("review-deleter", [{ repository: "webhooks/*", actions: ["pull", "push", "delete"] }]);
});

describe("no secret in an audit row", () => {
  it("a failed login with the secret in the user name (curl -u \"$TOKEN:\") does not store the secret", async () => {
    const client = randomAddress();
    // The admin token as the Basic user name, with an empty password: the Stripe-style convention some tools use.
    await expectError(await call("/admin/usage", { auth: basic("", ADMIN), client }), 401, "UNAUTHORIZED");
    // An access token as the user name at the token endpoint, a wrong password.
    await expectError(await call(`/token?service=${SERVICE}&scope=repository:review/x:pull`, { auth: basic("wrong", puller.token), client }), 401, "UNAUTHORIZED");
    const rows = await rowsOf(client);
    expect(rows.length).toBe(2);
    const secretPart = puller.token.split("_").at(-1)!;
    for (const row of rows) {
      const text = JSON.stringify(row);
      expect(text).not.toContain(ADMIN);
      expect(text).not.toContain(ADMIN.slice(0, 16));
      expect(text).not.toContain(secretPart.slice(0, 16));
    }
  });
});

describe("audit flooding", () => {
  it("a pull-only access token fetching bearer tokens in a loop writes a bounded number of login rows", async () => {
    const client = randomAddress();
    for (let i = 0; i < 75; i++) {
      const response = await call(`/token?service=${SERVICE}&scope=repository:review/x:pull`, { auth: basic(puller.token), client });
      expect(response.status).toBe(200);
    }
    const logins = (await rowsOf(client)).filter((row) => row.action === "login");
    expect(logins.length).toBeGreaterThan(0);
    expect(logins.length).toBeLessThanOrEqual(60);
  });
});

describe("bearer token actor", () => {
  it("a token whose actor claim was altered is refused", async () => {
    const response = await call(`/token?service=${SERVICE}&scope=repository:review/x:pull`, { auth: basic(puller.token) });
    const { token } = (await response.json()) as { token: string };
    expect(claimsOf(token).actor).toBe(puller.id);
    const [header, , signature] = token.split(".");
    const payload = btoa(JSON.stringify({ ...claimsOf(token), actor: "admin" })).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
    await expectError(await call("/v2/review/x/tags/list", { auth: bearer(`${header}.${payload}.${signature}`) }), 401, "UNAUTHORIZED");
  });
});

describe("webhooks", () => {
  /** The token-auth Worker with an EVENTS queue that keeps what it is sent. */
  function capturing() {
    const sent: WebhookMessage[] = [];
    const events = { send: async () => undefined, sendBatch: async (messages: { body: WebhookMessage }[]) => void sent.push(...messages.map((m) => m.body)) };
    return { sent, env: { ...tokenEnv, EVENTS: events } };
  }

  it("a tag deleted in the web UI is a delete event, as one deleted through the API is", async () => {
    const repository = "webhooks/review-ui";
    await pushManifest(repository, "v1", await pushImage(repository));
    await pushManifest(repository, "v2", await pushImage(repository, [512]));
    const { sent, env: hooked } = capturing();
    const login = await call("/login", { method: "POST", headers: { Origin: ORIGIN }, body: new URLSearchParams({ token: deleter.token, next: "/" }), env: hooked });
    expect(login.status).toBe(303);
    const cookie = login.headers.get("Set-Cookie")!.split(";")[0]!;
    const deleted = await call(`/r/${repository}/-/tags/v1/delete`, { method: "POST", headers: { Cookie: cookie, Origin: ORIGIN }, body: new URLSearchParams(), env: hooked });
    expect(deleted.status).toBe(303);
    expect((await call(`/v2/${repository}/manifests/v2`, { method: "DELETE", auth: basic(deleter.token), env: hooked })).status).toBe(202);
    const deletes = sent.filter((message) => message.event.action === "delete").map((message) => message.event.target.tag);
    expect(deletes).toEqual(["v1", "v2"]);
    const ui = sent.find((message) => message.event.target.tag === "v1")!;
    expect(ui.event.actor.name).toBe("review-deleter");
    expect(JSON.stringify(ui)).not.toContain(deleter.token.split("_").at(-1)!);
  });
});
