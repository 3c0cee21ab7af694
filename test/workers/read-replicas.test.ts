import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import worker from "../../src/index";
import { OCI_MANIFEST, ORIGIN, pushBlob, pushImage, pushManifest, randomBytes, sha256 } from "./helpers";

interface SessionLog {
  constraint: string;
  queries: number;
}

/** A replica as it is right after a write that has not reached it yet: it knows nothing. */
function unreplicated(statement: D1PreparedStatement): D1PreparedStatement {
  const empty = {
    bind: () => empty,
    first: async () => null,
    all: async () => ({ results: [], success: true, meta: {} }),
    raw: async () => [],
    run: async () => ({ results: [], success: true, meta: {} }),
  };
  void statement;
  return empty as unknown as D1PreparedStatement;
}

/** A replica that still has an old answer to one query. */
function answering(statement: D1PreparedStatement, row: object): D1PreparedStatement {
  const stale = { bind: () => stale, first: async () => row, all: async () => ({ results: [row], success: true, meta: {} }) };
  void statement;
  return stale as unknown as D1PreparedStatement;
}

/**
 * The Worker's bindings with D1's Sessions API observed: every session opened is logged with its constraint and how
 * many queries it ran. Sessions that may read a replica ("first-unconstrained") can be made to lag.
 */
function replicatedEnv(replica: (sql: string, statement: D1PreparedStatement) => D1PreparedStatement = (_, s) => s) {
  const sessions: SessionLog[] = [];
  const DB = new Proxy(env.DB, {
    get(db, property) {
      if (property !== "withSession") return Reflect.get(db, property);
      return (constraint: string) => {
        const session = db.withSession(constraint);
        const log = { constraint, queries: 0 };
        sessions.push(log);
        const onReplica = constraint === "first-unconstrained";
        return {
          prepare(sql: string) {
            log.queries += 1;
            const statement = session.prepare(sql);
            return onReplica ? replica(sql, statement) : statement;
          },
          batch: (statements: D1PreparedStatement[]) => session.batch(statements),
          getBookmark: () => session.getBookmark(),
        };
      };
    },
  });
  // The edge cache would answer repeated reads without D1: these tests are about D1.
  return { env: { ...env, DB, EDGE_CACHE_MAX_BYTES: "0" } as typeof env, sessions };
}

async function send(testEnv: typeof env, path: string, init: RequestInit = {}) {
  const ctx = createExecutionContext();
  const response = await worker.fetch(new Request(`${ORIGIN}${path}`, init), testEnv, ctx);
  const body = new Uint8Array(await response.arrayBuffer());
  await waitOnExecutionContext(ctx);
  return { response, body };
}

