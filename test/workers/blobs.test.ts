import { describe, expect, it } from "vitest";
import { call, expectError, pushBlob, randomBytes, sha256, textOf } from "./helpers";

describe("base", () => {
  it("answers GET /v2/ with 200 and the API version header", async () => {
    const response = await call("/v2/");
    expect(response.status).toBe(200);
    expect(response.headers.get("Docker-Distribution-API-Version")).toBe("registry/2.0");
  });

  it("answers an unknown endpoint with an OCI error, not an HTML page", async () => {
    const response = await call("/v2/app/nothing-here");
    await expectError(response, 404, "NOT_FOUND");
    expect(response.headers.get("Docker-Distribution-API-Version")).toBe("registry/2.0");
  });
});

describe("pulling blobs", () => {
  it("serves a pushed blob with its digest, exact length and octet-stream type", async () => {
    const bytes = randomBytes(4096);
    const digest = await pushBlob("pull/blob", bytes);
    const response = await call(`/v2/pull/blob/blobs/${digest}`);
    expect(response.status).toBe(200);
    expect(response.headers.get("Docker-Content-Digest")).toBe(digest);
    expect(response.headers.get("Content-Length")).toBe("4096");
    expect(response.headers.get("Content-Type")).toBe("application/octet-stream");
    expect(await sha256(new Uint8Array(await response.arrayBuffer()))).toBe(digest);
  });

  it("answers HEAD with the headers and no body", async () => {
    const digest = await pushBlob("pull/head", "head me");
    const response = await call(`/v2/pull/head/blobs/${digest}`, { method: "HEAD" });
    expect(response.status).toBe(200);
    expect(response.headers.get("Content-Length")).toBe("7");
    expect(response.headers.get("Docker-Content-Digest")).toBe(digest);
    expect(await response.text()).toBe("");
  });

  it("serves byte ranges with 206 and refuses unsatisfiable ones with 416", async () => {
    const bytes = randomBytes(1000);
    const digest = await pushBlob("pull/range", bytes);
    const partial = await call(`/v2/pull/range/blobs/${digest}`, { headers: { Range: "bytes=100-199" } });
    expect(partial.status).toBe(206);
    expect(partial.headers.get("Content-Range")).toBe("bytes 100-199/1000");
    expect(partial.headers.get("Content-Length")).toBe("100");
    expect(new Uint8Array(await partial.arrayBuffer())).toEqual(bytes.slice(100, 200));

    const suffix = await call(`/v2/pull/range/blobs/${digest}`, { headers: { Range: "bytes=-10" } });
    expect(suffix.status).toBe(206);
    expect(new Uint8Array(await suffix.arrayBuffer())).toEqual(bytes.slice(990));

    const beyond = await call(`/v2/pull/range/blobs/${digest}`, { headers: { Range: "bytes=1000-" } });
    expect(beyond.status).toBe(416);
    expect(beyond.headers.get("Content-Range")).toBe("bytes */1000");
  });

  it("answers a matching If-None-Match with 304", async () => {
    const digest = await pushBlob("pull/etag", "cached");
    const response = await call(`/v2/pull/etag/blobs/${digest}`, { headers: { "If-None-Match": `"${digest}"` } });
    expect(response.status).toBe(304);
  });

  it("returns BLOB_UNKNOWN for a digest never pushed", async () => {
    await expectError(await call(`/v2/pull/none/blobs/${await sha256("never")}`), 404, "BLOB_UNKNOWN");
  });

  it("rejects malformed digests with DIGEST_INVALID", async () => {
    for (const digest of ["sha256:abc", "md5:d41d8cd98f00b204e9800998ecf8427e", "sha256:" + "A".repeat(64), "nodigest:"]) {
      await expectError(await call(`/v2/pull/bad/blobs/${digest}`), 400, "DIGEST_INVALID");
    }
  });
});

describe("repository isolation", () => {
  it("does not serve a blob through a repository it was never pushed or mounted into", async () => {
    const digest = await pushBlob("team-a/secret", "private bytes");
    await expectError(await call(`/v2/team-b/app/blobs/${digest}`), 404, "BLOB_UNKNOWN");
    expect((await call(`/v2/team-b/app/blobs/${digest}`, { method: "HEAD" })).status).toBe(404);
  });

  it("does not link an existing blob on the strength of its digest alone", async () => {
    const digest = await pushBlob("team-a/owner", "the real content");
    const response = await call(`/v2/team-b/thief/blobs/uploads/?digest=${digest}`, {
      method: "POST",
      body: "something else entirely",
    });
    await expectError(response, 400, "DIGEST_INVALID");
    await expectError(await call(`/v2/team-b/thief/blobs/${digest}`), 404, "BLOB_UNKNOWN");
  });

  it("links an existing blob into another repository when the pushed bytes match", async () => {
    const digest = await pushBlob("dedupe/one", "shared layer");
    await pushBlob("dedupe/two", "shared layer");
    expect(await textOf(await call(`/v2/dedupe/two/blobs/${digest}`))).toBe("shared layer");
  });
});

describe("monolithic upload (POST ?digest=)", () => {
  it("accepts a zero-length blob", async () => {
    const digest = await pushBlob("mono/empty", new Uint8Array(0));
    const response = await call(`/v2/mono/empty/blobs/${digest}`);
    expect(response.status).toBe(200);
    expect(response.headers.get("Content-Length")).toBe("0");
  });

  it("accepts sha512 digests", async () => {
    const bytes = new TextEncoder().encode("five twelve");
    const hash = new Uint8Array(await crypto.subtle.digest("SHA-512", bytes));
    const digest = `sha512:${[...hash].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
    const response = await call(`/v2/mono/sha512/blobs/uploads/?digest=${digest}`, { method: "POST", body: bytes });
    expect(response.status).toBe(201);
    expect(await textOf(await call(`/v2/mono/sha512/blobs/${digest}`))).toBe("five twelve");
  });

  it("rejects a wrong digest and stores nothing", async () => {
    const digest = await sha256("expected");
    await expectError(
      await call(`/v2/mono/wrong/blobs/uploads/?digest=${digest}`, { method: "POST", body: "actual" }),
      400,
      "DIGEST_INVALID",
    );
    await expectError(await call(`/v2/mono/wrong/blobs/${digest}`), 404, "BLOB_UNKNOWN");
  });

  it("refuses a body over the configured limit with 413 and a hint to upload in chunks", async () => {
    const response = await call(`/v2/mono/big/blobs/uploads/?digest=${await sha256("x")}`, {
      method: "POST",
      headers: { "Content-Length": String(13 * 1024 * 1024) },
      body: "x",
    });
    const body = await expectError(response, 413, "REQUEST_TOO_LARGE");
    expect(body.errors[0]!.message).toMatch(/chunks/);
  });
});

describe("deleting blobs", () => {
  it("unlinks the blob from the repository: 202, then 404", async () => {
    const digest = await pushBlob("delete/blob", "to delete");
    await pushBlob("delete/other", "to delete");
    expect((await call(`/v2/delete/blob/blobs/${digest}`, { method: "DELETE" })).status).toBe(202);
    await expectError(await call(`/v2/delete/blob/blobs/${digest}`), 404, "BLOB_UNKNOWN");
    await expectError(await call(`/v2/delete/blob/blobs/${digest}`, { method: "DELETE" }), 404, "BLOB_UNKNOWN");
    // Still there for the repository that also holds it.
    expect((await call(`/v2/delete/other/blobs/${digest}`)).status).toBe(200);
  });
});
