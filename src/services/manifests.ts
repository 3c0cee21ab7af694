import type { Actor } from "../audit/events";
import type { Env } from "../config";
import { digestOf } from "../digest";
import { RegistryError } from "../errors";
import { MAX_JSON_DEPTH, nestsDeeperThan } from "../manifests/json-depth";
import { isIndexMediaType, isManifestMediaType, isNonDistributable, type ImageIndex, type ImageManifest, SCHEMAS } from "../manifests/schema";
import { patternMatches } from "../auth/scopes";
import { parseDigest, referenceText, type ParsedDigest, type Reference } from "../references";
import { findNearby, RequestDatabase } from "../storage/database";
import { ManifestRecords, type ManifestRecord, type ReferrerRecord } from "../storage/manifest-records";
import { manifestKey } from "../storage/objects";

// D1 caps a row at 2 MB; larger manifests keep their bytes in R2 and a pointer (the digest) in D1.
const INLINE_MANIFEST_BYTES = 256 * 1024;

export interface StoredManifest {
  record: ManifestRecord;
  body: () => Promise<BodyInit>;
  /** Extra response headers (a mirror says when it serves a stale copy). */
  headers?: Record<string, string>;
}

export class ManifestService {
  constructor(
    protected readonly env: Env,
    /** Repository patterns whose tags may not move or go (IMMUTABLE_TAGS). */
    private readonly immutableTags: string[] = [],
    private readonly db: RequestDatabase = RequestDatabase.primary(env.DB),
  ) {}

  /** Tags move and referrers come and go: everything but content by digest is read where it is current. */
  protected get records(): ManifestRecords {
    return new ManifestRecords(this.db.current);
  }

  async resolve(repository: string, parsed: Reference): Promise<StoredManifest> {
    const record =
      "tag" in parsed
        ? await this.records.findByTag(repository, parsed.tag)
        : await findNearby(this.db, (db) => new ManifestRecords(db).find(repository, parsed.digest.digest));
    if (!record) throw new RegistryError("MANIFEST_UNKNOWN", { repository, reference: referenceText(parsed) });
    return { record, body: () => this.bodyOf(record) };
  }

  private async bodyOf(record: ManifestRecord): Promise<BodyInit> {
    if (record.body !== null) return record.body;
    const object = record.bodyKey ? await this.env.BLOBS.get(record.bodyKey) : null;
    // A replica's row may be older than the manifest's delete (and the collection of its bytes).
    if (!object) throw new RegistryError("MANIFEST_UNKNOWN", { digest: record.digest, reason: "deleted" });
    return object.body;
  }

  /**
   * Validates and stores a manifest pushed `by` someone (recorded in the audit log with it); returns its digest and
   * subject. Nothing is written unless all of it is valid.
   */
  async put(
    repository: string,
    target: Reference,
    contentType: string | null,
    bytes: Uint8Array,
    by: Actor,
  ): Promise<{ digest: string; subject: string | null; mediaType: string }> {
    const digest = await digestOf(bytes, "digest" in target ? target.digest.algorithm : "sha256");
    if ("digest" in target && target.digest.digest !== digest) {
      throw new RegistryError("DIGEST_INVALID", { expected: target.digest.digest, actual: digest });
    }
    const manifest = parseManifest(contentType, bytes);
    const references = referencesOf(manifest.parsed);
    const missing = [
      ...(await this.records.missingBlobs(repository, references.filter((r) => r.kind === "blob").map((r) => r.digest))),
      ...(await this.records.missingManifests(
        repository,
        references.filter((r) => r.kind === "manifest").map((r) => r.digest),
      )),
    ];
    if (missing.length > 0) throw new RegistryError("MANIFEST_BLOB_UNKNOWN", { repository, missing });
    if ("tag" in target && this.isImmutable(repository)) {
      const current = await this.records.findByTag(repository, target.tag);
      if (current && current.digest !== digest) throw immutable(repository, target.tag);
    }
    const stored = await this.store(repository, "tag" in target ? target.tag : null, digest, bytes, manifest, { by });
    // A concurrent push may have taken the tag between the check and the write: the write keeps the first.
    if ("tag" in target && this.isImmutable(repository)) {
      const now = await this.records.findByTag(repository, target.tag);
      if (now?.digest !== digest) throw immutable(repository, target.tag);
    }
    return stored;
  }

