// SQL for manifests, what they reference, tags, and the repositories that hold them.
import type { Actor } from "../audit/events";
import { AuditRecords } from "./audit-records";
import type { Database } from "./database";
import { MirrorContentRecords } from "./mirror-records";
import { repositoriesMatching } from "./repository-patterns";
import { SearchRecords } from "./search-records";

export interface ManifestRecord {
  digest: string;
  mediaType: string;
  size: number;
  /** The exact bytes pushed, when small enough to keep in D1; otherwise null and the bytes are in R2 at bodyKey. */
  body: string | null;
  bodyKey: string | null;
}

export interface NewManifest extends ManifestRecord {
  repository: string;
  subject: string | null;
  artifactType: string | null;
  annotations: Record<string, string> | null;
  references: { digest: string; kind: "blob" | "manifest" }[];
}

export interface ReferrerRecord {
  digest: string;
  mediaType: string;
  size: number;
  artifactType: string | null;
  annotations: Record<string, string> | null;
}

interface ManifestRow {
  digest: string;
  media_type: string;
  size: number;
  body: string | null;
  body_key: string | null;
}

const toRecord = (row: ManifestRow): ManifestRecord => ({
  digest: row.digest,
  mediaType: row.media_type,
  size: row.size,
  body: row.body,
  bodyKey: row.body_key,
});

/** A point where a test may run another operation between a push's checks and its insert. Empty in production. */
export const manifestInterleavings: { beforeInsert?: (repository: string, digest: string) => Promise<void> } = {};

export class ManifestRecords {
  constructor(private readonly db: Database) {}

  async find(repository: string, digest: string): Promise<ManifestRecord | null> {
    const row = await this.db
      .prepare("SELECT digest, media_type, size, body, body_key FROM manifests WHERE repository = ? AND digest = ?")
      .bind(repository, digest)
      .first<ManifestRow>();
    return row ? toRecord(row) : null;
  }

  async findByTag(repository: string, tag: string): Promise<ManifestRecord | null> {
    const row = await this.db
      .prepare(
        `SELECT m.digest, m.media_type, m.size, m.body, m.body_key FROM tags t
         JOIN manifests m ON m.repository = t.repository AND m.digest = t.digest
         WHERE t.repository = ? AND t.name = ?`,
      )
      .bind(repository, tag)
      .first<ManifestRow>();
    return row ? toRecord(row) : null;
  }

  /** Of the given digests, those not linked into the repository as blobs. */
  async missingBlobs(repository: string, digests: string[]): Promise<string[]> {
    return this.missing(
      "SELECT 1 FROM repository_blobs WHERE repository = ?2 AND digest = d.value",
      repository,
      digests,
    );
  }

  /** Of the given digests, those not stored in the repository as manifests. */
  async missingManifests(repository: string, digests: string[]): Promise<string[]> {
    return this.missing("SELECT 1 FROM manifests WHERE repository = ?2 AND digest = d.value", repository, digests);
  }

  private async missing(exists: string, repository: string, digests: string[]): Promise<string[]> {
    if (digests.length === 0) return [];
    const { results } = await this.db
      .prepare(`SELECT DISTINCT d.value AS digest FROM json_each(?1) d WHERE NOT EXISTS (${exists})`)
      .bind(JSON.stringify(digests), repository)
      .all<{ digest: string }>();
    return results.map((row) => row.digest);
  }

