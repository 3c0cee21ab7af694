// The authorization oracle, shared by test/workers and test/e2e: seeds a private and a public image, warms every
// cache with the private content as the admin, then sends generated requests from callers that may not read the
// private repository. Each request is built twice from the same template: once aimed at the private content and once
// at an absent counterpart. For every pair the oracle demands that no private byte or digest comes back, that both
// answers have the same status and error code (no existence oracle), that nothing answers 5xx, and that every OCI
// error code carries the status src/errors.ts registers for it.
//
// Runtime-neutral on purpose (Web Crypto, Headers, TextEncoder only): the Worker tests send through worker.fetch,
// the end-to-end tests through raw HTTP to `wrangler dev`.
import { ERROR_TABLE } from "../../src/errors";

// ---------------------------------------------------------------------------------------------------------------
// Transport
// ---------------------------------------------------------------------------------------------------------------

export interface SentRequest {
  method: string;
  /** The request target exactly as written (escapes, dot segments and backslashes left alone). */
  path: string;
  headers: Record<string, string>;
  body?: Uint8Array;
}

export interface Observed {
  status: number;
  headers: Headers;
  /** The body, read up to BODY_LIMIT bytes. */
  body: Uint8Array;
}

export type Send = (request: SentRequest) => Promise<Observed>;

/** Bodies are read at most this far: every private blob of the fixture is far smaller. */
export const BODY_LIMIT = 1024 * 1024;

/** Reads a body stream up to BODY_LIMIT bytes, then cancels it. */
export async function readBounded(stream: ReadableStream<Uint8Array> | null): Promise<Uint8Array> {
  if (!stream) return new Uint8Array(0);
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  while (size < BODY_LIMIT) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.byteLength;
  }
  if (size >= BODY_LIMIT) await reader.cancel().catch(() => undefined);
  const body = new Uint8Array(Math.min(size, BODY_LIMIT));
  let at = 0;
  for (const chunk of chunks) {
    const part = chunk.subarray(0, body.byteLength - at);
    body.set(part, at);
    at += part.byteLength;
  }
  return body;
}

// Every request comes from its own client address, so that the failed-authentication limit (10 a minute per client)
// never answers 429 to one half of a pair and not to the other. 198.18.0.0/15 is the benchmarking range.
let clients = 0;
function nextClient(): string {
  clients = (clients + 1) % (1 << 16);
  return `198.18.${clients >> 8}.${clients & 255}`;
}

/** Sends with a fresh client address and the given Authorization/Cookie headers. */
function sendAs(send: Send, identity: Identity | null, request: SentRequest): Promise<Observed> {
  const headers: Record<string, string> = { ...request.headers, ...identity?.headers, "CF-Connecting-IP": nextClient() };
  if (request.body) headers["Content-Length"] = String(request.body.byteLength);
  return send({ ...request, headers });
}

// ---------------------------------------------------------------------------------------------------------------
// Fixture: the private image, the public one, the attacker's repository, and the identities
// ---------------------------------------------------------------------------------------------------------------

export const PRIVATE = "secret/app";
export const ABSENT = "secret/none";
/** Anyone may pull it (PUBLIC_REPOSITORIES="public/*"). */
export const PUBLIC = "public/x";
/** The attackers' own repository: the reader may pull it, the writer pull, push and delete. */
export const ATTACKER = "other/y";
export const ATTACKER_PATTERN = "other/*";

/** What a request aims at: the private content, or its absent counterpart (same shapes, nothing stored). */
export interface Aim {
  repository: string;
  tag: string;
  manifest: string;
  blob: string;
  /** The digest referrers are asked for (the private image has one referrer). */
  subject: string;
  upload: string;
  /** A search text (the private repository's first name component, or nothing that exists). */
  query: string;
}

export type Aims = Record<"present" | "absent", Aim>;

export interface Identity {
  /** A short handle for selections. */
  key: string;
  name: string;
  /** Which requests it is meaningful for: the API reads Authorization, the web UI its session cookie. */
  family: "api" | "ui";
  headers: Record<string, string>;
}

/** A fragment whose presence in a response means a leak (unless the request itself carried it). */
interface Secret {
  what: string;
  /** As a latin1 string, so that binary bodies can be searched with indexOf. */
  text: string;
}

export interface Fixture {
  aims: Aims;
  identities: Identity[];
  /** Bytes of private blobs and manifests. */
  bytes: Secret[];
  /** Private digests (hex) and the private repository's name. */
  names: Secret[];
  /** Every private URL the admin reads to fill the caches. */
  warmPaths: string[];
  admin: Identity;
  /** The admin's web UI session (for the control cases). */
  adminSession: Identity;
}

const encoder = new TextEncoder();
const latin1 = (bytes: Uint8Array) => {
  let text = "";
  for (let at = 0; at < bytes.byteLength; at += 8192) text += String.fromCharCode(...bytes.subarray(at, at + 8192));
  return text;
};

function random(size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let at = 0; at < size; at += 65536) crypto.getRandomValues(bytes.subarray(at, Math.min(at + 65536, size)));
  return bytes;
}

