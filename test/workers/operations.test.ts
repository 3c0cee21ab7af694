import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import worker from "../../src/index";
import { ORIGIN, pushImage, randomBytes, sha256 } from "./helpers";

async function callWith(vars: Record<string, string>, path: string, init?: RequestInit): Promise<Response> {
  const ctx = createExecutionContext();
  const response = await worker.fetch(new Request(`${ORIGIN}${path}`, init), { ...env, ...vars }, ctx);
  await waitOnExecutionContext(ctx);
  return response;
}

async function errorOf(response: Response) {
  return ((await response.json()) as { errors: { code: string; message: string }[] }).errors[0]!;
}

afterEach(() => vi.restoreAllMocks());

describe("tag immutability", () => {
  const immutable = { IMMUTABLE_TAGS: "prod/*" };
  const put = (path: string, manifest: unknown) =>
    callWith(immutable, path, { method: "PUT", headers: { "Content-Type": "application/vnd.oci.image.manifest.v1+json" }, body: JSON.stringify(manifest) });

  it("refuses to move or delete a pushed tag in a matching repository, and allows re-pushing the same digest", async () => {
    const first = await pushImage("prod/api");
    const second = await pushImage("prod/api");
    expect((await put("/v2/prod/api/manifests/v1", first)).status).toBe(201);
    expect((await put("/v2/prod/api/manifests/v1", first)).status).toBe(201);
    const moved = await put("/v2/prod/api/manifests/v1", second);
    expect(moved.status).toBe(403);
    expect((await errorOf(moved)).message).toContain("IMMUTABLE_TAGS");
    expect((await callWith(immutable, "/v2/prod/api/manifests/v1", { method: "DELETE" })).status).toBe(403);
    const digest = await sha256(JSON.stringify(first));
    expect((await callWith(immutable, `/v2/prod/api/manifests/${digest}`, { method: "DELETE" })).status).toBe(403);
    expect((await callWith(immutable, "/v2/prod/api/manifests/v1")).headers.get("Docker-Content-Digest")).toBe(digest);
    // Other repositories are not affected.
    const dev = await pushImage("dev/api");
    expect((await put("/v2/dev/api/manifests/v1", dev)).status).toBe(201);
    expect((await put("/v2/dev/api/manifests/v1", await pushImage("dev/api"))).status).toBe(201);
  });
});

describe("storage quota", () => {
  it("refuses a push that would exceed STORAGE_QUOTA_BYTES with DENIED naming the quota, and shows usage", async () => {
    const usage = (await (await callWith({}, "/admin/usage", { headers: { Authorization: `Bearer ${env.ADMIN_TOKEN}` } })).json()) as { bytes: number; quota: number | null };
    expect(usage.quota).toBeNull();
    const quota = { STORAGE_QUOTA_BYTES: String(usage.bytes + 1000) };
    const small = randomBytes(500);
    const fits = await callWith(quota, `/v2/quota/app/blobs/uploads/?digest=${await sha256(small)}`, { method: "POST", body: small, headers: { "Content-Length": "500" } });
    expect(fits.status).toBe(201);
    const big = randomBytes(600);
    const refused = await callWith(quota, `/v2/quota/app/blobs/uploads/?digest=${await sha256(big)}`, { method: "POST", body: big, headers: { "Content-Length": "600" } });
    expect(refused.status).toBe(403);
    const error = await errorOf(refused);
    expect(error.code).toBe("DENIED");
    expect(error.message).toContain("STORAGE_QUOTA_BYTES");

    const location = (await callWith({}, "/v2/quota/app/blobs/uploads/", { method: "POST" })).headers.get("Location")!;
    await callWith({}, location, { method: "PATCH", body: big });
    expect((await callWith(quota, `${location}?digest=${await sha256(big)}`, { method: "PUT" })).status).toBe(403);

    const after = (await (await callWith(quota, "/admin/usage", { headers: { Authorization: `Bearer ${env.ADMIN_TOKEN}` } })).json()) as { bytes: number; quota: number };
    expect(after.bytes).toBe(usage.bytes + 500);
    expect(after.quota).toBe(usage.bytes + 1000);
  });
});

describe("request logs", () => {
  it("writes one JSON line per request with method, repository, status, bytes, duration and caller", async () => {
    const lines: string[] = [];
    vi.spyOn(console, "log").mockImplementation((line: unknown) => void lines.push(String(line)));
    const bytes = randomBytes(123);
    await callWith({ LOG_REQUESTS: "true" }, `/v2/logged/app/blobs/uploads/?digest=${await sha256(bytes)}`, { method: "POST", body: bytes, headers: { "Content-Length": "123" } });
    const entry = lines.map((line) => JSON.parse(line)).find((log) => log.event === "request");
    expect(entry).toMatchObject({ method: "POST", repository: "logged/app", status: 201, bytesIn: 123, caller: "anonymous" });
    expect(typeof entry.durationMs).toBe("number");
  });

  it("logs every write, failure and slow request, and quick successful reads at LOG_READ_SAMPLE_RATE", async () => {
    const lines: string[] = [];
    vi.spyOn(console, "log").mockImplementation((line: unknown) => void lines.push(String(line)));
    const requests = () => lines.map((line) => JSON.parse(line)).filter((log) => log.event === "request");
    const bytes = randomBytes(50);
    const digest = await sha256(bytes);
    const quiet = { LOG_REQUESTS: "true", LOG_READ_SAMPLE_RATE: "0" };
    await callWith(quiet, `/v2/logged/sampled/blobs/uploads/?digest=${digest}`, { method: "POST", body: bytes, headers: { "Content-Length": "50" } });
    for (let i = 0; i < 20; i++) await callWith(quiet, `/v2/logged/sampled/blobs/${digest}`);
    await callWith(quiet, `/v2/logged/sampled/blobs/${digest}`, { headers: { Range: "bytes=100-200" } });
    expect(requests().map((log) => [log.method, log.status])).toEqual([["POST", 201], ["GET", 416]]);

    lines.length = 0;
    await callWith({ ...quiet, LOG_READ_SAMPLE_RATE: "1" }, `/v2/logged/sampled/blobs/${digest}`);
    expect(requests()).toMatchObject([{ method: "GET", status: 200, sampled: 1 }]);
    lines.length = 0;
    await callWith({ ...quiet, LOG_SLOW_MS: "0" }, `/v2/logged/sampled/blobs/${digest}`);
    expect(requests()).toHaveLength(1);
    expect(requests()[0].sampled).toBeUndefined();
  });
});
