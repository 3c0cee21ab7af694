// The authorization oracle (test/support/oracle-cases.ts) in workerd: a few thousand generated requests, each sent
// at the private image and at its absent counterpart, from callers that may not read the private repository, after
// the admin filled the edge cache and the isolate's memory with the private content.
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import worker from "../../src/index";
import {
  generateCases,
  misbehavingIdentities,
  readBounded,
  report,
  runCases,
  seedFixture,
  warmCaches,
  type Area,
  type Fixture,
  type Send,
  unflaggedControls,
} from "../support/oracle-cases";
import { ORIGIN } from "./helpers";

// Token auth with public/* open to anyone, and every cache on: tags too, for their longest lifetime.
const oracleEnv = {
  ...env,
  AUTH_MODE: "token",
  PUBLIC_REPOSITORIES: "public/*",
  TAG_CACHE_SECONDS: "300",
  EDGE_CACHE_MAX_BYTES: String(32 * 1024 * 1024),
  TOKEN_TTL_SECONDS: "3600",
};

// The request target is parsed as a URL here (dot segments resolved, backslashes turned to slashes) as a client
// would; test/e2e/authorization-oracle.test.ts sends the same targets raw.
const send: Send = async (request) => {
  const ctx = createExecutionContext();
  const response = await worker.fetch(
    new Request(`${ORIGIN}${request.path}`, { method: request.method, headers: request.headers, body: request.body ?? null }),
    oracleEnv,
    ctx,
  );
  const body = await readBounded(response.body);
  await waitOnExecutionContext(ctx);
  return { status: response.status, headers: response.headers, body };
};

let fixture: Fixture;
const totals = { cases: 0, requests: 0, failures: 0 };

beforeAll(async () => {
  fixture = await seedFixture(send, { adminToken: env.ADMIN_TOKEN!, origin: ORIGIN });
  // The expired token's one second passes while the caches fill.
  const warmed = await warmCaches(send, fixture);
  await new Promise((done) => setTimeout(done, 1100));
  console.log(`[oracle] admin read ${warmed.paths} private URLs; the edge cache answered ${warmed.hits} of the second reads`);
}, 120_000);

afterAll(() => {
  console.log(`[oracle] workerd: ${totals.cases} generated cases, ${totals.requests} requests, ${totals.failures} failing cases`);
});

async function oracle(area: Area): Promise<void> {
  const cases = generateCases(area, fixture.identities);
  const outcome = await runCases(send, fixture, cases, { concurrency: 8, rewarmEveryMs: 20_000 });
  totals.cases += outcome.cases;
  totals.requests += outcome.requests;
  totals.failures += outcome.failures.length;
  console.log(`[oracle] ${area}: ${outcome.cases} cases, ${outcome.failures.length} failing`);
  expect(outcome.failures.length + outcome.skipped, report(area, outcome)).toBe(0);
}

describe("the oracle itself", () => {
  it("uses identities that are what their names say (pull-only, push, revoked, expired, forged, sessions)", async () => {
    expect(await misbehavingIdentities(send, fixture)).toEqual([]);
  });

  it("flags every read route when the caller may read secret/app (the admin): it can see a leak where there is one", async () => {
    expect(await unflaggedControls(send, fixture)).toEqual([]);
  });
});

describe("authorization oracle: a caller that may not pull secret/app learns nothing of it, however the path is spelled", () => {
  it("blobs (end-2, end-10): GET, HEAD, ranged GET and DELETE never serve a private blob or tell it from an absent one", () => oracle("blobs"), 600_000);
  it("manifests (end-3, end-9): by tag and by digest, GET, HEAD, conditional GET and DELETE never serve a private manifest or tell it from an absent one", () => oracle("manifests"), 600_000);
  it("tags (end-8): tags/list answers a private repository as it answers an absent one", () => oracle("tags"), 600_000);
  it("referrers (end-12): referrers of a private manifest answer as those of an absent one", () => oracle("referrers"), 600_000);
  it("blob uploads (end-4 to end-6, end-11, end-13): mounts, monolithic pushes and another repository's upload session reveal nothing", () => oracle("blob uploads"), 600_000);
  it("catalog: _catalog never lists the private repository", () => oracle("catalog"), 600_000);
  it("search API: /api/search and /api/repositories/<name>/tags never show the private repository", () => oracle("search API"), 600_000);
  it("web UI: home, repository, tag, digest and delete pages answer a private repository as an absent one", () => oracle("web UI"), 600_000);
});
