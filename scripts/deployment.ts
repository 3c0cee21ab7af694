// What the deploy scripts share: the environments in wrangler.toml, their vars, and the Worker's own config
// schema (src/config.ts, bundled with esbuild so Node can run it) to validate them.
import { build } from "esbuild";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parse } from "smol-toml";

export const PROJECT = fileURLToPath(new URL("..", import.meta.url));

interface Queues {
  producers?: { binding: string; queue: string }[];
  consumers?: { queue: string; dead_letter_queue?: string }[];
}

interface Section {
  vars?: Record<string, string>;
  r2_buckets?: { bucket_name: string }[];
  d1_databases?: { database_name: string; database_id: string }[];
  durable_objects?: { bindings?: { name: string }[] };
  queues?: Queues;
}

interface WranglerConfig extends Section {
  env?: Record<string, Section>;
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
  /** The webhook events queue (the EVENTS producer) and its dead-letter queue, as the consumers name them. */
  queues: { events: string | undefined; deadLetter: string | undefined; consumed: string[] };
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
    queues: queuesOf(section.queues),
  };
}

function queuesOf(queues: Queues | undefined): Environment["queues"] {
  const events = queues?.producers?.find((producer) => producer.binding === "EVENTS")?.queue;
  const consumers = queues?.consumers ?? [];
  return {
    events,
    deadLetter: consumers.find((consumer) => consumer.queue === events)?.dead_letter_queue,
    consumed: consumers.map((consumer) => consumer.queue),
  };
}

interface ConfigModule {
  parseConfig(env: Record<string, string>): unknown;
  namedSecrets(config: unknown): { setting: string; secret: string }[];
  ConfigError: new () => Error & { issues: string[] };
}

let configModule: Promise<ConfigModule> | undefined;

function loadConfigModule(): Promise<ConfigModule> {
  configModule ??= (async () => {
    const bundle = await build({ entryPoints: [`${PROJECT}/src/config.ts`], bundle: true, format: "esm", platform: "neutral", write: false, logLevel: "silent" });
    const source = bundle.outputFiles[0]!.text;
    return (await import(`data:text/javascript;base64,${Buffer.from(source).toString("base64")}`)) as ConfigModule;
  })();
  return configModule;
}

// Secrets live in Cloudflare, not in wrangler.toml, and wrangler cannot list their values: checked with stand-ins.
const withStandIns = (env: Environment) => ({ TOKEN_SIGNING_KEY: "set with wrangler secret put", ...env.vars });

/** Problems with an environment's configuration, each naming the setting; empty when it is valid. */
export async function configProblems(env: Environment): Promise<string[]> {
  const { parseConfig, ConfigError } = await loadConfigModule();
  const problems: string[] = [];
  for (const binding of ["UPLOADS", "MIRROR_FETCHES"]) {
    if (!env.bindings.includes(binding)) problems.push(`${binding}: missing Durable Object binding`);
  }
  if (!env.bucket) problems.push("BLOBS: missing R2 bucket binding");
  if (!env.database) problems.push("DB: missing D1 database binding");
  // Webhooks (src/webhooks/deliver.ts): the Worker consumes its events queue and that queue's "-dlq" dead-letter queue.
  const { events, deadLetter, consumed } = env.queues;
  if (!events) problems.push("EVENTS: missing queue producer binding (webhook events)");
  else if (!consumed.includes(events)) problems.push(`EVENTS: the Worker does not consume its queue ${events} ([[queues.consumers]])`);
  else if (deadLetter !== `${events}-dlq`) problems.push(`EVENTS: the consumer of ${events} needs dead_letter_queue = "${events}-dlq"`);
  else if (!consumed.includes(deadLetter)) problems.push(`EVENTS: the Worker does not consume the dead-letter queue ${deadLetter}`);
  try {
    parseConfig(withStandIns(env));
  } catch (error) {
    if (error instanceof ConfigError) problems.push(...error.issues);
    else throw error;
  }
  return problems;
}

/**
 * The secrets an environment's vars name (a mirror's passwordSecret): the Worker refuses to start without them,
 * but whether they are set can only be seen in Cloudflare. Empty when the vars do not parse (configProblems says why).
 */
export async function namedSecrets(env: Environment): Promise<{ setting: string; secret: string }[]> {
  const { parseConfig, namedSecrets } = await loadConfigModule();
  try {
    return namedSecrets(parseConfig(withStandIns(env)));
  } catch {
    return [];
  }
}
