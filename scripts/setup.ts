// npm run setup -- --env <team> [--dry-run]: creates a team's R2 bucket, queues (webhook events and their dead
// letters) and D1 database, writes the database id into wrangler.toml, applies the migrations, and sets the secrets
// (a new signing key, a new admin token).
// Every wrangler command is printed before it runs; --dry-run only prints them.
import { execFileSync } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { configProblems, environment, PROJECT } from "./deployment.ts";

const { values } = parseArgs({ options: { env: { type: "string" }, "dry-run": { type: "boolean", default: false } } });
if (!values.env) {
  console.error("usage: npm run setup -- --env <team> [--dry-run]   (the team's [env.<team>] block must be in wrangler.toml)");
  process.exit(1);
}
const name = values.env;
const dryRun = values["dry-run"];
const env = environment(name);
const WRANGLER = join(PROJECT, "node_modules/.bin/wrangler");

function wrangler(args: string[], input?: string): string {
  console.log(`$ wrangler ${args.join(" ")}${input !== undefined ? "   (secret on stdin)" : ""}`);
  if (dryRun) return "";
  return execFileSync(WRANGLER, args, { cwd: PROJECT, input, encoding: "utf8", stdio: ["pipe", "pipe", "inherit"] });
}

const problems = await configProblems(env);
if (problems.length > 0) {
  console.error(`env ${name} is not valid yet:\n  ${problems.join("\n  ")}`);
  process.exit(1);
}

wrangler(["r2", "bucket", "create", env.bucket!]);
wrangler(["queues", "create", env.queues.events!]);
wrangler(["queues", "create", env.queues.deadLetter!]);

if (!/^[0-9a-f-]{36}$/.test(env.database!.id)) {
  const created = wrangler(["d1", "create", env.database!.name]);
  const id = /"?database_id"?\s*[=:]\s*"([0-9a-f-]{36})"/.exec(created)?.[1];
  if (dryRun) {
    console.log(`  (would write the new database_id over ${env.database!.id} in wrangler.toml)`);
  } else if (!id) {
    console.error(`could not find the database id in wrangler's output; put it into wrangler.toml by hand:\n${created}`);
    process.exit(1);
  } else {
    const path = join(PROJECT, "wrangler.toml");
    writeFileSync(path, readFileSync(path, "utf8").replace(`database_id = "${env.database!.id}"`, `database_id = "${id}"`));
    console.log(`  wrote database_id = "${id}" into wrangler.toml [env.${name}]`);
  }
}

wrangler(["d1", "migrations", "apply", "DB", "--remote", "--env", name]);

const signingKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
wrangler(["secret", "put", "TOKEN_SIGNING_KEY", "--env", name], signingKey);
const adminToken = randomBytes(32).toString("hex");
wrangler(["secret", "put", "ADMIN_TOKEN", "--env", name], adminToken);

console.log(`
Done${dryRun ? " (dry run: nothing was created)" : ""}. Keep the admin token somewhere safe; it is shown only now:
  ADMIN_TOKEN=${dryRun ? "<generated when not a dry run>" : adminToken}
Next:
  npm run deploy -- --env ${name}
  REGISTRY_URL=https://<your registry> REGISTRY_ADMIN_TOKEN=<admin token> npm run admin -- token create --name ci --scope '${name}/*:pull,push'
  echo <access token> | docker login <your registry> -u ci --password-stdin
`);
