import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { applyRetention } from "../../src/gc/retention";
import worker from "../../src/index";
import { call, descriptorOf, EMPTY_CONFIG, OCI_INDEX, OCI_MANIFEST, pushBlob, pushImage, pushManifest, sha256 } from "./helpers";

const DESCRIPTION = "org.opencontainers.image.description";

interface SearchBody {
  query: string;
  repositories: { name: string; match: string | null; description: string | null; tags: number; latest: { tag: string; digest: string; pushedAt: string } | null }[];
}

interface TagsBody {
  name: string;
  tags: {
    name: string;
    digest: string;
    mediaType: string;
    artifactType: string | null;
    pushedAt: string;
    size: number | null;
    platforms: string[];
    referrers: { artifactType: string | null; count: number }[];
  }[];
}

async function searchFor(query: string, extra = ""): Promise<SearchBody> {
  const response = await call(`/api/search?q=${encodeURIComponent(query)}${extra}`);
  expect(response.status).toBe(200);
  return response.json();
}

const names = (body: SearchBody) => body.repositories.map((repository) => repository.name);

/** Pushes an image with annotations under a tag; returns its digest and the bytes of its config and layers. */
async function pushAnnotated(repository: string, tag: string, annotations: Record<string, string>, layers = [512, 1024]) {
  const manifest = { ...(await pushImage(repository, layers)), annotations };
  const digest = await pushManifest(repository, tag, manifest);
  return { digest, size: manifest.config.size + layers.reduce((sum, size) => sum + size, 0), body: JSON.stringify(manifest) };
}

/** An artifact attached to `subject` (what `oras attach` pushes: by digest, no tag). */
async function pushReferrer(repository: string, subject: { digest: string; size: number; mediaType: string }, artifactType: string, name = "sbom") {
  const empty = await pushBlob(repository, "{}");
  const payload = `{"spdxVersion":"SPDX-2.3","name":"${name}"}`;
  const manifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType,
    config: { ...EMPTY_CONFIG, digest: empty },
    layers: [{ mediaType: artifactType, digest: await pushBlob(repository, payload), size: payload.length }],
    subject,
  };
  return pushManifest(repository, await sha256(JSON.stringify(manifest)), manifest);
}

describe("search API: ranking", () => {
  beforeAll(async () => {
    await pushAnnotated("srank/zebrafish", "v1", {});
    await pushAnnotated("zebrafish-tools/cli", "v1", {});
    await pushAnnotated("srank/big-zebrafish-app", "v1", {});
    await pushAnnotated("srank/simulator", "v1", { [DESCRIPTION]: "Simulates a Zebrafish tank" });
    await pushAnnotated("srank/unrelated", "v1", { [DESCRIPTION]: "Nothing to see" });
  });

  it("ranks an exact name, then a prefix, then a substring, then a description match", async () => {
    const body = await searchFor("zebrafish");
    expect(body.repositories.map(({ name, match }) => [name, match])).toEqual([
      ["srank/zebrafish", "exact"],
      ["zebrafish-tools/cli", "prefix"],
      ["srank/big-zebrafish-app", "substring"],
      ["srank/simulator", "description"],
    ]);
    expect(body.repositories[3]).toMatchObject({ description: "Simulates a Zebrafish tank", tags: 1, latest: { tag: "v1" } });
  });

  it("matches case-insensitively, whole names exactly, and path components as prefixes", async () => {
    expect(names(await searchFor("  ZEBRAFISH  "))[0]).toBe("srank/zebrafish");
    expect((await searchFor("srank/zebrafish")).repositories[0]).toMatchObject({ name: "srank/zebrafish", match: "exact" });
    expect((await searchFor("big-zeb")).repositories).toEqual([expect.objectContaining({ name: "srank/big-zebrafish-app", match: "prefix" })]);
    expect((await searchFor("tank")).repositories.map((r) => r.name)).toEqual(["srank/simulator"]);
    expect((await searchFor("no-such-thing-anywhere")).repositories).toEqual([]);
  });

  it("lists every repository by name without a query", async () => {
    const body = await searchFor("", "&n=100");
    expect(names(body)).toEqual(expect.arrayContaining(["srank/zebrafish", "srank/simulator", "zebrafish-tools/cli"]));
    expect(body.repositories.every((repository) => repository.match === null)).toBe(true);
    expect([...names(body)].sort()).toEqual(names(body));
  });
});

