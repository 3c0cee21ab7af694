// npm run check-config -- --env <team>: validates an environment's bindings and vars with the Worker's own schema.
import { parseArgs } from "node:util";
import { configProblems, environment, environments, namedSecrets } from "./deployment.ts";

const { values } = parseArgs({ options: { env: { type: "string" }, all: { type: "boolean", default: false } } });
const names = values.all ? environments() : [values.env ?? ""];
let failed = false;
for (const name of names) {
  const label = name === "" ? "default environment" : `env ${name}`;
  const problems = await configProblems(environment(name));
  if (problems.length === 0) console.log(`${label}: configuration is valid`);
  for (const problem of problems) console.error(`${label}: ${problem}`);
  failed ||= problems.length > 0;
  // Secrets cannot be read from here: what the vars require is reported, not checked.
  const envFlag = name === "" ? "" : ` --env ${name}`;
  for (const { setting, secret } of await namedSecrets(environment(name))) {
    console.log(`${label}: ${setting} names the secret ${secret}; the Worker refuses to start until it is set (\`wrangler secret put ${secret}${envFlag}\`, or a line in .dev.vars for wrangler dev)`);
  }
}
console.log("secrets are not in wrangler.toml: set TOKEN_SIGNING_KEY and ADMIN_TOKEN with `wrangler secret put … --env <team>`");
process.exit(failed ? 1 : 0);