  /**
   * Stores a manifest, what it references and optionally a tag, all or nothing. Unless `blobsMayBeMissing` (a
   * mirror's manifests, whose blobs come later), it is stored only if every blob it references is still linked into
   * the repository and every manifest it lists is still there: checked in the same transaction as the insert, so a
   * blob the garbage collector deletes, or a blob or child manifest deleted from the repository, meanwhile cannot end
   * up referenced. Referencing a blob clears a collector's mark on it. Returns false when a blob was missing. A push
   * `by` someone is recorded in the audit log in the same batch, exactly when it is stored (and its tag moved).
   */
  async put(
    manifest: NewManifest,
    tag: string | null,
    options: { immutableTag?: boolean; blobsMayBeMissing?: boolean; mirror?: { prefix: string }; by?: Actor } = {},
  ): Promise<boolean> {
    await manifestInterleavings.beforeInsert?.(manifest.repository, manifest.digest);
    const now = Date.now();
    const blobs = JSON.stringify(manifest.references.filter((r) => r.kind === "blob").map((r) => r.digest));
    const stored = "EXISTS (SELECT 1 FROM manifests WHERE repository = ?1 AND digest = ?2)";
    const statements = [
      this.db
        .prepare("INSERT OR IGNORE INTO repositories (name, created_at) VALUES (?, ?)")
        .bind(manifest.repository, now),
      // The same digest is the same bytes: a re-push changes nothing.
      this.db
        .prepare(
          `INSERT OR IGNORE INTO manifests
             (repository, digest, media_type, size, body, subject, artifact_type, annotations, created_at, body_key)
           SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?12
           WHERE ?10 = 1 OR (
             NOT EXISTS (SELECT 1 FROM json_each(?11) b
               WHERE NOT EXISTS (SELECT 1 FROM repository_blobs WHERE repository = ?1 AND digest = b.value))
             AND NOT EXISTS (SELECT 1 FROM json_each(?13) c
               WHERE NOT EXISTS (SELECT 1 FROM manifests WHERE repository = ?1 AND digest = c.value)))`,
        )
        .bind(
          manifest.repository,
          manifest.digest,
          manifest.mediaType,
          manifest.size,
          manifest.body,
          manifest.subject,
          manifest.artifactType,
          manifest.annotations ? JSON.stringify(manifest.annotations) : null,
          now,
          options.blobsMayBeMissing ? 1 : 0,
          blobs,
          manifest.bodyKey,
          JSON.stringify(manifest.references.filter((r) => r.kind === "manifest").map((r) => r.digest)),
        ),
      // Right after the insert: a mirror counts a manifest it stored just now (never one that was here, such as a pushed
      // one that a mirror later covers), for eviction (its maxBytes).
      ...(options.mirror
        ? new MirrorContentRecords(this.db).recordStatements(options.mirror.prefix, manifest.repository, manifest.digest, manifest.size, blobs, now)
        : []),
      this.db
        .prepare(
          `INSERT OR IGNORE INTO manifest_references (repository, manifest, child, kind)
           SELECT ?1, ?2, r.value ->> '$.digest', r.value ->> '$.kind' FROM json_each(?3) r WHERE ${stored}`,
        )
        .bind(manifest.repository, manifest.digest, JSON.stringify(manifest.references)),
      this.db
        .prepare(
          `UPDATE blobs SET deleting_at = NULL
           WHERE deleting_at IS NOT NULL AND digest IN (SELECT value FROM json_each(?3)) AND ${stored}`,
        )
        .bind(manifest.repository, manifest.digest, blobs),
      // Size and platforms for listings (web UI, /api).
      new SearchRecords(this.db).summarize(manifest.repository, manifest.digest),
    ];
    const audit = options.by ? { by: options.by, records: new AuditRecords(this.db) } : null;
    const { repository, digest } = manifest;
    if (tag !== null) {
      statements.push(
        // Before the tag moves, the row that says it moved and from where: the upsert below moves it exactly when a
        // stored manifest's tag points elsewhere and may move.
        ...(audit
          ? [
              audit.records.insert(audit.by, { action: "tag.move", repository, target: tag, detail: { to: digest } }, {
                where: `EXISTS (SELECT 1 FROM manifests WHERE repository = ?2 AND digest = ?3) AND ?5 = 0
                  AND EXISTS (SELECT 1 FROM tags WHERE repository = ?2 AND name = ?4 AND digest <> ?3)`,
                detail: "json_object('from', (SELECT digest FROM tags WHERE repository = ?2 AND name = ?4))",
                params: [repository, digest, tag, options.immutableTag ? 1 : 0],
              }),
            ]
          : []),
        this.db
          .prepare(
            `INSERT INTO tags (repository, name, digest, updated_at) SELECT ?1, ?3, ?2, ?4 WHERE ${stored}
             ON CONFLICT (repository, name) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at
             WHERE ?5 = 0`,
          )
          .bind(manifest.repository, manifest.digest, tag, now, options.immutableTag ? 1 : 0),
        ...new SearchRecords(this.db).refresh(manifest.repository),
      );
    }
    if (audit) {
      // The push, once it is stored and, pushed by tag, the tag points at it (an immutable tag may not have moved).
      const detail = { ...(tag !== null && { tag }), mediaType: manifest.mediaType, size: manifest.size };
      statements.push(
        audit.records.insert(audit.by, { action: "manifest.push", repository, target: digest, detail }, {
          where: `EXISTS (SELECT 1 FROM manifests WHERE repository = ?2 AND digest = ?3)
            AND (?4 IS NULL OR EXISTS (SELECT 1 FROM tags WHERE repository = ?2 AND name = ?4 AND digest = ?3))`,
          params: [repository, digest, tag],
        }),
      );
    }
    statements.push(this.db.prepare(`SELECT ${stored} AS stored`).bind(manifest.repository, manifest.digest));
    const results = await this.db.batch<{ stored: number }>(statements);
    return results.at(-1)?.results[0]?.stored === 1;
  }