describe("D1 read replicas (Sessions API)", () => {
  it("reads content by digest from a replica, and asks the primary when the replica has not seen the push yet", async () => {
    const image = await pushImage("replicas/app", [3000]);
    const manifestDigest = await pushManifest("replicas/app", "latest", image);
    const layers = image.layers;
    const caughtUp = replicatedEnv();
    expect((await send(caughtUp.env, `/v2/replicas/app/manifests/${manifestDigest}`)).response.status).toBe(200);
    // One session, on any replica: the primary was not asked.
    expect(caughtUp.sessions).toEqual([{ constraint: "first-unconstrained", queries: 1 }]);

    const lagging = replicatedEnv((_, statement) => unreplicated(statement));
    const manifest = await send(lagging.env, `/v2/replicas/app/manifests/${manifestDigest}`);
    expect(manifest.response.status).toBe(200);
    expect(await sha256(manifest.body)).toBe(manifestDigest);
    const blob = await send(lagging.env, `/v2/replicas/app/blobs/${layers[0]!.digest}`);
    expect(blob.response.status).toBe(200);
    expect(await sha256(blob.body)).toBe(layers[0]!.digest);
    expect(lagging.sessions.map((s) => s.constraint)).toEqual([
      "first-unconstrained",
      "first-primary",
      "first-unconstrained",
      "first-primary",
    ]);
    // A blob that exists nowhere is still unknown after both asked.
    const missing = await send(lagging.env, `/v2/replicas/app/blobs/${await sha256("never pushed")}`);
    expect(missing.response.status).toBe(404);
  });

  it("resolves tags where they are current: a moved tag is never read from a lagging replica", async () => {
    const manifestDigest = await pushManifest("replicas/tagged", "latest", await pushImage("replicas/tagged", [100]));
    const { env: testEnv, sessions } = replicatedEnv((_, statement) => unreplicated(statement));
    const byTag = await send(testEnv, "/v2/replicas/tagged/manifests/latest", { headers: { Accept: OCI_MANIFEST } });
    expect(byTag.response.status).toBe(200);
    expect(byTag.response.headers.get("Docker-Content-Digest")).toBe(manifestDigest);
    expect(sessions.map((s) => s.constraint)).toEqual(["first-primary"]);
    // Tag lists and referrers too.
    expect((await send(testEnv, "/v2/replicas/tagged/tags/list")).response.status).toBe(200);
    expect((await send(testEnv, `/v2/replicas/tagged/referrers/${manifestDigest}`)).response.status).toBe(200);
    expect(sessions.every((s) => s.constraint === "first-primary")).toBe(true);
  });

  it("gives every response a bookmark, and a client that sends it back reads its own writes through it", async () => {
    const { env: testEnv, sessions } = replicatedEnv();
    const config = await pushBlob("replicas/bookmarked", "{}");
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: config, size: 2 },
      layers: [],
    });
    const put = await send(testEnv, "/v2/replicas/bookmarked/manifests/v1", {
      method: "PUT",
      headers: { "Content-Type": OCI_MANIFEST },
      body: manifest,
    });
    expect(put.response.status, new TextDecoder().decode(put.body)).toBe(201);
    const bookmark = put.response.headers.get("X-D1-Bookmark");
    expect(bookmark).toMatch(/^[0-9a-f-]+$/);

    sessions.length = 0;
    const read = await send(testEnv, "/v2/replicas/bookmarked/manifests/v1", { headers: { "X-D1-Bookmark": bookmark! } });
    expect(read.response.status).toBe(200);
    expect(read.response.headers.get("Docker-Content-Digest")).toBe(await sha256(manifest));
    // Any replica that has caught up with the bookmark will do: the primary is not required.
    expect(sessions.map((s) => s.constraint)).toEqual([bookmark]);
    expect(read.response.headers.get("X-D1-Bookmark")! >= bookmark!).toBe(true);

    // Something that is not a bookmark is ignored, never handed to D1.
    sessions.length = 0;
    const odd = await send(testEnv, "/v2/replicas/bookmarked/manifests/v1", { headers: { "X-D1-Bookmark": "x'; DROP TABLE tags; --" } });
    expect(odd.response.status).toBe(200);
    expect(sessions.map((s) => s.constraint)).toEqual(["first-primary"]);
  });

  it("answers a replica's record of a blob whose bytes are gone with BLOB_UNKNOWN, and follows a new copy", async () => {
    const bytes = randomBytes(4000);
    const digest = await pushBlob("replicas/stale", bytes);
    // The replica still has the blob under a key the garbage collector has since deleted.
    const staleRow = { digest, size: bytes.byteLength, object_key: `blobs/sha256/${digest.slice(7)}/collected` };
    const { env: testEnv } = replicatedEnv((sql, statement) => (sql.includes("repository_blobs") ? answering(statement, staleRow) : statement));
    // The primary has it under another key (pushed again meanwhile): that copy is served.
    const moved = await send(testEnv, `/v2/replicas/stale/blobs/${digest}`);
    expect(moved.response.status).toBe(200);
    expect(await sha256(moved.body)).toBe(digest);

    // Gone everywhere: the replica's answer ends in a 404, not a 500.
    const gone = { digest: await sha256("collected"), size: 9, object_key: "blobs/sha256/collected/collected" };
    const { env: goneEnv } = replicatedEnv((sql, statement) => (sql.includes("repository_blobs") ? answering(statement, gone) : statement));
    const response = await send(goneEnv, `/v2/replicas/stale/blobs/${gone.digest}`);
    expect(response.response.status).toBe(404);
    expect(JSON.parse(new TextDecoder().decode(response.body)).errors[0].code).toBe("BLOB_UNKNOWN");
  });
});