const hex = (bytes: Uint8Array) => [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
const marker = (label: string) => `${label}-${hex(random(16))}`;

async function digestOf(bytes: Uint8Array): Promise<string> {
  return `sha256:${hex(new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array(bytes))))}`;
}

const basic = (password: string, user = "oracle") => `Basic ${btoa(`${user}:${password}`)}`;

async function expectStatus(response: Promise<Observed>, expected: number, what: string): Promise<Observed> {
  const observed = await response;
  if (observed.status !== expected) {
    throw new Error(`fixture: ${what} answered ${observed.status}, not ${expected}: ${new TextDecoder().decode(observed.body).slice(0, 500)}`);
  }
  return observed;
}

const json = (observed: Observed) => JSON.parse(new TextDecoder().decode(observed.body)) as Record<string, unknown>;

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";

class Seeder {
  /** `random`: bytes no other content shares, so that any 32 of them in a row identify the blob. */
  readonly blobs: { digest: string; bytes: Uint8Array; what: string; random: boolean }[] = [];
  readonly manifests: { digest: string; bytes: Uint8Array; what: string }[] = [];

  constructor(
    private readonly send: Send,
    readonly admin: Identity,
  ) {}

  request(request: SentRequest): Promise<Observed> {
    return sendAs(this.send, this.admin, request);
  }

  async blob(repository: string, bytes: Uint8Array, mediaType: string, what: string): Promise<Descriptor> {
    const digest = await digestOf(bytes);
    await expectStatus(this.request({ method: "POST", path: `/v2/${repository}/blobs/uploads/?digest=${digest}`, headers: { "Content-Type": "application/octet-stream" }, body: bytes }), 201, `push ${what}`);
    this.blobs.push({ digest, bytes, what: `${repository} ${what}`, random: what.includes("layer") });
    return { mediaType, digest, size: bytes.byteLength };
  }

  async manifest(repository: string, reference: string | null, manifest: object, what: string): Promise<Descriptor> {
    const bytes = encoder.encode(JSON.stringify(manifest));
    const digest = await digestOf(bytes);
    const path = `/v2/${repository}/manifests/${reference ?? digest}`;
    await expectStatus(this.request({ method: "PUT", path, headers: { "Content-Type": OCI_MANIFEST }, body: bytes }), 201, `push ${what}`);
    this.manifests.push({ digest, bytes, what: `${repository} ${what}` });
    return { mediaType: OCI_MANIFEST, digest, size: bytes.byteLength };
  }

  /** An image of unique bytes (its config and manifest carry random markers): nothing is shared between images. */
  async image(repository: string, tag: string, layerSizes: number[]): Promise<{ manifest: Descriptor; layers: Descriptor[]; config: Descriptor }> {
    const configBytes = encoder.encode(JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: { Labels: { "org.example.marker": marker(repository) } },
      rootfs: { type: "layers", diff_ids: [] },
    }));
    const config = await this.blob(repository, configBytes, "application/vnd.oci.image.config.v1+json", "config");
    const layers: Descriptor[] = [];
    for (const [index, size] of layerSizes.entries()) {
      layers.push(await this.blob(repository, random(size), "application/vnd.oci.image.layer.v1.tar+gzip", `layer ${index}`));
    }
    const manifest = await this.manifest(repository, tag, {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config,
      layers,
      annotations: { "org.opencontainers.image.description": marker(`${repository} image`) },
    }, `manifest ${tag}`);
    return { manifest, layers, config };
  }

  /** An SBOM-like artifact whose subject is `subject`, pushed by digest. */
  async referrer(repository: string, subject: Descriptor): Promise<Descriptor> {
    const config = await this.blob(repository, encoder.encode(JSON.stringify({ marker: marker("sbom config") })), "application/vnd.example.sbom.config+json", "referrer config");
    const layer = await this.blob(repository, random(777), "application/vnd.example.sbom.v1+json", "referrer layer");
    return this.manifest(repository, null, {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: "application/vnd.example.sbom.v1",
      config,
      layers: [layer],
      subject,
    }, "referrer manifest");
  }
}

/** The admin API answers to the admin token as a bearer. */
const adminApi = (adminToken: string): Identity => ({ key: "admin-api", name: "admin API", family: "api", headers: { Authorization: `Bearer ${adminToken}` } });

async function createAccessToken(send: Send, adminToken: string, name: string, actions: string[], extra: object = {}) {
  const response = await expectStatus(
    sendAs(send, adminApi(adminToken), {
      method: "POST",
      path: "/admin/tokens",
      headers: { "Content-Type": "application/json" },
      body: encoder.encode(JSON.stringify({ name, scopes: [{ repository: ATTACKER_PATTERN, actions }], ...extra })),
    }),
    201,
    `create access token ${name}`,
  );
  return json(response) as { id: string; token: string };
}

/** A bearer token from /token for the scopes an attacker would ask for (it gets only what it holds). */
async function bearerFrom(send: Send, password: string | null): Promise<string> {
  const scopes = [`repository:${ATTACKER}:pull,push,delete`, `repository:${PRIVATE}:pull,push,delete`, `repository:${PUBLIC}:pull`];
  const query = scopes.map((scope) => `scope=${encodeURIComponent(scope)}`).join("&");
  const identity = password === null ? null : { key: "login", name: "login", family: "api" as const, headers: { Authorization: basic(password) } };
  const response = await expectStatus(sendAs(send, identity, { method: "GET", path: `/token?${query}`, headers: {} }), 200, "GET /token");
  return (json(response) as { token: string }).token;
}

/** A web UI session for an access token: the cookie POST /login sets. */
async function sessionFor(send: Send, origin: string, password: string): Promise<string> {
  const body = encoder.encode(new URLSearchParams({ token: password, next: "/" }).toString());
  const response = await expectStatus(
    sendAs(send, null, { method: "POST", path: "/login", headers: { "Content-Type": "application/x-www-form-urlencoded", Origin: origin }, body }),
    303,
    "POST /login",
  );
  const cookie = /registry_session=([^;]+)/.exec(response.headers.get("Set-Cookie") ?? "")?.[1];
  if (!cookie) throw new Error("fixture: POST /login set no session cookie");
  return cookie;
}

/** A token whose signature no longer matches its content (one character of the signature changed). */
function forgedSignature(token: string): string {
  const at = token.lastIndexOf(".") + 10;
  return `${token.slice(0, at)}${token[at] === "A" ? "B" : "A"}${token.slice(at + 1)}`;
}

/**
 * Pushes the private image (config, two layers, manifest tagged v1, a referrer), the public image and the attackers'
 * own image; makes the attacker identities; starts a private upload session.
 */
