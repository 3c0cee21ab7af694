// SQL for signature verdicts (migrations/0013_signature_verdicts.sql), and the bounded reads of signature manifests
// and blobs that computing one takes.
import type { Database } from "./database";
import { linkedBlobBytes, storedManifestText } from "./referrer-bytes";

export interface StoredVerdict {
  status: "verified" | "invalid";
  signers: string;
  problems: string;
  fingerprint: string;
  inputs: string;
  recheckAt: number | null;
}

/** A manifest's signatures as they are now, with the verdict stored for it, if any. */
export interface SignatureInputs {
  digest: string;
  /** The signed manifest's size and media type, when it is stored in the repository. */
  size: number | null;
  mediaType: string | null;
  /** Signature referrers (cosign, Notation), oldest first, at most the cap. */
  referrers: string[];
  /** The manifest tagged sha256-<hex>.sig. */
  signatureTag: string | null;
  stored: StoredVerdict | null;
}

interface InputsRow {
  digest: string;
  size: number | null;
  media_type: string | null;
  referrers: string | null;
  signature_tag: string | null;
  status: "verified" | "invalid" | null;
  signers: string | null;
  problems: string | null;
  fingerprint: string | null;
  inputs: string | null;
  recheck_at: number | null;
}

export class SignatureRecords {
  constructor(private readonly db: Database) {}

  /**
   * For each digest (one statement, a few seeks per digest): the manifest, its signature referrers of the given
   * artifact types (on the (repository, subject) index, at most `cap`), its legacy signature tag and its verdict.
   */
  async inputs(repository: string, digests: string[], artifactTypes: string[], cap: number): Promise<SignatureInputs[]> {
    if (digests.length === 0) return [];
    const { results } = await this.db
      .prepare(
        `SELECT d.value AS digest, m.size, m.media_type,
           (SELECT json_group_array(s.digest) FROM (
              SELECT x.digest FROM manifests x
              WHERE x.repository = ?1 AND x.subject = d.value AND x.artifact_type IN (SELECT value FROM json_each(?3))
              ORDER BY x.created_at, x.digest LIMIT ?4) s) AS referrers,
           (SELECT t.digest FROM tags t WHERE t.repository = ?1 AND t.name = replace(d.value, ':', '-') || '.sig') AS signature_tag,
           v.status, v.signers, v.problems, v.fingerprint, v.inputs, v.recheck_at
         FROM json_each(?2) d
         LEFT JOIN manifests m ON m.repository = ?1 AND m.digest = d.value
         LEFT JOIN signature_verdicts v ON v.repository = ?1 AND v.digest = d.value`,
      )
      .bind(repository, JSON.stringify(digests), JSON.stringify(artifactTypes), cap)
      .all<InputsRow>();
    return results.map((row) => ({
      digest: row.digest,
      size: row.size,
      mediaType: row.media_type,
      referrers: row.referrers ? (JSON.parse(row.referrers) as string[]) : [],
      signatureTag: row.signature_tag,
      stored:
        row.status === null
          ? null
          : {
              status: row.status,
              signers: row.signers!,
              problems: row.problems!,
              fingerprint: row.fingerprint!,
              inputs: row.inputs!,
              recheckAt: row.recheck_at,
            },
    }));
  }

  async save(repository: string, digest: string, verdict: StoredVerdict, now: number): Promise<void> {
    await this.db
      .prepare(
        `INSERT INTO signature_verdicts (repository, digest, status, signers, problems, fingerprint, inputs, recheck_at, checked_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (repository, digest) DO UPDATE SET status = excluded.status, signers = excluded.signers,
           problems = excluded.problems, fingerprint = excluded.fingerprint, inputs = excluded.inputs,
           recheck_at = excluded.recheck_at, checked_at = excluded.checked_at`,
      )
      .bind(repository, digest, verdict.status, verdict.signers, verdict.problems, verdict.fingerprint, verdict.inputs, verdict.recheckAt, now)
      .run();
  }

  /** A manifest's text, when D1 holds it (see storedManifestText). */
  manifestText(repository: string, digest: string): Promise<string | null> {
    return storedManifestText(this.db, repository, digest);
  }

  /** A blob linked in the repository, whole, within `limit` bytes (see linkedBlobBytes). */
  async blobBytes(bucket: R2Bucket, repository: string, digest: string, limit: number): Promise<Uint8Array | "missing" | "too large"> {
    return linkedBlobBytes(this.db, bucket, repository, digest, limit);
  }
}
