import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { ageTag, callerOf, mirrorEnvWith, PRIVATE, publish, upstream, UPSTREAM, useFakeUpstream, type Fault } from "./fake-upstream";
import { OCI_INDEX, OCI_MANIFEST, randomBytes, sha256 } from "./helpers";

useFakeUpstream();

const call = callerOf(
  mirrorEnvWith([
    { prefix: "hub", upstream: UPSTREAM, library: true, timeoutSeconds: 1 },
    { prefix: "private", upstream: PRIVATE, username: "mirror", passwordSecret: "MIRROR_PRIVATE_PASSWORD" },
  ]),
);

describe("pulling through the mirror", () => {
  it("fetches a manifest by tag on a miss (Bearer challenge, anonymous), stores it, and serves it after", async () => {
    const image = await publish("library/alpine", "3.20");
    const first = await call("/v2/hub/alpine/manifests/3.20", { headers: { Accept: OCI_MANIFEST } });
    expect(first.status).toBe(200);
    expect(first.headers.get("Docker-Content-Digest")).toBe(image.digest);
    expect(await first.text()).toBe(image.body);
    expect(upstream.count("GET /token")).toBe(1);

    upstream.calls = [];
    const second = await call("/v2/hub/alpine/manifests/3.20");
    expect(await second.text()).toBe(image.body);
    expect(upstream.calls).toEqual([]);
    expect((await call(`/v2/hub/alpine/manifests/${image.digest}`)).status).toBe(200);
    expect(upstream.calls).toEqual([]);
  });

  it("maps single names to library/ and serves docker's registry-mirrors path style through the same store", async () => {
    const image = await publish("library/busybox", "1");
    expect((await call("/v2/hub/library/busybox/manifests/1")).headers.get("Docker-Content-Digest")).toBe(image.digest);
    expect((await call("/v2/hub/busybox/manifests/1")).headers.get("Docker-Content-Digest")).toBe(image.digest);
  });

  it("streams a missing blob to the client while storing it, then serves it from R2", async () => {
    const image = await publish("library/nginx", "1", 200_000);
    await call("/v2/hub/nginx/manifests/1");
    const first = await call(`/v2/hub/nginx/blobs/${image.layerDigest}`);
    expect(first.status).toBe(200);
    expect(first.headers.get("Content-Length")).toBe("200000");
    expect(await sha256(new Uint8Array(await first.arrayBuffer()))).toBe(image.layerDigest);

    upstream.calls = [];
    const second = await call(`/v2/hub/nginx/blobs/${image.layerDigest}`);
    expect(await sha256(new Uint8Array(await second.arrayBuffer()))).toBe(image.layerDigest);
    expect(upstream.calls).toEqual([]);
  });

  it("caches tokens until they expire, then asks for a new one", async () => {
    const image = await publish("library/tokens", "1");
    upstream.tokenLifetime = 11; // cached for 1 s (renewed 10 s early)
    await call("/v2/hub/tokens/manifests/1");
    await call(`/v2/hub/tokens/blobs/${image.layerDigest}`, { method: "HEAD" });
    expect(upstream.count("GET /token")).toBe(1);
    await new Promise((done) => setTimeout(done, 1100));
    await call(`/v2/hub/tokens/blobs/${image.layerDigest}`);
    expect(upstream.count("GET /token")).toBe(2);
    upstream.tokenLifetime = 300;
  });

  it("authenticates to the token service with configured credentials", async () => {
    const name = "team/tool";
    const layer = randomBytes(100);
    const layerDigest = await sha256(layer);
    upstream.blobs.set(layerDigest, layer);
    const body = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] });
    const digest = await sha256(body);
    upstream.manifests.set(digest, { body, mediaType: OCI_INDEX });
    upstream.tags.set(`${name}:v1`, digest);
    expect((await call("/v2/private/team/tool/manifests/v1")).status).toBe(200);
    expect((await call(`/v2/private/team/tool/blobs/${layerDigest}`)).status).toBe(200);
  });

  it("proxies the tag list", async () => {
    await publish("library/listed", "a");
    await publish("library/listed", "b");
    expect(await (await call("/v2/hub/listed/tags/list")).json()).toEqual({ name: "hub/listed", tags: ["a", "b"] });
  });
});

describe("tag revalidation", () => {
  it("revalidates an expired tag with a HEAD and downloads nothing when it is unchanged", async () => {
    const image = await publish("library/stable", "1");
    await call("/v2/hub/stable/manifests/1");
    await ageTag("hub/stable", "1");
    upstream.calls = [];
    expect((await call("/v2/hub/stable/manifests/1")).headers.get("Docker-Content-Digest")).toBe(image.digest);
    expect(upstream.calls.filter((c) => !c.startsWith("GET /token"))).toEqual(["HEAD /v2/library/stable/manifests/1"]);
  });

  it("serves the new manifest when the upstream tag moved", async () => {
    await publish("library/moving", "latest");
    await call("/v2/hub/moving/manifests/latest");
    const moved = await publish("library/moving", "latest");
    // Within the TTL the cached digest is served.
    expect((await call("/v2/hub/moving/manifests/latest")).headers.get("Docker-Content-Digest")).not.toBe(moved.digest);
    await ageTag("hub/moving", "latest");
    expect((await call("/v2/hub/moving/manifests/latest")).headers.get("Docker-Content-Digest")).toBe(moved.digest);
  });
});

