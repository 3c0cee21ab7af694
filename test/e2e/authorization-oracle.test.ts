// The authorization oracle (test/support/oracle-cases.ts) against a real `wrangler dev`: a smaller selection of the
// generated cases, sent as raw HTTP so that dot segments, backslashes and escapes reach the Worker exactly as written
// (fetch would resolve them first), within a time bound.
import { Agent, request as httpRequest } from "node:http";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  BODY_LIMIT,
  ENCODINGS,
  generateCases,
  misbehavingIdentities,
  report,
  runCases,
  seedFixture,
  unflaggedControls,
  warmCaches,
  type Area,
  type Fixture,
  type Selection,
  type Send,
} from "../support/oracle-cases";
import { startRegistry, tokenAuth, type Registry } from "./harness";

const { ADMIN_TOKEN, vars } = tokenAuth();
const CONCURRENCY = 6;
// Every area gets this long; what has not started by then is reported as not run (and fails the test).
const AREA_BUDGET_MS = 90_000;

// One spelling of each kind (escaped, mixed case, backslash escaped and raw, raw dot segments), the plain requests,
// and the callers that get past authentication somewhere (the workerd variant has every encoding and caller).
const ENCODING_NAMES = ["direct", "%2F and ..", "mixed-case %2F/%2f and %2E%2e/%2e%2E", "%5C (backslash) and ..", "raw backslash and ..", "raw / and %2e%2e"];
const IDENTITY_KEYS = ["anonymous", "reader-bearer", "writer-basic", "visitor", "writer-session"];
const SELECTION: Selection = {
  encodings: (encoding) => ENCODING_NAMES.includes(encoding.name),
  identities: (identity) => IDENTITY_KEYS.includes(identity.key),
  oneCarrier: true,
};

let registry: Registry;
let send: Send;
let fixture: Fixture;
const totals = { cases: 0, requests: 0, failures: 0 };

/** Raw HTTP/1.1: the request target goes out byte for byte. */
function rawSender(url: string): Send {
  const { hostname, port } = new URL(url);
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY + 2 });
  return (sent) =>
    new Promise((resolve, reject) => {
      const outgoing = httpRequest({ host: hostname, port: Number(port), method: sent.method, path: sent.path, headers: sent.headers, agent }, (incoming) => {
        const chunks: Buffer[] = [];
        let size = 0;
        incoming.on("data", (chunk: Buffer) => {
          if (size < BODY_LIMIT) chunks.push(chunk);
          size += chunk.byteLength;
          if (size >= BODY_LIMIT) incoming.destroy();
        });
        const done = () => {
          const headers = new Headers();
          for (const [name, value] of Object.entries(incoming.headers)) {
            for (const one of Array.isArray(value) ? value : [value ?? ""]) headers.append(name, one);
          }
          resolve({ status: incoming.statusCode ?? 0, headers, body: new Uint8Array(Buffer.concat(chunks)).subarray(0, BODY_LIMIT) });
        };
        incoming.on("end", done);
        incoming.on("close", done);
        incoming.on("error", reject);
      });
      outgoing.setTimeout(30_000, () => outgoing.destroy(new Error(`no answer to ${sent.method} ${sent.path} within 30 s`)));
      outgoing.on("error", reject);
      outgoing.end(sent.body);
    });
}

beforeAll(async () => {
  registry = await startRegistry({
    vars: { ...vars, PUBLIC_REPOSITORIES: "public/*", TAG_CACHE_SECONDS: "60", EDGE_CACHE_MAX_BYTES: String(32 * 1024 * 1024), TOKEN_TTL_SECONDS: "3600", LOG_REQUESTS: "false" },
  });
  send = rawSender(registry.url);
  fixture = await seedFixture(send, { adminToken: ADMIN_TOKEN, origin: registry.url });
  const warmed = await warmCaches(send, fixture);
  await new Promise((done) => setTimeout(done, 1100));
  console.log(`[oracle] admin read ${warmed.paths} private URLs; the edge cache answered ${warmed.hits} of the second reads`);
});

afterAll(async () => {
  console.log(`[oracle] wrangler dev: ${totals.cases} generated cases, ${totals.requests} requests, ${totals.failures} failing cases`);
  await registry?.stop();
});

beforeEach((context) => {
  context.onTestFailed(() => {
    console.error(`--- wrangler output (tail) ---\n${registry?.output().slice(-4000)}`);
  });
});

async function oracle(area: Area): Promise<void> {
  const cases = generateCases(area, fixture.identities, SELECTION);
  // A tag's cached copy lives TAG_CACHE_SECONDS (60): the admin reads everything again well before it ends.
  const outcome = await runCases(send, fixture, cases, { concurrency: CONCURRENCY, deadline: Date.now() + AREA_BUDGET_MS, rewarmEveryMs: 20_000 });
  totals.cases += outcome.cases;
  totals.requests += outcome.requests;
  totals.failures += outcome.failures.length;
  console.log(`[oracle] ${area}: ${outcome.cases} cases, ${outcome.failures.length} failing`);
  expect(outcome.failures.length + outcome.skipped, report(area, outcome)).toBe(0);
}

describe("the oracle itself", () => {
  it("selects encodings and identities that exist", () => {
    expect(ENCODINGS.filter((encoding) => ENCODING_NAMES.includes(encoding.name)).length).toBe(ENCODING_NAMES.length);
    expect(fixture.identities.filter((identity) => IDENTITY_KEYS.includes(identity.key)).length).toBe(IDENTITY_KEYS.length);
  });

  it("uses identities that are what their names say (pull-only, push, revoked, expired, forged, sessions)", async () => {
    expect(await misbehavingIdentities(send, fixture)).toEqual([]);
  });

  it("flags every read route when the caller may read secret/app (the admin): it can see a leak where there is one", async () => {
    expect(await unflaggedControls(send, fixture)).toEqual([]);
  });
});

describe("authorization oracle over raw HTTP: a caller that may not pull secret/app learns nothing of it, however the path is spelled", () => {
  it("blobs (end-2, end-10): GET, HEAD, ranged GET and DELETE never serve a private blob or tell it from an absent one", () => oracle("blobs"), 120_000);
  it("manifests (end-3, end-9): by tag and by digest, GET, HEAD, conditional GET and DELETE never serve a private manifest or tell it from an absent one", () => oracle("manifests"), 120_000);
  it("tags (end-8): tags/list answers a private repository as it answers an absent one", () => oracle("tags"), 120_000);
  it("referrers (end-12): referrers of a private manifest answer as those of an absent one", () => oracle("referrers"), 120_000);
  it("blob uploads (end-4 to end-6, end-11, end-13): mounts, monolithic pushes and another repository's upload session reveal nothing", () => oracle("blob uploads"), 120_000);
  it("catalog: _catalog never lists the private repository", () => oracle("catalog"), 120_000);
  it("search API: /api/search and /api/repositories/<name>/tags never show the private repository", () => oracle("search API"), 120_000);
  it("web UI: home, repository, tag, digest and delete pages answer a private repository as an absent one", () => oracle("web UI"), 120_000);
});