export async function seedFixture(send: Send, options: { adminToken: string; origin: string }): Promise<Fixture> {
  const admin: Identity = { key: "admin", name: "admin", family: "api", headers: { Authorization: basic(options.adminToken, "admin") } };
  const seeder = new Seeder(send, admin);

  const secret = await seeder.image(PRIVATE, "v1", [1500, 3000]);
  const referrer = await seeder.referrer(PRIVATE, secret.manifest);
  const privateBlobs = seeder.blobs.length;
  const privateManifests = seeder.manifests.length;
  await seeder.image(PUBLIC, "latest", [1200]);
  await seeder.image(ATTACKER, "latest", [900]);
  const upload = await expectStatus(seeder.request({ method: "POST", path: `/v2/${PRIVATE}/blobs/uploads/`, headers: {} }), 202, "start a private upload");
  const uploadId = upload.headers.get("Docker-Upload-UUID");
  if (!uploadId) throw new Error("fixture: the private upload has no Docker-Upload-UUID");

  const reader = await createAccessToken(send, options.adminToken, "oracle-reader", ["pull"]);
  const writer = await createAccessToken(send, options.adminToken, "oracle-writer", ["pull", "push", "delete"]);
  const revoked = await createAccessToken(send, options.adminToken, "oracle-revoked", ["pull", "push", "delete"]);
  await expectStatus(sendAs(send, adminApi(options.adminToken), { method: "DELETE", path: `/admin/tokens/${revoked.id}`, headers: {} }), 204, "revoke a token");
  const expired = await createAccessToken(send, options.adminToken, "oracle-expired", ["pull", "push", "delete"], { expiresInDays: 1 / 86_400 });
  const readerBearer = await bearerFrom(send, reader.token);
  const identities: Identity[] = [
    { key: "anonymous", name: "anonymous", family: "api", headers: {} },
    { key: "anonymous-bearer", name: "anonymous bearer (from /token)", family: "api", headers: { Authorization: `Bearer ${await bearerFrom(send, null)}` } },
    { key: "reader-bearer", name: `bearer of a pull-only token on ${ATTACKER_PATTERN}`, family: "api", headers: { Authorization: `Bearer ${readerBearer}` } },
    { key: "writer-basic", name: `Basic with a push token on ${ATTACKER_PATTERN}`, family: "api", headers: { Authorization: basic(writer.token) } },
    { key: "writer-bearer", name: `bearer of a push token on ${ATTACKER_PATTERN}`, family: "api", headers: { Authorization: `Bearer ${await bearerFrom(send, writer.token)}` } },
    { key: "revoked-basic", name: "Basic with a revoked token", family: "api", headers: { Authorization: basic(revoked.token) } },
    { key: "expired-basic", name: "Basic with an expired token", family: "api", headers: { Authorization: basic(expired.token) } },
    { key: "forged-bearer", name: "bearer with a forged signature", family: "api", headers: { Authorization: `Bearer ${forgedSignature(readerBearer)}` } },
    { key: "garbage-bearer", name: "bearer of garbage", family: "api", headers: { Authorization: "Bearer garbage.not-a.jwt" } },
    { key: "visitor", name: "web visitor without a session", family: "ui", headers: {} },
    { key: "writer-session", name: `web session of a push token on ${ATTACKER_PATTERN}`, family: "ui", headers: { Cookie: `registry_session=${await sessionFor(send, options.origin, writer.token)}` } },
    // A bearer token is no session (another audience), and a session cookie of garbage is no session either.
    { key: "bearer-as-session", name: "web session cookie that is a bearer token", family: "ui", headers: { Cookie: `registry_session=${readerBearer}` } },
    { key: "garbage-session", name: "web session cookie of garbage", family: "ui", headers: { Cookie: "registry_session=garbage" } },
    // The web UI reads no Authorization header: a writer's Basic credentials there change nothing.
    { key: "visitor-with-basic", name: `web visitor sending Basic of a push token on ${ATTACKER_PATTERN}`, family: "ui", headers: { Authorization: basic(writer.token) } },
  ];

  const absentDigest = async (label: string) => digestOf(encoder.encode(marker(`never pushed ${label}`)));
  const aims: Aims = {
    present: {
      repository: PRIVATE,
      tag: "v1",
      manifest: secret.manifest.digest,
      blob: secret.layers[0]!.digest,
      subject: secret.manifest.digest,
      upload: uploadId,
      query: "secret",
    },
    absent: {
      repository: ABSENT,
      tag: "nope",
      manifest: await absentDigest("manifest"),
      blob: await absentDigest("blob"),
      subject: await absentDigest("subject"),
      upload: crypto.randomUUID(),
      query: "hidden",
    },
  };

  // A leak is 32 bytes in a row of a private layer (its start, middle or end: a Range answer is caught too), the
  // random marker inside a private config or manifest (their JSON is otherwise like any other's), a private digest,
  // or the private repository's name.
  const bytes: Secret[] = [];
  for (const item of [...seeder.blobs.slice(0, privateBlobs), ...seeder.manifests.slice(0, privateManifests)]) {
    const text = latin1(item.bytes);
    if ("random" in item && item.random) {
      const middle = Math.floor(text.length / 2) - 16;
      for (const [where, window] of [["start", text.slice(0, 32)], ["middle", text.slice(middle, middle + 32)], ["end", text.slice(-32)]] as const) {
        bytes.push({ what: `bytes of ${item.what} (${where})`, text: window });
      }
    }
    for (const found of text.matchAll(/[a-z ]+-[0-9a-f]{32}/g)) bytes.push({ what: `the marker in ${item.what}`, text: found[0] });
  }
  const names: Secret[] = [
    ...seeder.blobs.slice(0, privateBlobs).map((item) => ({ what: `digest of ${item.what}`, text: item.digest.slice("sha256:".length) })),
    ...seeder.manifests.slice(0, privateManifests).map((item) => ({ what: `digest of ${item.what}`, text: item.digest.slice("sha256:".length) })),
    { what: "the private repository's name", text: PRIVATE },
  ];

  const warmPaths = [
    ...seeder.blobs.slice(0, privateBlobs).map((item) => `/v2/${PRIVATE}/blobs/${item.digest}`),
    `/v2/${PRIVATE}/manifests/v1`,
    ...seeder.manifests.slice(0, privateManifests).map((item) => `/v2/${PRIVATE}/manifests/${item.digest}`),
    `/v2/${PRIVATE}/tags/list`,
    `/v2/${PRIVATE}/referrers/${secret.manifest.digest}`,
    `/v2/${PRIVATE}/referrers/${referrer.digest}`,
    `/api/repositories/${PRIVATE}/tags`,
  ];
  const adminSession: Identity = { key: "admin-session", name: "admin's web session", family: "ui", headers: { Cookie: `registry_session=${await sessionFor(send, options.origin, options.adminToken)}` } };
  return { aims, identities, bytes, names, warmPaths, admin, adminSession };
}