describe("when the upstream fails", () => {
  for (const fault of [{ kind: "down" }, { kind: "status", status: 503 }, { kind: "status", status: 429 }, { kind: "hang" }] as Fault[]) {
    it(`serves the cached tag, marked stale, when the upstream is ${fault.kind}${fault.status ? ` ${fault.status}` : ""}`, async () => {
      const name = `library/stale-${fault.kind}-${fault.status ?? 0}`;
      const image = await publish(name, "1");
      const local = `hub/${name.slice("library/".length)}`;
      await call(`/v2/${local}/manifests/1`);
      await ageTag(local, "1");
      upstream.fault = fault;
      const response = await call(`/v2/${local}/manifests/1`);
      expect(response.status).toBe(200);
      expect(response.headers.get("Docker-Content-Digest")).toBe(image.digest);
      expect(response.headers.get("X-Mirror-Status")).toBe("stale");
    });
  }

  it("passes on a 429 as TOOMANYREQUESTS with Retry-After when nothing is cached", async () => {
    await publish("library/limited", "1");
    upstream.fault = { kind: "status", status: 429 };
    const response = await call("/v2/hub/limited/manifests/1");
    expect(response.status).toBe(429);
    expect(response.headers.get("Retry-After")).toBe("17");
    expect(((await response.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("TOOMANYREQUESTS");
  });

  it("answers 502 with an OCI error when the upstream is down and nothing is cached, and 404 when it lacks the image", async () => {
    await publish("library/unreachable", "1");
    upstream.fault = { kind: "down" };
    const down = await call("/v2/hub/unreachable/manifests/1");
    expect(down.status).toBe(502);
    expect(((await down.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("UPSTREAM_UNAVAILABLE");
    upstream.fault = null;
    const missing = await call("/v2/hub/does-not-exist/manifests/1");
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("MANIFEST_UNKNOWN");
  });

  it("never stores a manifest whose bytes do not match the upstream's digest", async () => {
    await publish("library/lying", "1");
    upstream.fault = { kind: "wrong-digest" };
    expect((await call("/v2/hub/lying/manifests/1")).status).toBe(502);
    const row = await env.DB.prepare("SELECT COUNT(*) AS n FROM manifests WHERE repository = 'hub/lying'").first<{ n: number }>();
    expect(row!.n).toBe(0);
  });

  it("refuses an upstream manifest larger than MAX_MANIFEST_BYTES without keeping it", async () => {
    const body = JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, annotations: { padding: "x".repeat(4 * 1024 * 1024 + 1) } });
    const digest = await sha256(body);
    upstream.manifests.set(digest, { body, mediaType: OCI_MANIFEST });
    upstream.tags.set("library/huge:1", digest);
    const response = await call("/v2/hub/huge/manifests/1");
    expect(response.status).toBe(502);
    expect(JSON.stringify(await response.json())).toContain("MAX_MANIFEST_BYTES");
    const row = await env.DB.prepare("SELECT COUNT(*) AS n FROM manifests WHERE repository = 'hub/huge'").first<{ n: number }>();
    expect(row!.n).toBe(0);
  });

  for (const kind of ["corrupt", "truncate"] as const) {
    it(`never records a ${kind} blob from upstream`, async () => {
      const image = await publish(`library/${kind}`, "1", 100_000);
      await call(`/v2/hub/${kind}/manifests/1`);
      upstream.fault = { kind };
      const response = await call(`/v2/hub/${kind}/blobs/${image.layerDigest}`).catch(() => null);
      if (response?.status === 200) expect(await sha256(new Uint8Array(await response.arrayBuffer()))).not.toBe(image.layerDigest);
      const row = await env.DB.prepare("SELECT COUNT(*) AS n FROM repository_blobs WHERE digest = ?").bind(image.layerDigest).first<{ n: number }>();
      expect(row!.n).toBe(0);
      // Once the upstream is healthy the blob is fetched again, whole.
      upstream.fault = null;
      const healthy = await call(`/v2/hub/${kind}/blobs/${image.layerDigest}`);
      expect(await sha256(new Uint8Array(await healthy.arrayBuffer()))).toBe(image.layerDigest);
    });
  }
});

describe("concurrent misses", () => {
  it("fetch a blob from upstream once", async () => {
    const image = await publish("library/popular", "1", 1_000_000);
    await call("/v2/hub/popular/manifests/1");
    upstream.fault = { kind: "slow" };
    upstream.calls = [];
    const responses = await Promise.all(Array.from({ length: 5 }, () => call(`/v2/hub/popular/blobs/${image.layerDigest}`)));
    for (const response of responses) expect(await sha256(new Uint8Array(await response.arrayBuffer()))).toBe(image.layerDigest);
    expect(upstream.count(`GET /v2/library/popular/blobs/`)).toBe(1);
  });
});

describe("mirrored namespaces are read-only", () => {
  it("refuses pushes and deletes with DENIED", async () => {
    const image = await publish("library/readonly", "1");
    await call("/v2/hub/readonly/manifests/1");
    for (const [path, method] of [
      ["/v2/hub/readonly/manifests/2", "PUT"],
      ["/v2/hub/readonly/blobs/uploads/", "POST"],
      [`/v2/hub/readonly/manifests/${image.digest}`, "DELETE"],
      [`/v2/hub/readonly/blobs/${image.layerDigest}`, "DELETE"],
    ] as const) {
      const response = await call(path, { method, body: method === "PUT" ? image.body : undefined });
      expect(response.status, `${method} ${path}`).toBe(403);
      expect(((await response.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("DENIED");
    }
  });
});
