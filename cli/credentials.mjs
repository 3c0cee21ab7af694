// Where the credentials for a registry come from: a flag, the environment, or the auth files docker and podman
// write on `login` (`auths` entries holding base64 "user:password"). Credential helpers (credsStore, credHelpers)
// are not consulted.
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";

/** @typedef {{ username: string, password: string }} Credentials */

/**
 * Parses "user:secret", or a bare secret (the registry ignores the user name of an access token).
 * @param {string} text
 * @returns {Credentials}
 */
export function parseCredentials(text) {
  const colon = text.indexOf(":");
  if (colon < 0) return { username: "token", password: text };
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** The auth files to look in, first match wins: $REGISTRY_AUTH_FILE, podman's, then docker's. */
function authFiles() {
  const files = [];
  if (process.env.REGISTRY_AUTH_FILE) files.push(process.env.REGISTRY_AUTH_FILE);
  if (process.env.XDG_RUNTIME_DIR) files.push(join(process.env.XDG_RUNTIME_DIR, "containers", "auth.json"));
  files.push(join(process.env.DOCKER_CONFIG ?? join(homedir(), ".docker"), "config.json"));
  return files;
}

/**
 * The `auths` entry for `host` in one auth file, whatever form its key takes (`host`, `https://host`, `host/v1/`).
 * @param {string} file
 * @param {string} host host[:port]
 * @returns {Promise<Credentials | null>}
 */
async function fromAuthFile(file, host) {
  let config;
  try {
    config = JSON.parse(await readFile(file, "utf8"));
  } catch {
    return null;
  }
  const auths = config && typeof config === "object" ? config.auths : undefined;
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
 * The credentials to use for `host`: the flag's, else REGISTRY_TOKEN (with REGISTRY_USERNAME), else an auth file's.
 * @param {string} host host[:port]
 * @param {{ flag?: string, env?: boolean }} options env: whether the REGISTRY_TOKEN variables apply to this host
 * @returns {Promise<Credentials | null>}
 */
export async function credentialsFor(host, { flag, env = true } = {}) {
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