// What each identity must be able to do on the attackers' and the public repository: an identity that is not what
// its name says (a token that did not expire, a session that did not start) would make its cases prove nothing.
const IDENTITY_EXPECTATIONS: { key: string; method: string; path: string; status: number }[] = [
  { key: "anonymous", method: "GET", path: `/v2/${PUBLIC}/tags/list`, status: 200 },
  { key: "anonymous", method: "GET", path: `/v2/${ATTACKER}/tags/list`, status: 401 },
  { key: "anonymous-bearer", method: "GET", path: `/v2/${PUBLIC}/tags/list`, status: 200 },
  { key: "anonymous-bearer", method: "GET", path: `/v2/${ATTACKER}/tags/list`, status: 401 },
  { key: "reader-bearer", method: "GET", path: `/v2/${ATTACKER}/tags/list`, status: 200 },
  { key: "reader-bearer", method: "POST", path: `/v2/${ATTACKER}/blobs/uploads/`, status: 401 },
  { key: "writer-basic", method: "POST", path: `/v2/${ATTACKER}/blobs/uploads/`, status: 202 },
  { key: "writer-bearer", method: "POST", path: `/v2/${ATTACKER}/blobs/uploads/`, status: 202 },
  { key: "revoked-basic", method: "GET", path: `/v2/${ATTACKER}/tags/list`, status: 401 },
  { key: "expired-basic", method: "GET", path: `/v2/${ATTACKER}/tags/list`, status: 401 },
  { key: "forged-bearer", method: "GET", path: `/v2/${PUBLIC}/tags/list`, status: 401 },
  { key: "garbage-bearer", method: "GET", path: `/v2/${PUBLIC}/tags/list`, status: 401 },
  { key: "visitor", method: "GET", path: `/r/${PUBLIC}`, status: 200 },
  { key: "visitor", method: "GET", path: `/r/${ATTACKER}`, status: 404 },
  { key: "writer-session", method: "GET", path: `/r/${ATTACKER}`, status: 200 },
  { key: "bearer-as-session", method: "GET", path: `/r/${ATTACKER}`, status: 404 },
  { key: "garbage-session", method: "GET", path: `/r/${ATTACKER}`, status: 404 },
  { key: "visitor-with-basic", method: "GET", path: `/r/${ATTACKER}`, status: 404 },
  { key: "admin-session", method: "GET", path: `/r/${PRIVATE}`, status: 200 },
];

/** The identities that do not behave as their names say (see IDENTITY_EXPECTATIONS); each must be listed there. */
export async function misbehavingIdentities(send: Send, fixture: Fixture): Promise<string[]> {
  const wrong: string[] = [];
  for (const identity of [...fixture.identities, fixture.adminSession]) {
    const expectations = IDENTITY_EXPECTATIONS.filter((e) => e.key === identity.key);
    if (expectations.length === 0) wrong.push(`${identity.key}: no expectation says what it may do`);
    for (const e of expectations) {
      const observed = await sendAs(send, identity, { method: e.method, path: e.path, headers: {} });
      if (observed.status !== e.status) wrong.push(`${identity.name}: ${e.method} ${e.path} answered ${observed.status}, not ${e.status}`);
    }
  }
  return wrong;
}

/**
 * Reads every private URL as the admin (GET twice, then HEAD), so that the Cache API and the isolate's memory hold
 * the private content. Returns how many second GETs the edge cache answered (for the report only: a registry that
 * stops caching must still pass).
 */
export async function warmCaches(send: Send, fixture: Fixture): Promise<{ paths: number; hits: number }> {
  let hits = 0;
  for (const path of fixture.warmPaths) {
    await expectStatus(sendAs(send, fixture.admin, { method: "GET", path, headers: {} }), 200, `admin GET ${path}`);
    const again = await sendAs(send, fixture.admin, { method: "GET", path, headers: {} });
    if (again.headers.get("X-Edge-Cache") === "hit") hits += 1;
    await sendAs(send, fixture.admin, { method: "HEAD", path, headers: {} });
  }
  return { paths: fixture.warmPaths.length, hits };
}

// ---------------------------------------------------------------------------------------------------------------
// Encodings: the spellings of a way from one path part toward the private target
// ---------------------------------------------------------------------------------------------------------------

export interface Encoding {
  name: string;
  /** No traversal: the part names the aim directly (with `suffix`), e.g. a private digest under a public name. */
  direct?: true;
  /** Path separator and parent segment; arrays alternate along the path (mixed spellings). */
  sep?: string | string[];
  up?: string | string[];
  /** Appended to the target (trailing dots, slashes, NULs, path parameters). */
  suffix?: string;
  /** "key": toward <repository>/<kind>/<reference> (the cache keys); "url": toward v2/<repository>/<kind>/... */
  shape?: "key" | "url";
}

