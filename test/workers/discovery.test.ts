import { describe, expect, it } from "vitest";
import { call, descriptorOf, expectError, OCI_INDEX, OCI_MANIFEST, pushBlob, pushImage, pushManifest, putManifest, sha256 } from "./helpers";

describe("listing tags", () => {
  it("lists tags in lexical order and paginates with n, last and a Link header", async () => {
    const manifest = await pushImage("discovery/tags");
    for (const tag of ["b", "a", "C", "latest", "1.0"]) await pushManifest("discovery/tags", tag, manifest);
    const all = await call("/v2/discovery/tags/tags/list");
    expect(await all.json()).toEqual({ name: "discovery/tags", tags: ["1.0", "C", "a", "b", "latest"] });
    expect(all.headers.get("Link")).toBeNull();

    const first = await call("/v2/discovery/tags/tags/list?n=2");
    expect(await first.json()).toEqual({ name: "discovery/tags", tags: ["1.0", "C"] });
    expect(first.headers.get("Link")).toBe('</v2/discovery/tags/tags/list?n=2&last=C>; rel="next"');
    const second = await call("/v2/discovery/tags/tags/list?n=2&last=C");
    expect(await second.json()).toEqual({ name: "discovery/tags", tags: ["a", "b"] });
    const third = await call("/v2/discovery/tags/tags/list?n=2&last=b");
    expect(await third.json()).toEqual({ name: "discovery/tags", tags: ["latest"] });
    expect(third.headers.get("Link")).toBeNull();
    expect(await (await call("/v2/discovery/tags/tags/list?n=0")).json()).toEqual({ name: "discovery/tags", tags: [] });
  });

  it("answers an unknown repository with NAME_UNKNOWN", async () => {
    await expectError(await call("/v2/discovery/nothing/tags/list"), 404, "NAME_UNKNOWN");
  });

  it("refuses a malformed n", async () => {
    await pushManifest("discovery/badn", "v1", await pushImage("discovery/badn"));
    expect((await call("/v2/discovery/badn/tags/list?n=-1")).status).toBe(400);
  });
});

describe("catalog", () => {
  it("lists repositories, paginated", async () => {
    for (const name of ["catalog/one", "catalog/two", "catalog/three"]) await pushBlob(name, "x");
    const { repositories } = (await (await call("/v2/_catalog")).json()) as { repositories: string[] };
    expect(repositories).toEqual(expect.arrayContaining(["catalog/one", "catalog/three", "catalog/two"]));
    expect([...repositories].sort()).toEqual(repositories);
    const page = await call("/v2/_catalog?n=1&last=catalog/one");
    expect(await page.json()).toEqual({ repositories: ["catalog/three"] });
    expect(page.headers.get("Link")).toBe(`</v2/_catalog?n=1&last=${encodeURIComponent("catalog/three")}>; rel="next"`);
  });
});