  /**
   * Deletes a manifest, its references and every tag pointing at it, unless an index in the repository lists it (that
   * index would break): then it names the index. The check, the deletes and their audit row are one transaction.
   */
  async delete(repository: string, digest: string, by: Actor): Promise<{ deleted: boolean; referencedBy: string | null }> {
    const search = new SearchRecords(this.db);
    const parents = "SELECT manifest FROM manifest_references WHERE repository = ?1 AND child = ?2 AND kind = 'manifest'";
    const unreferenced = `NOT EXISTS (${parents})`;
    const [parent, , , , , deleted] = await this.db.batch<{ manifest: string }>([
      this.db.prepare(`${parents} LIMIT 1`).bind(repository, digest),
      // Before the deletes, under their condition, naming the tags that go with it.
      new AuditRecords(this.db).insert(by, { action: "manifest.delete", repository, target: digest }, {
        where: `EXISTS (SELECT 1 FROM manifests WHERE repository = ?2 AND digest = ?3)
          AND NOT EXISTS (SELECT 1 FROM manifest_references WHERE repository = ?2 AND child = ?3 AND kind = 'manifest')`,
        detail: "json_object('tags', json((SELECT json_group_array(name) FROM tags WHERE repository = ?2 AND digest = ?3)))",
        params: [repository, digest],
      }),
      // The pull counts of the tags that go (a tag pushed again later starts from none), while they still name them.
      this.db
        .prepare(`DELETE FROM tag_pulls WHERE repository = ?1 AND tag IN (SELECT name FROM tags WHERE repository = ?1 AND digest = ?2) AND ${unreferenced}`)
        .bind(repository, digest),
      this.db.prepare(`DELETE FROM tags WHERE repository = ?1 AND digest = ?2 AND ${unreferenced}`).bind(repository, digest),
      this.db.prepare(`DELETE FROM manifest_references WHERE repository = ?1 AND manifest = ?2 AND ${unreferenced}`).bind(repository, digest),
      this.db.prepare(`DELETE FROM manifests WHERE repository = ?1 AND digest = ?2 AND ${unreferenced}`).bind(repository, digest),
      this.db
        .prepare("DELETE FROM manifest_pulls WHERE repository = ?1 AND digest = ?2 AND NOT EXISTS (SELECT 1 FROM manifests WHERE repository = ?1 AND digest = ?2)")
        .bind(repository, digest),
      search.forget(repository, digest),
      ...search.refresh(repository),
    ]);
    return { deleted: (deleted?.meta.changes ?? 0) > 0, referencedBy: parent?.results[0]?.manifest ?? null };
  }

  async tagsOf(repository: string, digest: string): Promise<string[]> {
    const { results } = await this.db
      .prepare("SELECT name FROM tags WHERE repository = ? AND digest = ? ORDER BY name")
      .bind(repository, digest)
      .all<{ name: string }>();
    return results.map((row) => row.name);
  }