export const ENCODINGS: Encoding[] = [
  { name: "direct", direct: true },
  { name: "direct, trailing dot", direct: true, suffix: "." },
  { name: "direct, trailing %2F", direct: true, suffix: "%2F" },
  { name: "direct, trailing slash", direct: true, suffix: "/" },
  { name: "direct, %00 appended", direct: true, suffix: "%00" },
  { name: "direct, ;param appended", direct: true, suffix: ";x=1" },
  { name: "%2F and ..", sep: "%2F", up: ".." },
  { name: "%2f and ..", sep: "%2f", up: ".." },
  { name: "%2F and %2e%2e", sep: "%2F", up: "%2e%2e" },
  { name: "%2F and %2E.", sep: "%2F", up: "%2E." },
  { name: "%2F and .%2e", sep: "%2F", up: ".%2e" },
  { name: "mixed-case %2F/%2f and %2E%2e/%2e%2E", sep: ["%2F", "%2f"], up: ["%2E%2e", "%2e%2E"] },
  { name: "%252F and .. (double-encoded)", sep: "%252F", up: ".." },
  { name: "%252F and %252e%252e (double-encoded)", sep: "%252F", up: "%252e%252e" },
  { name: "%5C (backslash) and ..", sep: "%5C", up: ".." },
  { name: "%5c and %2e%2e", sep: "%5c", up: "%2e%2e" },
  { name: "raw backslash and ..", sep: "\\", up: ".." },
  { name: "raw / and ..", sep: "/", up: ".." },
  { name: "raw / and %2e%2e", sep: "/", up: "%2e%2e" },
  { name: "%2F%2F (double slashes) and ..", sep: "%2F%2F", up: ".." },
  { name: "raw // (double slashes) and ..", sep: "//", up: ".." },
  { name: "%2F.%2F (dot segments) and ..", sep: "%2F.%2F", up: ".." },
  { name: "%2F and ..%00", sep: "%2F", up: "..%00" },
  { name: "%2F and ..; (path parameter)", sep: "%2F", up: "..;" },
  { name: "%2F and .. with a trailing dot", sep: "%2F", up: "..", suffix: "." },
  { name: "%2F and .. with a trailing %2F", sep: "%2F", up: "..", suffix: "%2F" },
  { name: "%C0%AF (overlong /) and ..", sep: "%C0%AF", up: ".." },
  { name: "%2F and .. toward the request URL (v2/…)", sep: "%2F", up: "..", shape: "url" },
];

const pick = (spelling: string | string[], index: number) => (Array.isArray(spelling) ? spelling[index % spelling.length]! : spelling);

/** `segments` joined with the encoding's separator, each separator and parent segment spelled in turn. */
function spell(encoding: Encoding, start: string, ups: number, segments: string[]): string {
  let text = start;
  let separators = 0;
  const sep = () => pick(encoding.sep!, separators++);
  for (let up = 0; up < ups; up++) text += sep() + pick(encoding.up!, up);
  for (const segment of segments) text += sep() + segment;
  return text + (encoding.suffix ?? "");
}

// More parent segments than any key or URL is deep: extra ones stop at the root.
const UPS = 6;

/** The repository part of a path: the aim's name, or a walk from the carrier's name to it. */
function namePart(encoding: Encoding, carrier: string, aim: Aim): string {
  if (encoding.direct) return aim.repository + (encoding.suffix ?? "");
  return spell(encoding, carrier, 2, aim.repository.split("/"));
}

/** A reference, digest or upload id part: the aim's value, or a walk from `start` to the aim's own path. */
function referencePart(encoding: Encoding, start: string, aim: Aim, kind: string, value: string): string {
  if (encoding.direct) return value + (encoding.suffix ?? "");
  const target = [...(encoding.shape === "url" ? ["v2"] : []), ...aim.repository.split("/"), ...kind.split("/"), value];
  return spell(encoding, start, UPS, target);
}

// ---------------------------------------------------------------------------------------------------------------
// Routes: every endpoint of the registry API, the search API and the web UI, with the parts a traversal can go in
// ---------------------------------------------------------------------------------------------------------------

/** Which path part carries the encoding: the repository name, or the reference/digest/upload id. */
export type Placement = "name" | "reference";

export interface Parts {
  /** The repository in front of the traversal. */
  carrier: string;
  name: string;
  reference: string;
  /** An upload session of the carrier repository, started for this request (routes that need one). */
  ownUpload?: string;
}

export interface Route {
  area: Area;
  name: string;
  method: string;
  family: "api" | "ui";
  placements: Placement[];
  /** Which carriers (repositories in front of the traversal) make sense. */
  carriers: string[];
  /** The aim's value the reference part names, and the key kind a walk goes through. */
  reference?: { kind: string; start: string; value: (aim: Aim) => string };
  /** The name part is a source (mount's `from`): aimed directly at the aim's repository when the reference walks. */
  nameIsSource?: true;
  /** An upload session the request needs, started by the admin in the carrier repository. */
  needsOwnUpload?: true;
  build(parts: Parts, aim: Aim): { path: string; headers?: Record<string, string>; body?: Uint8Array };
}

export type Area = "blobs" | "manifests" | "tags" | "referrers" | "blob uploads" | "catalog" | "search API" | "web UI";

const READERS = [PUBLIC, ATTACKER];
// Writes are tried where the writer may write (nobody may write public/x: those are refused before any lookup).
const WRITERS = [ATTACKER];
const blob = { kind: "blobs", start: "sha256:0", value: (aim: Aim) => aim.blob };
const byTag = { kind: "manifests", start: "latest", value: (aim: Aim) => aim.tag };
const byDigest = { kind: "manifests", start: "sha256:0", value: (aim: Aim) => aim.manifest };
const upload = { kind: "blobs/uploads", start: "0", value: (aim: Aim) => aim.upload };
const chunk = encoder.encode("chunk");

