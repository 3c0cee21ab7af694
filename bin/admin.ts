#!/usr/bin/env node
// The registry's admin CLI: manages access tokens through the admin API of a running registry (local or deployed),
// and makes signing keys. Run with `npm run admin -- <command>`.
import { generateKeyPairSync } from "node:crypto";
import { parseArgs } from "node:util";
import { readDevVars } from "../scripts/dev-vars.ts";

const USAGE = `usage: npm run admin -- <command> [options]

  token create --name NAME --scope PATTERN:ACTIONS [--scope …] [--owner WHO] [--expires-in-days N] [--quiet]
                 e.g. --scope 'team/*:pull,push'   (actions: pull, push, delete); --quiet prints only the secret
  token list
  token revoke ID
  keygen         print a new TOKEN_SIGNING_KEY (EC P-256, PKCS#8 PEM)

  --url URL      the registry (default $REGISTRY_URL or http://127.0.0.1:8787)
  --admin-token  the ADMIN_TOKEN secret (default $REGISTRY_ADMIN_TOKEN, else the one in .dev.vars, which
                 npm run dev:token writes)
`;

function fail(message: string): never {
  console.error(message);
  process.exit(1);
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: "string", default: process.env.REGISTRY_URL ?? "http://127.0.0.1:8787" },
    "admin-token": { type: "string", default: process.env.REGISTRY_ADMIN_TOKEN ?? readDevVars().ADMIN_TOKEN },
    name: { type: "string" },
    owner: { type: "string" },
    scope: { type: "string", multiple: true, default: [] },
    "expires-in-days": { type: "string" },
    json: { type: "boolean", default: false },
    quiet: { type: "boolean", short: "q", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});

async function api(method: string, path: string, body?: unknown): Promise<unknown> {
  const adminToken = values["admin-token"] ?? fail("the admin token is needed: --admin-token or REGISTRY_ADMIN_TOKEN");
  const response = await fetch(new URL(path, values.url), {
    method,
    headers: { Authorization: `Bearer ${adminToken}`, ...(body !== undefined && { "Content-Type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  }).catch((error: Error) => fail(`cannot reach ${values.url}: ${error.cause ?? error.message}`));
  const text = await response.text();
  if (!response.ok) fail(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

function parseScope(text: string) {
  const [repository, actions = "pull"] = text.split(":");
  if (!repository) fail(`bad --scope ${text}: expected PATTERN:ACTIONS such as 'team/*:pull,push'`);
  return { repository, actions: actions.split(",").map((action) => action.trim()).filter(Boolean) };
}

interface TokenView {
  id: string;
  name: string;
  owner: string | null;
  scopes: { repository: string; actions: string[] }[];
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  token?: string;
}

const describe = (token: TokenView) =>
  [
    token.id,
    token.name,
    token.owner ?? "-",
    token.scopes.map((scope) => `${scope.repository}:${scope.actions.join(",")}`).join(" "),
    token.revokedAt ? `revoked ${token.revokedAt}` : token.expiresAt ? `expires ${token.expiresAt}` : "no expiry",
  ].join("\t");

async function main() {
  const [group, command, argument] = positionals;
  if (values.help || !group) return console.log(USAGE);
  if (group === "keygen") {
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    return process.stdout.write(privateKey.export({ type: "pkcs8", format: "pem" }).toString());
  }
  if (group !== "token") fail(USAGE);
  if (command === "create") {
    if (!values.name) fail("token create needs --name");
    if (values.scope.length === 0) fail("token create needs at least one --scope PATTERN:ACTIONS");
    const days = values["expires-in-days"];
    const created = (await api("POST", "/admin/tokens", {
      name: values.name,
      owner: values.owner,
      scopes: values.scope.map(parseScope),
      ...(days !== undefined && { expiresInDays: Number(days) }),
    })) as TokenView;
    if (values.json) return console.log(JSON.stringify(created));
    if (values.quiet) return console.log(created.token);
    console.log(describe(created));
    console.log(`\ntoken (shown once, store it now): ${created.token}`);
    return;
  }
  if (command === "list") {
    const { tokens } = (await api("GET", "/admin/tokens")) as { tokens: TokenView[] };
    if (values.json) return console.log(JSON.stringify(tokens));
    console.log(["id", "name", "owner", "scopes", "state"].join("\t"));
    for (const token of tokens) console.log(describe(token));
    return;
  }
  if (command === "revoke") {
    if (!argument) fail("token revoke needs the token id (see token list)");
    await api("DELETE", `/admin/tokens/${encodeURIComponent(argument)}`);
    console.log(`revoked ${argument}`);
    return;
  }
  fail(USAGE);
}

await main();
