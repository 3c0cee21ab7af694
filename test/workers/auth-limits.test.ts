import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { WindowMarks } from "../../src/storage/window-marks";
import { ORIGIN } from "./helpers";
import { ADMIN, basic, bearer, call, createToken, randomAddress, revokeToken, SERVICE } from "./token-auth";

// The failed-login limit (AUTH_FAILURES in wrangler.toml: 10 failures a minute per client), on every way a secret
// can be presented.
const LIMIT = 10;

afterEach(() => vi.restoreAllMocks());

let valid: string;
let revoked: string;

beforeAll(async () => {
  valid = (await createToken("limits-puller", [{ repository: "team/*", actions: ["pull"] }])).token;
  const doomed = await createToken("limits-revoked", [{ repository: "team/*", actions: ["pull"] }]);
  await revokeToken(doomed.id);
  revoked = doomed.token;
});

/** A guess that looks like an access token (a random id and secret). */
function guess(): string {
  const id = [...crypto.getRandomValues(new Uint8Array(16))].map((b) => "abcdefghijklmnopqrstuvwxyz0123456789"[b % 36]).join("");
  const secret = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32)))).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
  return `ocr_${id}_${secret}`;
}

interface EntryPoint {
  /** The secret that succeeds here. */
  secret: () => string;
  attempt: (secret: string, client: string | null, user?: string) => Promise<Response>;
  success: number;
}

const ENTRY_POINTS: Record<string, EntryPoint> = {
  "GET /token with Basic": {
    secret: () => valid,
    attempt: (secret, client, user) => call(`/token?service=${SERVICE}&scope=repository:team/app:pull`, { auth: basic(secret, user), client }),
    success: 200,
  },
  "POST /token (password grant)": {
    secret: () => valid,
    attempt: (secret, client, user = "ci") =>
      call("/token", { method: "POST", body: new URLSearchParams({ grant_type: "password", username: user, password: secret, service: SERVICE }), client }),
    success: 200,
  },
  "GET /v2/ with Basic": {
    secret: () => valid,
    attempt: (secret, client, user) => call("/v2/", { auth: basic(secret, user), client }),
    success: 200,
  },
  "the admin API": {
    secret: () => ADMIN,
    attempt: (secret, client) => call("/admin/tokens", { auth: bearer(secret), client }),
    success: 200,
  },
  "the web UI login": {
    secret: () => valid,
    attempt: (secret, client) => call("/login", { method: "POST", headers: { Origin: ORIGIN }, body: new URLSearchParams({ token: secret, next: "/" }), client }),
    success: 303,
  },
};

async function drain(response: Response): Promise<Response> {
  await response.arrayBuffer();
  return response;
}

/** Sends `count` distinct wrong secrets from the client; returns their statuses. */
async function guesses(entry: EntryPoint, client: string | null, count: number, user?: string): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < count; i++) statuses.push((await drain(await entry.attempt(guess(), client, user))).status);
  return statuses;
}

function expectBlocked(response: Response) {
  expect(response.status).toBe(429);
  const retryAfter = Number(response.headers.get("Retry-After"));
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(60);
}

// The local rate limiter counts in fixed 60 s windows of the clock: a test that counts failures starts well inside
// one, so that no window ends halfway through its count.
// The wait can be up to 15.5 s, past vitest's default hook timeout of 10 s.
beforeEach(async () => {
  const intoWindow = Date.now() % 60_000;
  if (intoWindow > 45_000) await new Promise((done) => setTimeout(done, 60_500 - intoWindow));
}, 20_000);