  /**
   * Stores a manifest fetched from a mirror's upstream, whose digest the caller verified. What it references is
   * fetched when pulled, so it need not be here yet.
   */
  async putFetched(mirrorPrefix: string, repository: string, tag: string | null, digest: string, contentType: string | null, bytes: Uint8Array) {
    return this.store(repository, tag, digest, bytes, parseManifest(contentType, bytes), { mirrorPrefix });
  }

  private async store(
    repository: string,
    tag: string | null,
    digest: string,
    bytes: Uint8Array,
    { text, mediaType, parsed }: ReturnType<typeof parseManifest>,
    /** Who pushed it, or the prefix of the mirror that fetched it. */
    source: { by: Actor } | { mirrorPrefix: string },
  ): Promise<{ digest: string; subject: string | null; mediaType: string }> {
    const mirrorPrefix = "mirrorPrefix" in source ? source.mirrorPrefix : null;
    const { manifest } = parsed;
    const inline = bytes.byteLength <= INLINE_MANIFEST_BYTES;
    // Bytes first, then the metadata that points at them (a row that is not written leaves an orphan for the GC).
    const bodyKey = inline ? null : manifestKey(parseDigest(digest));
    if (bodyKey) await this.env.BLOBS.put(bodyKey, bytes);
    const subject = manifest.subject?.digest ?? null;
    const stored = await this.records.put(
      {
        repository,
        digest,
        mediaType,
        size: bytes.byteLength,
        body: inline ? text : null,
        bodyKey,
        subject,
        artifactType: manifest.artifactType ?? (parsed.kind === "image" ? parsed.manifest.config.mediaType : null),
        annotations: manifest.annotations ?? null,
        references: referencesOf(parsed),
      },
      tag,
      {
        immutableTag: this.isImmutable(repository),
        blobsMayBeMissing: mirrorPrefix !== null,
        ...(mirrorPrefix !== null && { mirror: { prefix: mirrorPrefix } }),
        ...("by" in source && { by: source.by }),
      },
    );
    // A blob it references was garbage collected between the check and the write: the client must push it again.
    if (!stored) throw new RegistryError("MANIFEST_BLOB_UNKNOWN", { repository, reason: "a referenced blob was just deleted" });
    return { digest, subject, mediaType };
  }

  /** Whether the repository's tags may not move or go (IMMUTABLE_TAGS). */
  isImmutable(repository: string): boolean {
    return this.immutableTags.some((pattern) => patternMatches(pattern, repository));
  }

  /** Deletes a tag, or a manifest with its tags, `by` someone (recorded in the audit log with it). */
  async delete(repository: string, target: Reference, by: Actor): Promise<void> {
    if (this.isImmutable(repository)) {
      // An immutable tag stays: neither deleted itself nor taken away with its manifest.
      const tags =
        "tag" in target
          ? (await this.records.findByTag(repository, target.tag)) ? [target.tag] : []
          : await this.records.tagsOf(repository, target.digest.digest);
      if (tags.length > 0) throw immutable(repository, tags[0]!);
    }
    if ("tag" in target) {
      if (!(await this.records.deleteTag(repository, target.tag, by))) throw new RegistryError("MANIFEST_UNKNOWN", { repository, reference: target.tag });
      return;
    }
    const { deleted, referencedBy } = await this.records.delete(repository, target.digest.digest, by);
    if (deleted) return;
    if (referencedBy) {
      throw new RegistryError("UNSUPPORTED", { repository, digest: target.digest.digest, referencedBy }, {
        message: `manifest ${target.digest.digest} is listed by index ${referencedBy} in ${repository}: delete that index first`,
      });
    }
    throw new RegistryError("MANIFEST_UNKNOWN", { repository, reference: target.digest.digest });
  }