  /** Indexes of the repository that list the manifest, at most `limit` (on the (repository, child, kind) index). */
  async indexesOf(repository: string, digest: string, limit: number): Promise<string[]> {
    const { results } = await this.db
      .prepare("SELECT manifest FROM manifest_references WHERE repository = ?1 AND child = ?2 AND kind = 'manifest' ORDER BY manifest LIMIT ?3")
      .bind(repository, digest, limit)
      .all<{ manifest: string }>();
    return results.map((row) => row.manifest);
  }

  async deleteTag(repository: string, tag: string, by: Actor): Promise<boolean> {
    const [, result] = await this.db.batch([
      // Before the delete, which deletes exactly what it finds: the digest the tag pointed at.
      new AuditRecords(this.db).insert(by, { action: "tag.delete", repository, target: tag }, {
        where: "EXISTS (SELECT 1 FROM tags WHERE repository = ?2 AND name = ?3)",
        detail: "json_object('digest', (SELECT digest FROM tags WHERE repository = ?2 AND name = ?3))",
        params: [repository, tag],
      }),
      this.db.prepare("DELETE FROM tags WHERE repository = ? AND name = ?").bind(repository, tag),
      this.db.prepare("DELETE FROM tag_pulls WHERE repository = ? AND tag = ?").bind(repository, tag),
      ...new SearchRecords(this.db).refresh(repository),
    ]);
    return (result?.meta.changes ?? 0) > 0;
  }

  /** Tags in lexical (byte) order, after `last`, at most `limit`. */
  async listTags(repository: string, limit: number, last: string | null): Promise<string[]> {
    const { results } = await this.db
      .prepare("SELECT name FROM tags WHERE repository = ? AND name > ? ORDER BY name LIMIT ?")
      .bind(repository, last ?? "", limit)
      .all<{ name: string }>();
    return results.map((row) => row.name);
  }

  async repositoryExists(repository: string): Promise<boolean> {
    const row = await this.db.prepare("SELECT 1 AS found FROM repositories WHERE name = ?").bind(repository).first();
    return row !== null;
  }

  /** Repositories after `last`; with patterns (GLOB, `*` only), those matching any of them, each read from its range. */
  async listRepositories(limit: number, last: string | null, patterns: string[] | null): Promise<string[]> {
    if (patterns !== null) return repositoriesMatching(this.db, patterns, last ?? "", limit);
    const { results } = await this.db
      .prepare("SELECT name FROM repositories WHERE name > ?1 ORDER BY name LIMIT ?2")
      .bind(last ?? "", limit)
      .all<{ name: string }>();
    return results.map((row) => row.name);
  }

  /**
   * Manifests whose subject is `subject`, oldest first, after the position `after` (created_at, digest), at most
   * `limit`: each page is an index seek on (repository, subject) whatever the repository holds.
   */
  async referrers(
    repository: string,
    subject: string,
    artifactType: string | null,
    limit = 1000,
    after: { createdAt: number; digest: string } | null = null,
  ): Promise<(ReferrerRecord & { createdAt: number })[]> {
    const { results } = await this.db
      .prepare(
        `SELECT digest, media_type, size, artifact_type, annotations, created_at FROM manifests
         WHERE repository = ?1 AND subject = ?2 AND (?3 IS NULL OR artifact_type = ?3)
           AND (?4 IS NULL OR (created_at, digest) > (?4, ?5))
         ORDER BY created_at, digest LIMIT ?6`,
      )
      .bind(repository, subject, artifactType, after?.createdAt ?? null, after?.digest ?? "", limit)
      .all<{ digest: string; media_type: string; size: number; artifact_type: string | null; annotations: string | null; created_at: number }>();
    return results.map((row) => ({
      digest: row.digest,
      mediaType: row.media_type,
      size: row.size,
      artifactType: row.artifact_type,
      annotations: row.annotations ? (JSON.parse(row.annotations) as Record<string, string>) : null,
      createdAt: row.created_at,
    }));
  }
}