export const ROUTES: Route[] = [
  // OCI dist-spec end-2 and end-10
  { area: "blobs", name: "GET blob", method: "GET", family: "api", placements: ["name", "reference"], carriers: READERS, reference: blob, build: (p) => ({ path: `/v2/${p.name}/blobs/${p.reference}` }) },
  { area: "blobs", name: "HEAD blob", method: "HEAD", family: "api", placements: ["name", "reference"], carriers: READERS, reference: blob, build: (p) => ({ path: `/v2/${p.name}/blobs/${p.reference}` }) },
  { area: "blobs", name: "GET blob with Range", method: "GET", family: "api", placements: ["name", "reference"], carriers: READERS, reference: blob, build: (p) => ({ path: `/v2/${p.name}/blobs/${p.reference}`, headers: { Range: "bytes=0-99" } }) },
  { area: "blobs", name: "DELETE blob", method: "DELETE", family: "api", placements: ["name", "reference"], carriers: WRITERS, reference: blob, build: (p) => ({ path: `/v2/${p.name}/blobs/${p.reference}` }) },
  // end-3 and end-9
  { area: "manifests", name: "GET manifest by tag", method: "GET", family: "api", placements: ["name", "reference"], carriers: READERS, reference: byTag, build: (p) => ({ path: `/v2/${p.name}/manifests/${p.reference}`, headers: { Accept: OCI_MANIFEST } }) },
  { area: "manifests", name: "HEAD manifest by tag", method: "HEAD", family: "api", placements: ["name", "reference"], carriers: READERS, reference: byTag, build: (p) => ({ path: `/v2/${p.name}/manifests/${p.reference}` }) },
  { area: "manifests", name: "GET manifest by digest", method: "GET", family: "api", placements: ["name", "reference"], carriers: READERS, reference: byDigest, build: (p) => ({ path: `/v2/${p.name}/manifests/${p.reference}` }) },
  { area: "manifests", name: "HEAD manifest by digest", method: "HEAD", family: "api", placements: ["name", "reference"], carriers: READERS, reference: byDigest, build: (p) => ({ path: `/v2/${p.name}/manifests/${p.reference}` }) },
  { area: "manifests", name: "GET manifest by digest with If-None-Match", method: "GET", family: "api", placements: ["name", "reference"], carriers: READERS, reference: byDigest, build: (p, aim) => ({ path: `/v2/${p.name}/manifests/${p.reference}`, headers: { "If-None-Match": `"${aim.manifest}"` } }) },
  { area: "manifests", name: "DELETE manifest by tag", method: "DELETE", family: "api", placements: ["name", "reference"], carriers: WRITERS, reference: byTag, build: (p) => ({ path: `/v2/${p.name}/manifests/${p.reference}` }) },
  { area: "manifests", name: "DELETE manifest by digest", method: "DELETE", family: "api", placements: ["name", "reference"], carriers: WRITERS, reference: byDigest, build: (p) => ({ path: `/v2/${p.name}/manifests/${p.reference}` }) },
  // end-8
  { area: "tags", name: "GET tags/list", method: "GET", family: "api", placements: ["name"], carriers: READERS, build: (p) => ({ path: `/v2/${p.name}/tags/list` }) },
  // end-12
  { area: "referrers", name: "GET referrers", method: "GET", family: "api", placements: ["name", "reference"], carriers: READERS, reference: { kind: "referrers", start: "sha256:0", value: (aim) => aim.subject }, build: (p) => ({ path: `/v2/${p.name}/referrers/${p.reference}` }) },
  // end-11 (mount: the traversal goes in `from` or in `mount`), end-4b (monolithic), end-6 (finishing one's own session)
  { area: "blob uploads", name: "POST mount from the aim", method: "POST", family: "api", placements: ["name", "reference"], carriers: WRITERS, reference: blob, nameIsSource: true, build: (p) => ({ path: `/v2/${p.carrier}/blobs/uploads/?mount=${p.reference}&from=${p.name}` }) },
  { area: "blob uploads", name: "POST monolithic upload naming the aim's digest", method: "POST", family: "api", placements: ["reference"], carriers: WRITERS, reference: blob, build: (p) => ({ path: `/v2/${p.name}/blobs/uploads/?digest=${p.reference}`, body: chunk }) },
  { area: "blob uploads", name: "PUT one's own upload with the aim's digest and no bytes", method: "PUT", family: "api", placements: ["reference"], carriers: WRITERS, reference: blob, needsOwnUpload: true, build: (p) => ({ path: `/v2/${p.name}/blobs/uploads/${p.ownUpload}?digest=${p.reference}` }) },
  // end-13, end-5, end-6 and DELETE on the aim's upload session
  { area: "blob uploads", name: "GET upload status", method: "GET", family: "api", placements: ["name", "reference"], carriers: WRITERS, reference: upload, build: (p) => ({ path: `/v2/${p.name}/blobs/uploads/${p.reference}` }) },
  { area: "blob uploads", name: "PATCH upload", method: "PATCH", family: "api", placements: ["name", "reference"], carriers: WRITERS, reference: upload, build: (p) => ({ path: `/v2/${p.name}/blobs/uploads/${p.reference}`, headers: { "Content-Type": "application/octet-stream" }, body: chunk }) },
  { area: "blob uploads", name: "PUT upload", method: "PUT", family: "api", placements: ["name", "reference"], carriers: WRITERS, reference: upload, build: (p, aim) => ({ path: `/v2/${p.name}/blobs/uploads/${p.reference}?digest=${aim.blob}` }) },
  { area: "blob uploads", name: "DELETE upload", method: "DELETE", family: "api", placements: ["name", "reference"], carriers: WRITERS, reference: upload, build: (p) => ({ path: `/v2/${p.name}/blobs/uploads/${p.reference}` }) },
  // The catalog lists what the caller may pull: the private name must never show.
  { area: "catalog", name: "GET _catalog", method: "GET", family: "api", placements: ["reference"], carriers: [PUBLIC], build: () => ({ path: "/v2/_catalog?n=1000" }) },
  { area: "catalog", name: "GET _catalog after a name", method: "GET", family: "api", placements: ["reference"], carriers: [PUBLIC], build: () => ({ path: "/v2/_catalog?n=10&last=secret" }) },
  // README "Web UI and search"
  { area: "search API", name: "GET /api/search", method: "GET", family: "api", placements: ["reference"], carriers: [PUBLIC], build: (_p, aim) => ({ path: `/api/search?q=${aim.query}` }) },
  { area: "search API", name: "GET /api/repositories/<name>/tags", method: "GET", family: "api", placements: ["name"], carriers: READERS, build: (p) => ({ path: `/api/repositories/${p.name}/tags` }) },
  { area: "web UI", name: "GET / with a search", method: "GET", family: "ui", placements: ["reference"], carriers: [PUBLIC], build: (_p, aim) => ({ path: `/?q=${aim.query}` }) },
  { area: "web UI", name: "GET repository page", method: "GET", family: "ui", placements: ["name"], carriers: READERS, build: (p) => ({ path: `/r/${p.name}` }) },
  { area: "web UI", name: "GET tag page", method: "GET", family: "ui", placements: ["name", "reference"], carriers: READERS, reference: { ...byTag, kind: "-/tags" }, build: (p) => ({ path: `/r/${p.name}/-/tags/${p.reference}` }) },
  { area: "web UI", name: "GET digest page", method: "GET", family: "ui", placements: ["name", "reference"], carriers: READERS, reference: { ...byDigest, kind: "-/manifests" }, build: (p) => ({ path: `/r/${p.name}/-/manifests/${p.reference}` }) },
  { area: "web UI", name: "GET delete-tag page", method: "GET", family: "ui", placements: ["name", "reference"], carriers: READERS, reference: { ...byTag, kind: "-/tags" }, build: (p) => ({ path: `/r/${p.name}/-/tags/${p.reference}/delete` }) },
];

