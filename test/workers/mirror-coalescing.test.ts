import { describe, expect, it } from "vitest";
import { ageTag, callerOf, mirrorEnvWith, publish, upstream, UPSTREAM, useFakeUpstream } from "./fake-upstream";

// Docker Hub counts manifest GETs against the pull limit: concurrent pulls of one reference ask the upstream once
// (one request leads, the others wait for it and read what it stored), revalidations included.
useFakeUpstream();

const pull = callerOf(mirrorEnvWith([{ prefix: "hub", upstream: UPSTREAM, library: true, timeoutSeconds: 1 }]));

const manifestCalls = (name: string, method: "GET" | "HEAD") => upstream.answered.filter((call) => call.startsWith(`${method} /v2/library/${name}/manifests/`) && !call.endsWith(" 401"));

async function concurrently(count: number, path: string) {
  return Promise.all(Array.from({ length: count }, () => pull(path)));
}

describe("concurrent pulls of one manifest", () => {
  it("of an uncached tag send one manifest GET (and one HEAD) upstream, and all get the right digest", async () => {
    const image = await publish("library/coalesced", "1");
    const responses = await concurrently(10, "/v2/hub/coalesced/manifests/1");
    for (const response of responses) {
      expect(response.status).toBe(200);
      expect(response.headers.get("Docker-Content-Digest")).toBe(image.digest);
      expect(await response.text()).toBe(image.body);
    }
    expect(manifestCalls("coalesced", "GET")).toHaveLength(1);
    expect(manifestCalls("coalesced", "HEAD").length).toBeLessThanOrEqual(1);
    expect(responses.map((r) => r.headers.get("X-Mirror-Status")).sort()).toEqual([...Array(9).fill("hit"), "miss"]);
  });

  it("by digest send one GET upstream", async () => {
    const image = await publish("library/by-digest", "1");
    const responses = await concurrently(10, `/v2/hub/by-digest/manifests/${image.digest}`);
    for (const response of responses) expect(response.headers.get("Docker-Content-Digest")).toBe(image.digest);
    expect(manifestCalls("by-digest", "GET")).toHaveLength(1);
  });

  it("of a tag past its TTL send one HEAD and no GET when the tag has not moved", async () => {
    const image = await publish("library/revalidated", "1");
    await pull("/v2/hub/revalidated/manifests/1");
    await ageTag("hub/revalidated", "1");
    upstream.answered = [];
    const responses = await concurrently(10, "/v2/hub/revalidated/manifests/1");
    for (const response of responses) expect(response.headers.get("Docker-Content-Digest")).toBe(image.digest);
    expect(manifestCalls("revalidated", "HEAD")).toHaveLength(1);
    expect(manifestCalls("revalidated", "GET")).toHaveLength(0);
    expect(responses.map((r) => r.headers.get("X-Mirror-Status")).sort()).toEqual([...Array(9).fill("hit"), "revalidated"]);
  });

  it("of a tag that moved upstream send one HEAD and one GET, and all get the new digest", async () => {
    await publish("library/moved", "1");
    await pull("/v2/hub/moved/manifests/1");
    const moved = await publish("library/moved", "1");
    await ageTag("hub/moved", "1");
    upstream.answered = [];
    const responses = await concurrently(10, "/v2/hub/moved/manifests/1");
    for (const response of responses) expect(response.headers.get("Docker-Content-Digest")).toBe(moved.digest);
    expect(manifestCalls("moved", "HEAD")).toHaveLength(1);
    expect(manifestCalls("moved", "GET")).toHaveLength(1);
  });

  it("share the leader's failure: a hanging upstream is asked once and everyone gets the stale copy within seconds", async () => {
    const image = await publish("library/hanging", "1");
    await pull("/v2/hub/hanging/manifests/1");
    await ageTag("hub/hanging", "1");
    upstream.calls = [];
    upstream.fault = { kind: "hang" };
    const started = Date.now();
    const responses = await concurrently(10, "/v2/hub/hanging/manifests/1");
    expect(Date.now() - started).toBeLessThan(3000);
    for (const response of responses) {
      expect(response.status).toBe(200);
      expect(response.headers.get("Docker-Content-Digest")).toBe(image.digest);
      expect(response.headers.get("X-Mirror-Status")).toBe("stale");
    }
    expect(upstream.count("HEAD /v2/library/hanging/manifests/")).toBe(1);
  });

  it("share the leader's 429 when nothing is cached: one request upstream, every client told to retry after", async () => {
    await publish("library/limited-together", "1");
    // The token first, so that the one request upstream is the manifest's.
    await pull("/v2/hub/limited-together/manifests/other").catch(() => undefined);
    upstream.answered = [];
    upstream.fault = { kind: "status", status: 429 };
    const responses = await concurrently(10, "/v2/hub/limited-together/manifests/1");
    for (const response of responses) {
      expect(response.status).toBe(429);
      expect(response.headers.get("Retry-After")).toBe("17");
    }
    expect(upstream.answered).toEqual(["HEAD /v2/library/limited-together/manifests/1 429"]);
  });
});
