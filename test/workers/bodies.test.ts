import { beforeAll, describe, expect, it } from "vitest";
import { SMALL_BODY_BYTES } from "../../src/routes/bodies";
import { ORIGIN } from "./helpers";
import { ADMIN, bearer, call, createToken, SERVICE, type CallInit } from "./token-auth";

// The endpoints that parse a form or JSON read at most SMALL_BODY_BYTES of it, whoever sends it, and answer 413
// for more without buffering the rest.
const CHUNK = 16 * 1024;
const HUNDRED_MB = 100 * 1024 * 1024;

/** A body of `size` bytes produced only as it is read; `pulled` says how much was. */
function lazyBody(size: number, fill = "a") {
  const chunk = new TextEncoder().encode(fill.repeat(CHUNK));
  const state = { pulled: 0 };
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        if (state.pulled >= size) return controller.close();
        state.pulled += chunk.byteLength;
        controller.enqueue(chunk);
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, state };
}

let pullToken: string;

beforeAll(async () => {
  pullToken = (await createToken("bodies-puller", [{ repository: "team/*", actions: ["pull"] }])).token;
});

interface Endpoint {
  path: string;
  init: CallInit;
  contentType: string;
}

const FORM = "application/x-www-form-urlencoded";
const ENDPOINTS: Record<string, Endpoint> = {
  "POST /token": { path: "/token", init: {}, contentType: FORM },
  "POST /login": { path: "/login", init: { headers: { Origin: ORIGIN } }, contentType: FORM },
  "POST /logout": { path: "/logout", init: { headers: { Origin: ORIGIN } }, contentType: FORM },
  "the web UI's tag delete": { path: "/r/team/app/-/tags/v1/delete", init: { headers: { Origin: ORIGIN } }, contentType: FORM },
  "POST /admin/tokens": { path: "/admin/tokens", init: { auth: bearer(ADMIN) }, contentType: "application/json" },
};

function send(endpoint: Endpoint, body: BodyInit, headers: Record<string, string> = {}) {
  return call(endpoint.path, {
    ...endpoint.init,
    method: "POST",
    headers: { ...(endpoint.init.headers as Record<string, string>), "Content-Type": endpoint.contentType, ...headers },
    body,
  });
}

describe("bodies of the form and JSON endpoints", () => {
  for (const [name, endpoint] of Object.entries(ENDPOINTS)) {
    it(`${name}: 413 for a body one byte over the limit, declared in Content-Length`, async () => {
      const response = await send(endpoint, new TextEncoder().encode("a".repeat(SMALL_BODY_BYTES + 1)));
      expect(response.status).toBe(413);
      if (endpoint.contentType === "application/json" || name === "POST /token") {
        expect(((await response.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("REQUEST_TOO_LARGE");
      }
    });

    it(`${name}: 413 for a 100 MB body without Content-Length, read no further than the limit`, async () => {
      const { stream, state } = lazyBody(HUNDRED_MB);
      const response = await send(endpoint, stream);
      expect(response.status).toBe(413);
      expect(state.pulled).toBeGreaterThan(SMALL_BODY_BYTES);
      expect(state.pulled).toBeLessThanOrEqual(SMALL_BODY_BYTES + 2 * CHUNK);
    });

    it(`${name}: 413 for a declared 100 MB body before reading any of it`, async () => {
      const { stream, state } = lazyBody(HUNDRED_MB);
      const response = await send(endpoint, stream, { "Content-Length": String(HUNDRED_MB) });
      expect(response.status).toBe(413);
      expect(state.pulled).toBeLessThanOrEqual(CHUNK);
    });
  }
});

describe("bodies within the limit", () => {
  const grant = { grant_type: "password", username: "ci", service: SERVICE, scope: "repository:team/app:pull" };

  it("are parsed as urlencoded forms, up to the limit", async () => {
    const fields = new URLSearchParams({ ...grant, password: pullToken });
    fields.set("padding", "p".repeat(SMALL_BODY_BYTES - fields.toString().length - "&padding=".length));
    const body = new TextEncoder().encode(fields.toString());
    expect(body.byteLength).toBe(SMALL_BODY_BYTES);
    const response = await call("/token", { method: "POST", headers: { "Content-Type": FORM }, body });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { token: string }).token).toBeTruthy();
  });

  it("are parsed as multipart forms", async () => {
    const form = new FormData();
    for (const [name, value] of Object.entries({ ...grant, password: pullToken })) form.set(name, value);
    const response = await call("/token", { method: "POST", body: form });
    expect(response.status).toBe(200);
  });

  it("are parsed as JSON on the admin API, and refused with 400 when they are not JSON", async () => {
    const json = { "Content-Type": "application/json" };
    const created = await call("/admin/tokens", { method: "POST", auth: bearer(ADMIN), headers: json, body: JSON.stringify({ name: "small", scopes: [{ repository: "team/*", actions: ["pull"] }] }) });
    expect(created.status).toBe(201);
    const broken = await call("/admin/tokens", { method: "POST", auth: bearer(ADMIN), headers: json, body: "{not json" });
    expect(broken.status).toBe(400);
    expect(((await broken.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("REQUEST_INVALID");
  });

  it("log in through the web UI with a form streamed without Content-Length", async () => {
    const encoded = new TextEncoder().encode(new URLSearchParams({ token: pullToken, next: "/r/team/app" }).toString());
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(encoded);
        controller.close();
      },
    });
    const response = await call("/login", { method: "POST", headers: { Origin: ORIGIN, "Content-Type": FORM }, body: stream });
    expect(response.status).toBe(303);
    expect(response.headers.get("Location")).toBe("/r/team/app");
  });
});