  /** One page of the manifests that name `subject`, and the position to go on from when there may be more. */
  async referrers(
    repository: string,
    subject: ParsedDigest,
    artifactType: string | null,
    page: { limit: number; after: { createdAt: number; digest: string } | null } = { limit: 1000, after: null },
  ): Promise<{ items: ReferrerRecord[]; next: { createdAt: number; digest: string } | null }> {
    const found = await this.records.referrers(repository, subject.digest, artifactType, page.limit + 1, page.after);
    const items = found.slice(0, page.limit);
    const last = items.at(-1);
    return { items, next: found.length > page.limit && last ? { createdAt: last.createdAt, digest: last.digest } : null };
  }

  async tags(repository: string, limit: number, last: string | null): Promise<string[]> {
    if (!(await this.records.repositoryExists(repository))) throw new RegistryError("NAME_UNKNOWN", { repository });
    return this.records.listTags(repository, limit, last);
  }

  /** Repository names in order, only those matching one of `patterns` (all when null). */
  async repositories(limit: number, last: string | null, patterns: string[] | null): Promise<string[]> {
    // A listing may lag a push by the replication delay; a client that sent its bookmark sees its own pushes.
    return new ManifestRecords(this.db.nearby).listRepositories(limit, last, patterns);
  }
}

function immutable(repository: string, tag: string): RegistryError {
  return new RegistryError("DENIED", { repository, tag }, {
    message: `tag ${tag} of ${repository} is immutable (IMMUTABLE_TAGS): push a new tag instead`,
  });
}

function invalid(reason: string, detail: Record<string, unknown> = {}): RegistryError {
  return new RegistryError("MANIFEST_INVALID", { reason, ...detail });
}

function parseManifest(contentType: string | null, bytes: Uint8Array) {
  let text: string;
  let json: unknown;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw invalid("manifest is not valid UTF-8 JSON");
  }
  if (nestsDeeperThan(text, MAX_JSON_DEPTH)) throw invalid(`manifest nests deeper than ${MAX_JSON_DEPTH} levels`);
  try {
    json = JSON.parse(text);
  } catch {
    throw invalid("manifest is not valid UTF-8 JSON");
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw invalid("manifest is not a JSON object");
  const declared = (json as { mediaType?: unknown }).mediaType;
  if (declared !== undefined && typeof declared !== "string") throw invalid("mediaType must be a string");
  const headerType = contentType?.split(";")[0]?.trim() || undefined;
  // OCI dist-spec "Pushing Manifests": the Content-Type must match the manifest's mediaType when both are given.
  if (declared !== undefined && headerType !== undefined && declared !== headerType) {
    throw invalid("Content-Type does not match the manifest's mediaType", { contentType: headerType, mediaType: declared });
  }
  const mediaType = declared ?? headerType;
  if (mediaType === undefined || !isManifestMediaType(mediaType)) {
    throw invalid("unsupported manifest media type", { mediaType: mediaType ?? null });
  }
  const result = SCHEMAS[mediaType].safeParse(json);
  if (!result.success) {
    throw invalid("manifest does not match its schema", {
      issues: result.error.issues.slice(0, 10).map((issue) => ({ path: issue.path.join("."), message: issue.message })),
    });
  }
  const parsed: Parsed =
    isIndexMediaType(mediaType)
      ? { kind: "index", manifest: result.data as ImageIndex }
      : { kind: "image", manifest: result.data as ImageManifest };
  return { text, mediaType, parsed };
}

type Parsed = { kind: "image"; manifest: ImageManifest } | { kind: "index"; manifest: ImageIndex };

function referencesOf({ kind, manifest }: Parsed): { digest: string; kind: "blob" | "manifest" }[] {
  if (kind === "index") return manifest.manifests.map((child) => ({ digest: child.digest, kind: "manifest" }));
  return [manifest.config, ...manifest.layers.filter((layer) => !isNonDistributable(layer))].map((blob) => ({
    digest: blob.digest,
    kind: "blob",
  }));
}