/** Routes without a path part to carry a traversal are sent once per identity (the direct encoding). */
const takesEncodings = (route: Route, placement: Placement) => placement === "name" || route.reference !== undefined;

// ---------------------------------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------------------------------

export interface Case {
  route: Route;
  identity: Identity;
  encoding: Encoding;
  placement: Placement;
  carrier: string;
}

export interface Selection {
  encodings?: (encoding: Encoding) => boolean;
  identities?: (identity: Identity) => boolean;
  /** Keep only the first carrier of each route. */
  oneCarrier?: boolean;
  routes?: (route: Route) => boolean;
}

/** The cartesian product of routes x placements x encodings x carriers x identities (each case is sent twice). */
export function generateCases(area: Area, identities: Identity[], selection: Selection = {}): Case[] {
  const cases: Case[] = [];
  for (const route of ROUTES.filter((r) => r.area === area && (selection.routes?.(r) ?? true))) {
    const carriers = selection.oneCarrier ? route.carriers.slice(0, 1) : route.carriers;
    for (const placement of route.placements) {
      const encodings = takesEncodings(route, placement) ? ENCODINGS.filter((e) => selection.encodings?.(e) ?? true) : [ENCODINGS[0]!];
      for (const encoding of encodings) {
        for (const carrier of carriers) {
          for (const identity of identities) {
            if (identity.family !== route.family || !(selection.identities?.(identity) ?? true)) continue;
            cases.push({ route, identity, encoding, placement, carrier });
          }
        }
      }
    }
  }
  return cases;
}

/** The request of a case aimed at one aim. */
export function requestFor(c: Case, aim: Aim, ownUpload?: string): SentRequest {
  const { route, encoding, placement, carrier } = c;
  const parts: Parts = {
    carrier,
    name: placement === "name" ? namePart(encoding, carrier, aim) : route.nameIsSource ? aim.repository : carrier,
    reference: route.reference
      ? placement === "reference"
        ? referencePart(encoding, route.reference.start, aim, route.reference.kind, route.reference.value(aim))
        : route.reference.value(aim)
      : "",
    ...(ownUpload !== undefined && { ownUpload }),
  };
  const built = route.build(parts, aim);
  return { method: route.method, path: built.path, headers: built.headers ?? {}, ...(built.body && { body: built.body }) };
}

/**
 * The control: the admin, who may read secret/app, sends the direct read of every GET and HEAD route. The oracle
 * must flag each of them (private bytes or names come back, or the private content answers unlike the absent one);
 * a case it does not flag means the oracle could not see a leak on that route.
 */
export function controlCases(fixture: Fixture): Case[] {
  const direct = ENCODINGS[0]!;
  return ROUTES.filter((route) => route.method === "GET" || route.method === "HEAD").map((route) => ({
    route,
    identity: route.family === "api" ? fixture.admin : fixture.adminSession,
    encoding: direct,
    placement: route.placements.includes("name") ? "name" : "reference",
    carrier: route.carriers[0]!,
  }));
}

export const describeCase = (c: Case) =>
  `${c.route.name} | ${c.identity.name} | ${c.encoding.name} in the ${c.placement}${c.route.reference || c.placement === "name" ? ` (behind ${c.carrier})` : ""}`;

// ---------------------------------------------------------------------------------------------------------------
// The oracle
// ---------------------------------------------------------------------------------------------------------------

const percentDecoded = (text: string) => text.replace(/%([0-9a-f]{2})/gi, (_all, code: string) => String.fromCharCode(parseInt(code, 16)));

/** Everything the request itself said (raw, decoded once and twice): a secret it carried is not leaked by an echo. */
function requestText(request: SentRequest): string {
  const once = percentDecoded(request.path);
  return [request.path, once, percentDecoded(once)].join("\n").replaceAll("\\", "/").toLowerCase();
}

function errorCodeOf(observed: Observed): string | null {
  if (!(observed.headers.get("Content-Type") ?? "").includes("json") || observed.body.byteLength === 0) return null;
  try {
    const body = JSON.parse(new TextDecoder().decode(observed.body)) as { errors?: { code?: unknown }[] };
    return typeof body.errors?.[0]?.code === "string" ? body.errors[0].code : null;
  } catch {
    return null;
  }
}

/** What is wrong with one answer on its own: leaked bytes or names, a 5xx, an error code with another status. */
function problemsOf(fixture: Fixture, request: SentRequest, observed: Observed): string[] {
  const problems: string[] = [];
  if (observed.status >= 500) problems.push(`answered ${observed.status}`);
  const body = latin1(observed.body);
  for (const secret of fixture.bytes) {
    if (body.includes(secret.text)) problems.push(`the body holds ${secret.what}`);
  }
  const asked = requestText(request);
  const headers = [...observed.headers].map(([name, value]) => `${name}: ${value}`).join("\n");
  for (const secret of fixture.names) {
    if (asked.includes(secret.text)) continue;
    if (body.includes(secret.text)) problems.push(`the body names ${secret.what}`);
    if (headers.includes(secret.text)) problems.push(`a header names ${secret.what}`);
  }
  const code = errorCodeOf(observed);
  if (code !== null) {
    const registered = (ERROR_TABLE as Record<string, { status: number }>)[code];
    if (!registered) problems.push(`error code ${code} is not in ERROR_TABLE`);
    else if (registered.status !== observed.status) problems.push(`error code ${code} is registered as ${registered.status}, answered ${observed.status}`);
  }
  return [...new Set(problems)];
}

