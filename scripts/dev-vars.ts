// .dev.vars: the local secrets `wrangler dev` reads (dotenv syntax), kept out of git. `npm run dev:token` fills in
// the ones token mode needs, and the admin CLI reads the local admin token from it.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const DEV_VARS = join(import.meta.dirname, "..", ".dev.vars");

/** The values of a .dev.vars file: KEY=value, single- or double-quoted (double quotes read \n as a newline). */
export function readDevVars(path = DEV_VARS): Record<string, string> {
  if (!existsSync(path)) return {};
  const vars: Record<string, string> = {};
  for (const line of readFileSync(path, "utf8").split("\n")) {
    const match = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (!match || line.trimStart().startsWith("#")) continue;
    const raw = match[2]!;
    if (raw.startsWith('"') && raw.endsWith('"') && raw.length >= 2) vars[match[1]!] = raw.slice(1, -1).replaceAll("\\n", "\n");
    else if (raw.startsWith("'") && raw.endsWith("'") && raw.length >= 2) vars[match[1]!] = raw.slice(1, -1);
    else vars[match[1]!] = raw;
  }
  return vars;
}

/** Appends the given values to .dev.vars (multi-line ones double-quoted with \n, as wrangler reads them). */
export function appendDevVars(values: Record<string, string>, path = DEV_VARS): void {
  const lines = Object.entries(values).map(([key, value]) => `${key}=${value.includes("\n") ? `"${value.replaceAll("\n", "\\n")}"` : `'${value}'`}`);
  const existing = existsSync(path) ? readFileSync(path, "utf8") : "";
  const separator = existing === "" || existing.endsWith("\n") ? "" : "\n";
  writeFileSync(path, `${existing}${separator}${lines.join("\n")}\n`, { mode: 0o600 });
}