describe("the failed-login limit", () => {
  for (const [name, entry] of Object.entries(ENTRY_POINTS)) {
    it(`${name}: past the limit, the correct secret gets 429 with Retry-After too, and other clients are not affected`, async () => {
      const client = randomAddress();
      // The correct secret's first use in the window counts once; then LIMIT - 1 distinct guesses reach the limit.
      expect((await drain(await entry.attempt(entry.secret(), client))).status).toBe(entry.success);
      expect(await guesses(entry, client, LIMIT - 1, undefined)).toEqual(Array(LIMIT - 1).fill(401));
      expectBlocked(await drain(await entry.attempt(guess(), client)));
      // The guess that would succeed is refused like any other, and says nothing about itself.
      const correct = await drain(await entry.attempt(entry.secret(), client));
      expectBlocked(correct);
      expect((await drain(await entry.attempt(entry.secret(), randomAddress()))).status).toBe(entry.success);
    });
  }

  it("limits guesses sent all at once as it limits guesses sent one after another", async () => {
    const entry = ENTRY_POINTS["GET /token with Basic"]!;
    const client = randomAddress();
    const statuses = await Promise.all(Array.from({ length: 3 * LIMIT }, async () => (await drain(await entry.attempt(guess(), client))).status));
    // Each guess is counted before it is checked: no more than LIMIT are ever checked.
    expect(statuses.filter((status) => status === 401).length).toBeLessThanOrEqual(LIMIT);
    expect(statuses.filter((status) => status === 429).length).toBeGreaterThanOrEqual(2 * LIMIT);
    expectBlocked(await drain(await entry.attempt(valid, client)));
  });

  it("blocks a client on every endpoint at once: a block earned on GET /token holds on /v2/, the admin API and the login", async () => {
    const client = randomAddress();
    await guesses(ENTRY_POINTS["GET /token with Basic"]!, client, LIMIT + 1);
    for (const entry of Object.values(ENTRY_POINTS)) expectBlocked(await drain(await entry.attempt(entry.secret(), client)));
  });

  it("counts a valid token once a window however often it is sent again", async () => {
    const entry = ENTRY_POINTS["GET /token with Basic"]!;
    const client = randomAddress();
    expect(await guesses(entry, client, LIMIT - 2)).toEqual(Array(LIMIT - 2).fill(401));
    for (let i = 0; i < 3 * LIMIT; i++) expect((await drain(await entry.attempt(valid, client))).status).toBe(200);
    // The valid token counted once: one guess more reaches the limit.
    expect(await guesses(entry, client, 1)).toEqual([401]);
    expectBlocked(await drain(await entry.attempt(guess(), client)));
  });

  it("counts a revoked or wrong secret once a window however often it is sent again, and distinct guesses each time", async () => {
    const entry = ENTRY_POINTS["GET /token with Basic"]!;
    const client = randomAddress();
    const wrong = guess();
    // As a docker push with a revoked token does: the same secret, many times.
    for (let i = 0; i < 3 * LIMIT; i++) {
      expect((await drain(await entry.attempt(revoked, client))).status).toBe(401);
      expect((await drain(await entry.attempt(wrong, client))).status).toBe(401);
    }
    expect((await drain(await entry.attempt(valid, client))).status).toBe(200);
    // Those were three secrets, each counted once: seven distinct guesses more reach the limit, the next is refused.
    expect(await guesses(entry, client, LIMIT - 3)).toEqual(Array(LIMIT - 3).fill(401));
    expectBlocked(await drain(await entry.attempt(guess(), client)));
  });

  it("lets the client in again once the window has passed", async () => {
    const entry = ENTRY_POINTS["GET /token with Basic"]!;
    const client = randomAddress();
    await guesses(entry, client, LIMIT + 1);
    expectBlocked(await drain(await entry.attempt(valid, client)));
    // Real time: the block and the rate limiter's own window both end within a minute of the block.
    await new Promise((done) => setTimeout(done, 61_000));
    expect((await drain(await entry.attempt(valid, client))).status).toBe(200);
  }, 90_000);

  it("counts an IPv6 client by its /64", async () => {
    const entry = ENTRY_POINTS["GET /v2/ with Basic"]!;
    const [a, b] = [...crypto.getRandomValues(new Uint16Array(2))];
    const prefix = `2001:db8:${a!.toString(16)}:${b!.toString(16)}`;
    await guesses(entry, `${prefix}::1`, LIMIT + 1);
    expectBlocked(await drain(await entry.attempt(valid, `${prefix}:ffff:1:2:3`)));
    expectBlocked(await drain(await entry.attempt(valid, `2001:0DB8:${a!.toString(16).padStart(4, "0")}:${b!.toString(16)}::abcd`)));
    const neighbour = `2001:db8:${a!.toString(16)}:${(b! ^ 1).toString(16)}::1`;
    expect((await drain(await entry.attempt(valid, neighbour))).status).toBe(200);
  });
});

describe("clients without CF-Connecting-IP", () => {
  it("are counted by the access token they try, not in one bucket shared with every such client", async () => {
    const entry = ENTRY_POINTS["GET /token with Basic"]!;
    const target = guess().slice(0, "ocr_".length + 16);
    const tries = Array.from({ length: LIMIT + 1 }, () => `${target}_${guess().slice(-43)}`);
    const statuses = [];
    // Changing the user name does not escape the count.
    for (const [i, secret] of tries.entries()) statuses.push((await drain(await entry.attempt(secret, null, `user-${i}`))).status);
    expect(statuses).toEqual([...Array(LIMIT).fill(401), 429]);
    expectBlocked(await drain(await entry.attempt(`${target}_${guess().slice(-43)}`, null)));
    // Other clients without an address, trying another token, are not affected.
    expect((await drain(await entry.attempt(guess(), null))).status).toBe(401);
    expect((await drain(await entry.attempt(valid, null))).status).toBe(200);
  });

  it("share one bucket when the secret is no access token: a new user name per guess gets no fresh budget", async () => {
    const entry = ENTRY_POINTS["GET /v2/ with Basic"]!;
    const statuses: number[] = [];
    for (let i = 0; i <= LIMIT; i++) statuses.push((await drain(await entry.attempt(`admin-guess-${crypto.randomUUID()}`, null, `user-${i}`))).status);
    expect(statuses).toContain(429);
    expectBlocked(await drain(await entry.attempt(ADMIN, null, `someone-else-${crypto.randomUUID()}`)));
  });
});

describe("what the limit looks up", () => {
  it("checks the block before a Basic password, but not before a bearer token, which is verified by its signature", async () => {
    const match = vi.spyOn(caches.default, "match");
    const client = randomAddress();
    const token = ((await (await call(`/token?service=${SERVICE}`, { client })).json()) as { token: string }).token;
    match.mockClear();
    expect((await call("/v2/", { auth: bearer(token), client })).status).toBe(200);
    expect(match).not.toHaveBeenCalled();
    expect((await call("/v2/", { auth: basic(valid), client })).status).toBe(200);
    expect(match).toHaveBeenCalled();
  });
});

describe("window marks", () => {
  it("are seen by another isolate of the location (the Cache API holds them), and end when their window does", async () => {
    const name = `test/${crypto.randomUUID()}`;
    const now = Date.now();
    await new WindowMarks().mark(name, now + 60_000, now);
    const elsewhere = new WindowMarks();
    expect(await elsewhere.until(name, now)).toBe(now + 60_000);
    expect(await new WindowMarks().until(name, now + 60_000)).toBeNull();
    expect(await new WindowMarks().until(`test/${crypto.randomUUID()}`, now)).toBeNull();
  });
});
