// What the deploy scripts share: the environments in wrangler.toml, their vars, and the Worker's own config
// schema (src/config.ts, bundled with esbuild so Node can run it) to validate them.
import { build } from "esbuild";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parse } from "smol-toml";

export const PROJECT = fileURLToPath(new URL("..", import.meta.url));

interface WranglerConfig {
  vars?: Record<string, string>;
  env?: Record<string, { vars?: Record<string, string>; r2_buckets?: { bucket_name: string }[]; d1_databases?: { database_name: string; database_id: string }[]; durable_objects?: { bindings?: { name: string }[] } }>;
  r2_buckets?: { bucket_name: string }[];
  d1_databases?: { database_name: string; database_id: string }[];
  durable_objects?: { bindings?: { name: string }[] };
}

export function wranglerConfig(): WranglerConfig {
  return parse(readFileSync(`${PROJECT}/wrangler.toml`, "utf8")) as WranglerConfig;
}

/** "" is the top-level (default) environment. */
export function environments(): string[] {
  return ["", ...Object.keys(wranglerConfig().env ?? {})];
}

export interface Environment {
  name: string;
  vars: Record<string, string>;
  bucket: string | undefined;
  database: { name: string; id: string } | undefined;
  bindings: string[];
}

export function environment(name: string): Environment {
  const config = wranglerConfig();
  const section = name === "" ? config : config.env?.[name];
  if (!section) throw new Error(`no [env.${name}] in wrangler.toml (environments: ${environments().filter(Boolean).join(", ") || "none"})`);
  const database = section.d1_databases?.[0];
  return {
    name,
    // vars are not inherited by environments: each has its own.
    vars: section.vars ?? {},
    bucket: section.r2_buckets?.[0]?.bucket_name,
    database: database && { name: database.database_name, id: database.database_id },
    bindings: (section.durable_objects?.bindings ?? []).map((binding) => binding.name),
  };
}

/** Problems with an environment's configuration, each naming the setting; empty when it is valid. */
export async function configProblems(env: Environment, secrets: Record<string, string> = {}): Promise<string[]> {
  const bundle = await build({ entryPoints: [`${PROJECT}/src/config.ts`], bundle: true, format: "esm", platform: "neutral", write: false, logLevel: "silent" });
  const source = bundle.outputFiles[0]!.text;
  const { configOf, ConfigError } = (await import(`data:text/javascript;base64,${Buffer.from(source).toString("base64")}`)) as {
    configOf(env: Record<string, string>): unknown;
    ConfigError: new () => Error & { issues: string[] };
  };
  const problems: string[] = [];
  for (const binding of ["UPLOADS", "MIRROR_FETCHES"]) {
    if (!env.bindings.includes(binding)) problems.push(`${binding}: missing Durable Object binding`);
  }
  if (!env.bucket) problems.push("BLOBS: missing R2 bucket binding");
  if (!env.database) problems.push("DB: missing D1 database binding");
  try {
    // Secrets live in Cloudflare, not in wrangler.toml: checked with stand-ins unless given.
    configOf({ TOKEN_SIGNING_KEY: "set with wrangler secret put", ...env.vars, ...secrets });
  } catch (error) {
    if (error instanceof ConfigError) problems.push(...error.issues);
    else throw error;
  }
  return problems;
}
