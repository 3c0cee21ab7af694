// Where the credentials for a registry come from: a flag, the environment, or the auth files docker and podman
// write on `login`: `auths` entries holding base64 "user:password", or the credential helper the file names
// (`credHelpers` per host, `credsStore` for all), asked as docker asks it: `docker-credential-<name> get`.
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";

export interface Credentials {
  username: string;
  password: string;
}

/** What this tool reads of an auth file; anything else in it is left alone. */
interface AuthFile {
  auths?: Record<string, { auth?: unknown } | null>;
  credHelpers?: Record<string, unknown>;
  credsStore?: unknown;
}

/** Parses "user:secret", or a bare secret (the registry ignores the user name of an access token). */
export function parseCredentials(text: string): Credentials {
  const colon = text.indexOf(":");
  if (colon < 0) return { username: "token", password: text };
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** The auth files to look in, first match wins: $REGISTRY_AUTH_FILE, podman's, then docker's. */
function authFiles(): string[] {
  const files = [];
  if (process.env.REGISTRY_AUTH_FILE) files.push(process.env.REGISTRY_AUTH_FILE);
  if (process.env.XDG_RUNTIME_DIR) files.push(join(process.env.XDG_RUNTIME_DIR, "containers", "auth.json"));
  files.push(join(process.env.DOCKER_CONFIG ?? join(homedir(), ".docker"), "config.json"));
  return files;
}

/**
 * The credentials for `host` (host[:port]) in one auth file, whatever form its `auths` key takes (`host`,
 * `https://host`, `host/v1/`).
 */
async function fromAuthFile(file: string, host: string): Promise<Credentials | null> {
  let config: AuthFile | null;
  try {
    config = JSON.parse(await readFile(file, "utf8"));
  } catch {
    return null;
  }
  if (!config || typeof config !== "object") return null;
  // docker's order: the host's own helper, else the store for all hosts, else the file's own entries.
  const helper = config.credHelpers?.[host] ?? config.credsStore;
  if (typeof helper === "string" && helper !== "") {
    const found = await fromHelper(helper, host);
    if (found || config.credHelpers?.[host]) return found;
  }
  const auths = config.auths;
  if (!auths || typeof auths !== "object") return null;
  for (const [key, entry] of Object.entries(auths)) {
    const keyHost = key.replace(/^[a-z]+:\/\//i, "").replace(/\/.*$/, "");
    if (keyHost !== host || !entry || typeof entry.auth !== "string" || entry.auth === "") continue;
    const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
    if (decoded.includes(":")) return parseCredentials(decoded);
  }
  return null;
}

/**
 * Asks a credential helper for the host's credentials (the server URL on stdin, `{Username, Secret}` on stdout).
 * `name` is the helper's suffix: "pass" runs docker-credential-pass. A helper that has none, or cannot run, gives
 * none; one that is missing is named on stderr.
 */
function fromHelper(name: string, host: string): Promise<Credentials | null> {
  return new Promise((resolve) => {
    const command = `docker-credential-${name}`;
    const child = spawn(command, ["get"], { stdio: ["pipe", "pipe", "ignore"], timeout: 30_000 });
    const chunks: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => chunks.push(chunk));
    child.on("error", (error) => {
      process.stderr.write(`credential helper ${command} could not run: ${error.message}\n`);
      resolve(null);
    });
    child.on("close", (code) => {
      if (code !== 0) return resolve(null);
      try {
        const { Username, Secret } = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        // "<token>" marks an identity token, which stands in for a password here too.
        resolve(typeof Secret === "string" && Secret !== "" ? { username: Username && Username !== "<token>" ? Username : "token", password: Secret } : null);
      } catch {
        resolve(null);
      }
    });
    child.stdin.end(host);
  });
}

/**
 * The credentials to use for `host` (host[:port]): the flag's, else REGISTRY_TOKEN (with REGISTRY_USERNAME), else
 * an auth file's. `env` says whether the REGISTRY_TOKEN variables apply to this host.
 */
export async function credentialsFor(host: string, { flag, env = true }: { flag?: string | undefined; env?: boolean } = {}): Promise<Credentials | null> {
  if (flag) return parseCredentials(flag);
  if (env && process.env.REGISTRY_TOKEN) {
    return { username: process.env.REGISTRY_USERNAME ?? "token", password: process.env.REGISTRY_TOKEN };
  }
  for (const file of authFiles()) {
    const found = await fromAuthFile(file, host);
    if (found) return found;
  }
  return null;
}