describe("search API: the description follows the latest tag", () => {
  it("indexes the newest pushed tag, and falls back when it is moved or deleted", async () => {
    const repository = "sdesc/app";
    await pushAnnotated(repository, "v1", { [DESCRIPTION]: "An old quokka release", "org.opencontainers.image.title": "Quokka" });
    expect(names(await searchFor("quokka"))).toEqual([repository]);

    const latest = await pushAnnotated(repository, "v2", { [DESCRIPTION]: "A new wombat release" });
    expect(names(await searchFor("wombat"))).toEqual([repository]);
    expect(names(await searchFor("quokka"))).toEqual([]);
    expect((await searchFor("wombat")).repositories[0]!.latest).toMatchObject({ tag: "v2", digest: latest.digest });

    // Deleting the newest tag makes the one before it the latest again.
    expect((await call(`/v2/${repository}/manifests/v2`, { method: "DELETE" })).status).toBe(202);
    expect(names(await searchFor("quokka"))).toEqual([repository]);
    expect(names(await searchFor("wombat"))).toEqual([]);

    // Moving v1 to the wombat manifest makes it the latest.
    await pushManifest(repository, "v1", latest.body);
    expect(names(await searchFor("wombat"))).toEqual([repository]);

    // With the manifest deleted (its tags with it), nothing is left to describe the repository; its name still matches.
    expect((await call(`/v2/${repository}/manifests/${latest.digest}`, { method: "DELETE" })).status).toBe(202);
    expect(names(await searchFor("wombat"))).toEqual([]);
    const byName = (await searchFor("sdesc/app")).repositories[0]!;
    expect(byName).toMatchObject({ name: repository, description: null, latest: null, tags: 0 });
    const summaries = await env.DB.prepare("SELECT COUNT(*) AS n FROM manifest_summaries WHERE repository = ? AND digest = ?")
      .bind(repository, latest.digest)
      .first<{ n: number }>();
    expect(summaries?.n).toBe(0);
  });

  it("follows tags that retention deletes", async () => {
    const repository = "sdesc/retained";
    await pushAnnotated(repository, "v1", { [DESCRIPTION]: "the kept narwhal" });
    await pushAnnotated(repository, "nightly", { [DESCRIPTION]: "the nightly okapi" });
    expect(names(await searchFor("okapi"))).toEqual([repository]);
    const report = await applyRetention(env.DB, [{ repositories: repository, keepLastTags: 0, keepTags: "^v", deleteReferrers: false }], [], {
      dryRun: false,
      limit: 100,
      now: Date.now(),
    });
    expect(report.tags).toEqual([{ repository, tag: "nightly" }]);
    expect(names(await searchFor("okapi"))).toEqual([]);
    expect((await searchFor("narwhal")).repositories[0]).toMatchObject({ name: repository, latest: { tag: "v1" } });
  });

  it("takes an index's description from its images when the index has none", async () => {
    const repository = "sdesc/multi";
    const amd = await pushAnnotated(repository, "amd64", { [DESCRIPTION]: "A capybara for every platform" });
    const index = {
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [{ ...descriptorOf(amd.body, amd.digest), platform: { os: "linux", architecture: "amd64" } }],
    };
    await pushManifest(repository, "latest", index, OCI_INDEX);
    expect((await searchFor("capybara")).repositories[0]).toMatchObject({
      name: repository,
      description: "A capybara for every platform",
      latest: { tag: "latest" },
    });
  });
});

describe("search API: pagination", () => {
  it("pages with n and a cursor in the Link header, in rank order, without repeats", async () => {
    for (const name of ["spage/item-c", "spage/item-a", "spage/item-e", "spage/item-b", "spage/item-d"]) await pushBlob(name, "x");
    const seen: string[] = [];
    let next: string | null = "/api/search?q=spage%2Fitem&n=2";
    let pages = 0;
    while (next) {
      const response = await call(next);
      expect(response.status).toBe(200);
      seen.push(...names(await response.json()));
      const link = response.headers.get("Link");
      next = link ? /^<([^>]+)>; rel="next"$/.exec(link)![1]! : null;
      pages++;
    }
    expect(pages).toBe(3);
    expect(seen).toEqual(["spage/item-a", "spage/item-b", "spage/item-c", "spage/item-d", "spage/item-e"]);
  });

  it("refuses a malformed cursor or n", async () => {
    expect((await call("/api/search?q=x&cursor=not-a-cursor")).status).toBe(400);
    expect((await call(`/api/search?q=x&cursor=${btoa('{"a":1}')}`)).status).toBe(400);
    expect((await call("/api/search?q=x&n=-1")).status).toBe(400);
  });
});

