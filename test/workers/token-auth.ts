import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { expect } from "vitest";
import worker from "../../src/index";
import { ORIGIN } from "./helpers";

// Calls to the Worker with token authentication switched on (same bindings as every other test), for the tests of
// credentials, the failed-login limit and request bodies.
export const tokenEnv = { ...env, AUTH_MODE: "token", PUBLIC_REPOSITORIES: "public/*" };
export const SERVICE = new URL(ORIGIN).host;
export const ADMIN = env.ADMIN_TOKEN!;

export interface CallInit extends RequestInit {
  auth?: string;
  /** CF-Connecting-IP: a random address unless given (here or in headers); null sends none. */
  client?: string | null;
  env?: object;
}

export function randomAddress(): string {
  const [a, b] = crypto.getRandomValues(new Uint8Array(2));
  return `198.18.${a}.${b}`;
}

export async function call(path: string, init: CallInit = {}): Promise<Response> {
  const { auth, client, env: callEnv, ...rest } = init;
  const headers = new Headers(init.headers);
  if (auth) headers.set("Authorization", auth);
  const address = client === undefined ? (headers.get("CF-Connecting-IP") ?? randomAddress()) : client;
  if (address === null) headers.delete("CF-Connecting-IP");
  else headers.set("CF-Connecting-IP", address);
  if (init.body instanceof Uint8Array) headers.set("Content-Length", String(init.body.byteLength));
  const ctx = createExecutionContext();
  const request = new Request(`${ORIGIN}${path}`, { ...rest, headers });
  const response = await worker.fetch(request, (callEnv ?? tokenEnv) as typeof env, ctx);
  await waitOnExecutionContext(ctx);
  return response;
}

export const basic = (password: string, user = "ci") => `Basic ${btoa(`${user}:${password}`)}`;
export const bearer = (token: string) => `Bearer ${token}`;

export async function createToken(name: string, scopes: { repository: string; actions: string[] }[], extra: object = {}) {
  const response = await call("/admin/tokens", {
    method: "POST",
    auth: bearer(ADMIN),
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name, scopes, ...extra }),
  });
  expect(response.status, await response.clone().text()).toBe(201);
  return (await response.json()) as { id: string; token: string; expiresAt: string | null };
}

export async function revokeToken(id: string): Promise<void> {
  expect((await call(`/admin/tokens/${id}`, { method: "DELETE", auth: bearer(ADMIN) })).status).toBe(204);
}

/** The claims of a JWT, unverified. */
export function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(atob(token.split(".")[1]!.replaceAll("-", "+").replaceAll("_", "/"))) as Record<string, unknown>;
}
