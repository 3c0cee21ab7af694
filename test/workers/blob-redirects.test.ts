import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import worker from "../../src/index";
import { ORIGIN, pushBlob, randomBytes } from "./helpers";

const PRESIGNED = {
  BLOB_REDIRECT: "presigned",
  BLOB_REDIRECT_MIN_BYTES: "10000",
  R2_S3_ENDPOINT: "https://0123456789abcdef.r2.cloudflarestorage.com",
  R2_BUCKET_NAME: "registry-blobs",
  R2_ACCESS_KEY_ID: "AKIDEXAMPLE0123456789",
  R2_SECRET_ACCESS_KEY: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
};

async function send(vars: Record<string, string>, path: string, init: RequestInit = {}) {
  const ctx = createExecutionContext();
  const response = await worker.fetch(new Request(`${ORIGIN}${path}`, init), { ...env, ...vars } as typeof env, ctx);
  const body = await response.arrayBuffer();
  await waitOnExecutionContext(ctx);
  return { response, body };
}

const hex = (bytes: ArrayBuffer) => [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");

async function hmac(key: ArrayBuffer | Uint8Array, text: string): Promise<ArrayBuffer> {
  const imported = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return crypto.subtle.sign("HMAC", imported, new TextEncoder().encode(text));
}

/**
 * Checks a presigned GET URL by AWS Signature Version 4 as S3 (and R2) do, written from the specification
 * independently of the signing library: the canonical request over the URL's path and query, the string to sign,
 * the signing key derived from the secret, and the signature compared.
 */
async function verifyPresigned(url: URL, secret: string, now: Date): Promise<{ valid: boolean; expiresAt: Date }> {
  const query = url.searchParams;
  const [, date, region, service] = query.get("X-Amz-Credential")!.split("/");
  const stamp = query.get("X-Amz-Date")!;
  const encode = (text: string) => encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  const canonicalQuery = [...query.entries()]
    .filter(([name]) => name !== "X-Amz-Signature")
    .map(([name, value]) => [encode(name), encode(value)])
    .sort(([a], [b]) => (a! < b! ? -1 : a! > b! ? 1 : 0))
    .map(([name, value]) => `${name}=${value}`)
    .join("&");
  const canonicalRequest = ["GET", url.pathname, canonicalQuery, `host:${url.host}\n`, query.get("X-Amz-SignedHeaders"), "UNSIGNED-PAYLOAD"].join("\n");
  const scope = `${date}/${region}/${service}/aws4_request`;
  const stringToSign = ["AWS4-HMAC-SHA256", stamp, scope, hex(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(canonicalRequest)))].join("\n");
  let key = await hmac(new TextEncoder().encode(`AWS4${secret}`), date!);
  for (const part of [region!, service!, "aws4_request"]) key = await hmac(key, part);
  const signature = hex(await hmac(key, stringToSign));
  const signedAt = new Date(`${stamp.slice(0, 4)}-${stamp.slice(4, 6)}-${stamp.slice(6, 8)}T${stamp.slice(9, 11)}:${stamp.slice(11, 13)}:${stamp.slice(13, 15)}Z`);
  const expiresAt = new Date(signedAt.getTime() + Number(query.get("X-Amz-Expires")) * 1000);
  return { valid: signature === query.get("X-Amz-Signature") && Math.abs(signedAt.getTime() - now.getTime()) < 60_000, expiresAt };
}

describe("blob downloads redirected to R2 (BLOB_REDIRECT)", () => {
  it("answers a large blob's GET with a 307 to a presigned R2 URL whose signature is valid and short-lived", async () => {
    const digest = await pushBlob("redirect/app", randomBytes(20_000));
    const { response } = await send(PRESIGNED, `/v2/redirect/app/blobs/${digest}`, { headers: { Range: "bytes=0-99" } });
    expect(response.status).toBe(307);
    expect(response.headers.get("Docker-Content-Digest")).toBe(digest);
    expect(response.headers.get("Cache-Control")).toBe("no-store");
    const location = new URL(response.headers.get("Location")!);
    expect(location.origin).toBe(PRESIGNED.R2_S3_ENDPOINT);
    expect(location.pathname).toMatch(new RegExp(`^/registry-blobs/blobs/sha256/${digest.slice(7)}/[0-9a-f-]{36}$`));
    expect(location.searchParams.get("X-Amz-Algorithm")).toBe("AWS4-HMAC-SHA256");
    expect(location.searchParams.get("X-Amz-Credential")).toMatch(/^AKIDEXAMPLE0123456789\/\d{8}\/auto\/s3\/aws4_request$/);
    expect(location.searchParams.get("X-Amz-SignedHeaders")).toBe("host");
    const { valid, expiresAt } = await verifyPresigned(location, PRESIGNED.R2_SECRET_ACCESS_KEY, new Date());
    expect(valid).toBe(true);
    expect(expiresAt.getTime() - Date.now()).toBeLessThanOrEqual(600_000);
    // A URL signed with another secret does not pass the same check.
    expect((await verifyPresigned(location, "another secret", new Date())).valid).toBe(false);
  });

  it("streams small blobs and answers HEAD itself", async () => {
    const small = await pushBlob("redirect/app", randomBytes(5_000));
    const direct = await send(PRESIGNED, `/v2/redirect/app/blobs/${small}`);
    expect(direct.response.status).toBe(200);
    expect(direct.body.byteLength).toBe(5_000);
    const large = await pushBlob("redirect/app", randomBytes(30_000));
    const head = await send(PRESIGNED, `/v2/redirect/app/blobs/${large}`, { method: "HEAD" });
    expect(head.response.status).toBe(200);
    expect(head.response.headers.get("Content-Length")).toBe("30000");
    // Another repository never gets a URL for a blob it does not hold.
    expect((await send(PRESIGNED, `/v2/redirect/other/blobs/${large}`)).response.status).toBe(404);
  });

  it("redirects to a public bucket URL only for public repositories", async () => {
    const publicBucket = {
      AUTH_MODE: "token",
      PUBLIC_REPOSITORIES: "open/*",
      BLOB_REDIRECT: "public",
      BLOB_PUBLIC_URL: "https://blobs.example.com/",
      BLOB_REDIRECT_MIN_BYTES: "0",
    };
    const digest = await pushBlob("open/app", randomBytes(1_000));
    const { response } = await send(publicBucket, `/v2/open/app/blobs/${digest}`);
    expect(response.status).toBe(307);
    expect(response.headers.get("Location")).toMatch(new RegExp(`^https://blobs\\.example\\.com/blobs/sha256/${digest.slice(7)}/[0-9a-f-]{36}$`));

    // A private repository's blob is streamed to its authorized callers: a public URL would outlive the token.
    const secret = await pushBlob("closed/app", randomBytes(1_000));
    const admin = { Authorization: `Basic ${btoa(`admin:${env.ADMIN_TOKEN}`)}` };
    const streamed = await send(publicBucket, `/v2/closed/app/blobs/${secret}`, { headers: admin });
    expect(streamed.response.status).toBe(200);
    expect(streamed.body.byteLength).toBe(1_000);
  });

  it("names the missing setting when a redirect mode is incomplete", async () => {
    const { R2_SECRET_ACCESS_KEY: _, ...incomplete } = PRESIGNED;
    const { response, body } = await send(incomplete, "/v2/");
    expect(response.status).toBe(500);
    expect(JSON.stringify(JSON.parse(new TextDecoder().decode(body)))).toContain("R2_SECRET_ACCESS_KEY: required when BLOB_REDIRECT is presigned");
  });
});