describe("tag listing API", () => {
  it("lists tags newest first with digest, size, platforms and attached artifacts, paginated", async () => {
    const repository = "stags/app";
    const first = await pushAnnotated(repository, "1.0", {}, [100, 200]);
    const arm = await pushAnnotated(repository, "1.0-arm64", {}, [300]);
    const index = {
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        { ...descriptorOf(first.body, first.digest), platform: { os: "linux", architecture: "amd64" } },
        { ...descriptorOf(arm.body, arm.digest), platform: { os: "linux", architecture: "arm64", variant: "v8" } },
      ],
    };
    const indexDigest = await pushManifest(repository, "2.0", index, OCI_INDEX);
    const subject = descriptorOf(first.body, first.digest);
    await pushReferrer(repository, subject, "application/spdx+json", "first sbom");
    await pushReferrer(repository, subject, "application/spdx+json", "second sbom");
    await pushReferrer(repository, subject, "application/vnd.dev.cosign.artifact.sig.v1+json", "signature");

    const response = await call(`/api/repositories/${repository}/tags`);
    expect(response.status).toBe(200);
    const body: TagsBody = await response.json();
    expect(body.name).toBe(repository);
    expect(body.tags.map((tag) => tag.name)).toEqual(["2.0", "1.0-arm64", "1.0"]);
    const [multi, , single] = body.tags;
    expect(multi).toMatchObject({ digest: indexDigest, mediaType: OCI_INDEX, artifactType: null, platforms: ["linux/amd64", "linux/arm64/v8"], size: first.size + arm.size, referrers: [] });
    expect(single).toMatchObject({ digest: first.digest, mediaType: OCI_MANIFEST, artifactType: null, platforms: [], size: first.size });
    expect(single!.referrers).toEqual([
      { artifactType: "application/spdx+json", count: 2 },
      { artifactType: "application/vnd.dev.cosign.artifact.sig.v1+json", count: 1 },
    ]);
    expect(Date.parse(single!.pushedAt)).toBeLessThanOrEqual(Date.parse(multi!.pushedAt));

    const page = await call(`/api/repositories/${repository}/tags?n=2`);
    expect(((await page.json()) as TagsBody).tags.map((tag) => tag.name)).toEqual(["2.0", "1.0-arm64"]);
    const next = /^<([^>]+)>; rel="next"$/.exec(page.headers.get("Link") ?? "")?.[1];
    expect(next).toMatch(/^\/api\/repositories\/stags\/app\/tags\?n=2&cursor=/);
    const rest = await call(next!);
    expect(((await rest.json()) as TagsBody).tags.map((tag) => tag.name)).toEqual(["1.0"]);
    expect(rest.headers.get("Link")).toBeNull();
  });

  it("answers an unknown repository with NAME_UNKNOWN", async () => {
    const response = await call("/api/repositories/stags/nothing-here/tags");
    expect(response.status).toBe(404);
    expect(((await response.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe("NAME_UNKNOWN");
  });
});

// The same Worker with token authentication: anonymous callers see public repositories, credentials their scopes.
describe("access filtering", () => {
  const tokenEnv = { ...env, AUTH_MODE: "token", PUBLIC_REPOSITORIES: "spub/*" };
  let puller: string;
  let deleter: string;

  async function tokenCall(path: string, init: RequestInit & { auth?: string } = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (init.auth) headers.set("Authorization", init.auth);
    headers.set("CF-Connecting-IP", `203.0.113.${Math.floor(Math.random() * 250)}`);
    const ctx = createExecutionContext();
    const response = await worker.fetch(new Request(`http://registry.test${path}`, { ...init, headers, redirect: "manual" }), tokenEnv, ctx);
    await waitOnExecutionContext(ctx);
    return response;
  }

  const basic = (password: string) => `Basic ${btoa(`ci:${password}`)}`;

  async function createToken(name: string, scopes: { repository: string; actions: string[] }[]) {
    const response = await tokenCall("/admin/tokens", {
      method: "POST",
      auth: `Bearer ${env.ADMIN_TOKEN}`,
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name, scopes }),
    });
    expect(response.status).toBe(201);
    return (await response.json()) as { id: string; token: string };
  }

  beforeAll(async () => {
    await pushAnnotated("spub/saccess-public", "v1", { [DESCRIPTION]: "public pangolin" });
    await pushAnnotated("spriv/saccess-private", "v1", { [DESCRIPTION]: "private pangolin" });
    await pushAnnotated("sother/saccess-other", "v1", { [DESCRIPTION]: "other pangolin" });
    puller = (await createToken("search-puller", [{ repository: "spriv/*", actions: ["pull"] }])).token;
    deleter = (await createToken("search-deleter", [{ repository: "spriv/*", actions: ["pull", "delete"] }])).token;
  });

  const found = async (auth?: string) => {
    const response = await tokenCall("/api/search?q=pangolin", { auth });
    expect(response.status).toBe(200);
    return names(await response.json());
  };

  it("shows anonymous callers public repositories only, and credentials what they may pull", async () => {
    expect(await found()).toEqual(["spub/saccess-public"]);
    expect(await found(basic(puller))).toEqual(["spriv/saccess-private", "spub/saccess-public"]);
    expect(await found(basic(env.ADMIN_TOKEN!))).toEqual(["sother/saccess-other", "spriv/saccess-private", "spub/saccess-public"]);
    expect((await tokenCall("/api/search?q=pangolin", { auth: basic("ocr_wrong") })).status).toBe(401);
  });

  it("lists tags of a private repository only for a caller that may pull it", async () => {
    const anonymous = await tokenCall("/api/repositories/spriv/saccess-private/tags");
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get("WWW-Authenticate")).toContain('scope="repository:spriv/saccess-private:pull"');
    expect((await tokenCall("/api/repositories/spub/saccess-public/tags")).status).toBe(200);
    expect((await tokenCall("/api/repositories/spriv/saccess-private/tags", { auth: basic(puller) })).status).toBe(200);
    expect((await tokenCall("/api/repositories/sother/saccess-other/tags", { auth: basic(puller) })).status).toBe(403);
  });

  describe("web UI", () => {
    const ORIGIN = "http://registry.test";

    async function logIn(secret: string): Promise<string> {
      const response = await tokenCall("/login", {
        method: "POST",
        headers: { Origin: ORIGIN, "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ token: secret, next: "/r/spriv/saccess-private" }).toString(),
      });
      expect(response.status).toBe(303);
      expect(response.headers.get("Location")).toBe("/r/spriv/saccess-private");
      const cookie = response.headers.get("Set-Cookie")!;
      expect(cookie).toMatch(/^registry_session=[^;]+;/);
      expect(cookie).toContain("HttpOnly");
      expect(cookie).toContain("SameSite=Strict");
      expect(cookie).not.toContain(secret);
      return cookie.split(";")[0]!;
    }

    const page = (path: string, cookie?: string) => tokenCall(path, cookie ? { headers: { Cookie: cookie } } : {});

    it("shows anonymous visitors public repositories only, and a logged-in visitor what its token may pull", async () => {
      const anonymous = await (await page("/?q=pangolin")).text();
      expect(anonymous).toContain("spub/saccess-public");
      expect(anonymous).not.toContain("spriv/saccess-private");
      expect((await page("/r/spriv/saccess-private")).status).toBe(404);

      const cookie = await logIn(puller);
      const home = await (await page("/?q=pangolin", cookie)).text();
      expect(home).toContain("spriv/saccess-private");
      expect(home).not.toContain("sother/saccess-other");
      expect(home).toContain("search-puller");
      const repository = await page("/r/spriv/saccess-private", cookie);
      expect(repository.status).toBe(200);
      expect(repository.headers.get("Cache-Control")).toBe("no-store");
      expect(repository.headers.get("Content-Security-Policy")).toContain("frame-ancestors 'none'");
      expect(await repository.text()).toContain("docker pull registry.test/spriv/saccess-private:v1");
    });

    it("refuses a wrong token, a login from another origin, and a forged or revoked session", async () => {
      const wrong = await tokenCall("/login", {
        method: "POST",
        headers: { Origin: ORIGIN, "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ token: "ocr_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }).toString(),
      });
      expect(wrong.status).toBe(401);
      expect(await wrong.text()).toContain("not valid");
      const crossSite = await tokenCall("/login", {
        method: "POST",
        headers: { Origin: "https://evil.example", "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ token: puller }).toString(),
      });
      expect(crossSite.status).toBe(403);
      expect(crossSite.headers.get("Set-Cookie")).toBeNull();
      for (const next of ["//evil.example/", "/\t/evil.example/", "https://evil.example/"]) {
        const elsewhere = await tokenCall("/login", {
          method: "POST",
          headers: { Origin: ORIGIN, "Content-Type": "application/x-www-form-urlencoded" },
          body: new URLSearchParams({ token: puller, next }).toString(),
        });
        expect(elsewhere.headers.get("Location")).toBe("/");
      }

      expect(await (await page("/?q=pangolin", "registry_session=forged.jwt.value")).text()).not.toContain("spriv/saccess-private");
      const { id, token } = await createToken("search-short-lived", [{ repository: "spriv/*", actions: ["pull"] }]);
      const cookie = await logIn(token);
      expect((await page("/r/spriv/saccess-private", cookie)).status).toBe(200);
      expect((await tokenCall(`/admin/tokens/${id}`, { method: "DELETE", auth: `Bearer ${env.ADMIN_TOKEN}` })).status).toBe(204);
      expect((await page("/r/spriv/saccess-private", cookie)).status).toBe(404);
      // A session is not a registry bearer token.
      const session = cookie.split("=")[1]!;
      expect((await tokenCall("/v2/spriv/saccess-private/tags/list", { auth: `Bearer ${session}` })).status).toBe(401);
    });

    it("deletes a tag only for a visitor with delete rights, after confirmation, from this origin", async () => {
      await pushAnnotated("spriv/saccess-private", "doomed", {});
      const pullerSession = await logIn(puller);
      const tagPage = await (await page("/r/spriv/saccess-private/-/tags/doomed", pullerSession)).text();
      expect(tagPage).not.toContain("Delete tag");
      const form = { method: "POST", headers: { Origin: ORIGIN, "Content-Type": "application/x-www-form-urlencoded" }, body: "" };
      expect((await tokenCall("/r/spriv/saccess-private/-/tags/doomed/delete", { ...form, headers: { ...form.headers, Cookie: pullerSession } })).status).toBe(403);

      const deleterSession = await logIn(deleter);
      expect(await (await page("/r/spriv/saccess-private/-/tags/doomed", deleterSession)).text()).toContain("Delete tag");
      const confirm = await page("/r/spriv/saccess-private/-/tags/doomed/delete", deleterSession);
      expect(confirm.status).toBe(200);
      expect(await confirm.text()).toContain('method="post"');
      const forged = await tokenCall("/r/spriv/saccess-private/-/tags/doomed/delete", { ...form, headers: { ...form.headers, Origin: "https://evil.example", Cookie: deleterSession } });
      expect(forged.status).toBe(403);
      const deleted = await tokenCall("/r/spriv/saccess-private/-/tags/doomed/delete", { ...form, headers: { ...form.headers, Cookie: deleterSession } });
      expect(deleted.status).toBe(303);
      expect(deleted.headers.get("Location")).toBe("/r/spriv/saccess-private?deleted=doomed");
      expect((await call("/v2/spriv/saccess-private/manifests/doomed", { method: "HEAD" })).status).toBe(404);
      expect((await call("/v2/spriv/saccess-private/manifests/v1", { method: "HEAD" })).status).toBe(200);
    });

    it("refuses to delete an immutable tag, saying why", async () => {
      const immutableEnv = { ...tokenEnv, IMMUTABLE_TAGS: "spriv/*" };
      const cookie = await logIn(deleter);
      const ctx = createExecutionContext();
      const response = await worker.fetch(
        new Request(`${ORIGIN}/r/spriv/saccess-private/-/tags/v1/delete`, {
          method: "POST",
          headers: { Origin: ORIGIN, Cookie: cookie, "Content-Type": "application/x-www-form-urlencoded" },
          redirect: "manual",
        }),
        immutableEnv,
        ctx,
      );
      await waitOnExecutionContext(ctx);
      expect(response.status).toBe(403);
      expect(await response.text()).toContain("immutable");
      expect((await call("/v2/spriv/saccess-private/manifests/v1", { method: "HEAD" })).status).toBe(200);
    });
  });
});