describe("referrers", () => {
  async function pushReferrer(repository: string, subject: { digest: string; size: number }, artifactType: string, note = "") {
    const empty = await pushBlob(repository, "{}");
    const payload = await pushBlob(repository, `payload of ${artifactType}${note}`);
    const manifest = {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType,
      config: { mediaType: "application/vnd.oci.empty.v1+json", digest: empty, size: 2 },
      layers: [{ mediaType: "application/octet-stream", digest: payload, size: `payload of ${artifactType}${note}`.length }],
      subject: { mediaType: OCI_MANIFEST, ...subject },
      annotations: { "org.opencontainers.image.created": "2026-11-23T00:00:00Z" },
    };
    const response = await putManifest(repository, await sha256(JSON.stringify(manifest)), manifest);
    expect(response.status).toBe(201);
    expect(response.headers.get("OCI-Subject")).toBe(subject.digest);
    return response.headers.get("Docker-Content-Digest")!;
  }

  it("lists manifests whose subject is the digest, filtered by artifactType", async () => {
    const body = JSON.stringify(await pushImage("discovery/referrers"));
    const subject = await pushManifest("discovery/referrers", "v1", body);
    const descriptor = descriptorOf(body, subject);
    const sbom = await pushReferrer("discovery/referrers", descriptor, "application/spdx+json");
    const signature = await pushReferrer("discovery/referrers", descriptor, "application/vnd.dev.cosign.signature");

    const all = await call(`/v2/discovery/referrers/referrers/${subject}`);
    expect(all.status).toBe(200);
    expect(all.headers.get("Content-Type")).toBe(OCI_INDEX);
    expect(all.headers.get("OCI-Filters-Applied")).toBeNull();
    const index = (await all.json()) as { schemaVersion: number; mediaType: string; manifests: { digest: string; artifactType: string; annotations: object }[] };
    expect(index.schemaVersion).toBe(2);
    expect(index.mediaType).toBe(OCI_INDEX);
    expect(index.manifests.map((m) => m.digest).sort()).toEqual([sbom, signature].sort());
    expect(index.manifests.find((m) => m.digest === sbom)).toMatchObject({
      artifactType: "application/spdx+json",
      mediaType: OCI_MANIFEST,
      annotations: { "org.opencontainers.image.created": "2026-11-23T00:00:00Z" },
    });

    const filtered = await call(`/v2/discovery/referrers/referrers/${subject}?artifactType=application/spdx%2Bjson`);
    expect(filtered.headers.get("OCI-Filters-Applied")).toBe("artifactType");
    expect(((await filtered.json()) as typeof index).manifests.map((m) => m.digest)).toEqual([sbom]);
  });

  it("accepts a referrer whose subject is not (yet) in the repository, and lists it", async () => {
    const absent = { digest: await sha256("not pushed yet"), size: 14 };
    const referrer = await pushReferrer("discovery/early", absent, "application/vnd.example.early");
    const index = (await (await call(`/v2/discovery/early/referrers/${absent.digest}`)).json()) as { manifests: { digest: string }[] };
    expect(index.manifests.map((m) => m.digest)).toEqual([referrer]);
  });

  it("pages referrers with n and a Link header that keeps the artifactType filter", async () => {
    const body = JSON.stringify(await pushImage("discovery/paged"));
    const subject = await pushManifest("discovery/paged", "v1", body);
    const descriptor = descriptorOf(body, subject);
    const pushed: string[] = [];
    for (let i = 0; i < 5; i++) pushed.push(await pushReferrer("discovery/paged", descriptor, i % 2 === 0 ? "application/spdx+json" : "application/x-other", ` #${i}`));
    const walk = async (first: string) => {
      const seen: string[] = [];
      let next: string | null = first;
      let pages = 0;
      while (next) {
        const page = await call(next);
        expect(page.status).toBe(200);
        const listed = ((await page.json()) as { manifests: { digest: string }[] }).manifests.map((m) => m.digest);
        expect(listed.length).toBeLessThanOrEqual(2);
        seen.push(...listed);
        next = /^<([^>]+)>; rel="next"$/.exec(page.headers.get("Link") ?? "")?.[1] ?? null;
        pages++;
      }
      return { seen, pages };
    };
    const all = await walk(`/v2/discovery/paged/referrers/${subject}?n=2`);
    expect(all.pages).toBe(3);
    expect(all.seen.sort()).toEqual([...pushed].sort());
    const filtered = await walk(`/v2/discovery/paged/referrers/${subject}?n=2&artifactType=application/spdx%2Bjson`);
    expect(filtered.seen.sort()).toEqual([pushed[0], pushed[2], pushed[4]].sort());
    await expectError(await call(`/v2/discovery/paged/referrers/${subject}?n=2&last=not-a-cursor`), 400, "REQUEST_INVALID");
  });

  it("returns an empty index for a digest with no referrers, and refuses a malformed digest", async () => {
    const none = await call(`/v2/discovery/referrers/referrers/${await sha256("none")}`);
    expect(none.status).toBe(200);
    expect(((await none.json()) as { manifests: unknown[] }).manifests).toEqual([]);
    await expectError(await call("/v2/discovery/referrers/referrers/sha256:zz"), 400, "DIGEST_INVALID");
  });
});
