// npm run dev:token: the local registry in token mode, as a deployment runs, with a signing key and an admin token
// generated once into .dev.vars (kept there for the next start). Prints the admin token, then runs what `npm run dev`
// runs, with AUTH_MODE=token. Extra arguments go to wrangler dev (and --persist-to to the migrations too).
import { spawnSync } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { join } from "node:path";
import { appendDevVars, DEV_VARS, readDevVars } from "./dev-vars.ts";

const PROJECT = join(import.meta.dirname, "..");
const WRANGLER = join(PROJECT, "node_modules/.bin/wrangler");

const existing = readDevVars();
const missing: Record<string, string> = {};
if (!existing.TOKEN_SIGNING_KEY) {
  missing.TOKEN_SIGNING_KEY = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
}
if (!existing.ADMIN_TOKEN) missing.ADMIN_TOKEN = randomBytes(32).toString("hex");
if (Object.keys(missing).length > 0) appendDevVars(missing);
const adminToken = existing.ADMIN_TOKEN ?? missing.ADMIN_TOKEN!;

console.log(`
Token mode: anonymous clients may pull only PUBLIC_REPOSITORIES; everything else needs an access token.
  admin token (from ${DEV_VARS}): ${adminToken}
  make an access token:  npm run -s admin -- token create --name me --scope 'team/*:pull,push' --quiet
  (the admin CLI reads this admin token from .dev.vars when REGISTRY_ADMIN_TOKEN is not set)
`);

const extra = process.argv.slice(2);
// A state directory of its own (--persist-to DIR) is where the migrations go too.
const persistAt = extra.indexOf("--persist-to");
const persist = persistAt >= 0 && extra[persistAt + 1] ? ["--persist-to", extra[persistAt + 1]!] : [];
const run = (args: string[]) => spawnSync(WRANGLER, args, { cwd: PROJECT, stdio: "inherit" }).status ?? 1;
const migrated = run(["d1", "migrations", "apply", "DB", "--local", ...persist]);
if (migrated !== 0) process.exit(migrated);
process.exit(run(["dev", "--ip", "127.0.0.1", "--port", "8787", "--var", "AUTH_MODE:token", ...extra]));