export interface Failure {
  case: Case;
  /** The case, what is wrong, and both requests with their answers. */
  text: string;
}

export interface Outcome {
  cases: number;
  requests: number;
  failures: Failure[];
  /** Cases not started before the deadline. */
  skipped: number;
}

const line = (request: SentRequest, observed: Observed) =>
  `${request.method} ${request.path} -> ${observed.status}${errorCodeOf(observed) ? ` ${errorCodeOf(observed)}` : ""}${observed.headers.get("X-Edge-Cache") ? ` (edge cache ${observed.headers.get("X-Edge-Cache")})` : ""}`;

/** Sends one case at both aims and returns what the oracle finds wrong. */
export async function judge(send: Send, fixture: Fixture, c: Case): Promise<Failure | null> {
  const sent: { request: SentRequest; observed: Observed }[] = [];
  for (const aim of [fixture.aims.present, fixture.aims.absent]) {
    let ownUpload: string | undefined;
    if (c.route.needsOwnUpload) {
      const started = await sendAs(send, fixture.admin, { method: "POST", path: `/v2/${c.carrier}/blobs/uploads/`, headers: {} });
      ownUpload = started.headers.get("Docker-Upload-UUID") ?? "missing";
    }
    const request = requestFor(c, aim, ownUpload);
    const observed = await sendAs(send, c.identity, request).catch((error: Error) => ({
      status: 599,
      headers: new Headers({ "X-Oracle-Error": String(error.message ?? error).slice(0, 200) }),
      body: new Uint8Array(0),
    }));
    sent.push({ request, observed });
  }
  const [present, absent] = sent as [(typeof sent)[0], (typeof sent)[0]];
  const problems = [
    ...problemsOf(fixture, present.request, present.observed).map((problem) => `aimed at the private content, ${problem}`),
    ...problemsOf(fixture, absent.request, absent.observed).map((problem) => `aimed at the absent counterpart, ${problem}`),
  ];
  if (present.observed.status !== absent.observed.status) problems.push(`the private content answers ${present.observed.status}, the absent one ${absent.observed.status}`);
  else if (errorCodeOf(present.observed) !== errorCodeOf(absent.observed)) problems.push(`the private content answers ${errorCodeOf(present.observed)}, the absent one ${errorCodeOf(absent.observed)}`);
  if (problems.length === 0) return null;
  return {
    case: c,
    text: `${describeCase(c)}\n    ${problems.join("\n    ")}\n    present: ${line(present.request, present.observed)}\n    absent:  ${line(absent.request, absent.observed)}`,
  };
}

export interface RunOptions {
  concurrency: number;
  /** Stop starting cases after this time (epoch ms); what did not run is reported as a failure. */
  deadline?: number;
  /** Fill the caches again this often (a tag's copy lives TAG_CACHE_SECONDS). */
  rewarmEveryMs?: number;
}

/** Runs the cases a few at a time (each pair in order) and collects every failure. */
export async function runCases(send: Send, fixture: Fixture, cases: Case[], options: RunOptions): Promise<Outcome> {
  const failures: Failure[] = [];
  let next = 0;
  let skipped = 0;
  let warmedAt = Date.now();
  let warming: Promise<unknown> | null = null;
  const worker = async () => {
    while (next < cases.length) {
      if (options.deadline !== undefined && Date.now() > options.deadline) {
        skipped = cases.length - next;
        next = cases.length;
        return;
      }
      if (options.rewarmEveryMs !== undefined && Date.now() - warmedAt > options.rewarmEveryMs) {
        warmedAt = Date.now();
        warming = warmCaches(send, fixture);
      }
      if (warming) await warming;
      const failure = await judge(send, fixture, cases[next++]!);
      if (failure) failures.push(failure);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  return { cases: cases.length - skipped, requests: 2 * (cases.length - skipped), failures, skipped };
}

function tally(failures: Failure[], key: (c: Case) => string): string {
  const counts = new Map<string, number>();
  for (const failure of failures) counts.set(key(failure.case), (counts.get(key(failure.case)) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1]).map(([name, count]) => `    ${count} x ${name}`).join("\n");
}

/**
 * The assertion message: how many failed, by route, encoding and identity, then 20 of them, one per route and
 * encoding first so that one broad hole does not hide the others.
 */
export function report(area: string, outcome: Outcome): string {
  const { failures } = outcome;
  if (failures.length === 0 && outcome.skipped === 0) return "";
  const seen = new Set<string>();
  const varied = failures.filter((f) => {
    const key = `${f.case.route.name}|${f.case.encoding.name}|${f.case.placement}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  const first = [...varied, ...failures.filter((f) => !varied.includes(f))].slice(0, 20);
  return [
    `${failures.length} of ${outcome.cases} ${area} cases failed the authorization oracle${outcome.skipped ? ` (${outcome.skipped} more did not run before the deadline)` : ""}.`,
    `  by route and placement:\n${tally(failures, (c) => `${c.route.name}, traversal in the ${c.placement}`)}`,
    `  by encoding:\n${tally(failures, (c) => c.encoding.name)}`,
    `  by identity:\n${tally(failures, (c) => c.identity.name)}`,
    `  the first 20:\n\n${first.map((f) => f.text).join("\n\n")}`,
  ].join("\n") + "\n";
}

/** Runs the control cases; returns those the oracle did not flag (each should have been). */
export async function unflaggedControls(send: Send, fixture: Fixture): Promise<string[]> {
  const unflagged: string[] = [];
  for (const c of controlCases(fixture)) {
    if ((await judge(send, fixture, c)) === null) unflagged.push(describeCase(c));
  }
  return unflagged;
}
