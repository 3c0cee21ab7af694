import type { Waiter } from "../cache/edge";
import type { Env } from "../config";
import { digestOf } from "../digest";
import { ImageManifest, type Descriptor } from "../manifests/schema";
import type { Reference } from "../references";
import type { RequestDatabase } from "../storage/database";
import { SignatureRecords, type SignatureInputs, type StoredVerdict } from "../storage/signature-records";
import type { Check, SignatureFormat } from "./check";
import { checkCosign, COSIGN_ARTIFACT_TYPE, SIGNATURE_ANNOTATION, signedByTag, SIMPLE_SIGNING } from "./cosign";
import { checkNotation, JWS_MEDIA_TYPE, NOTATION_ARTIFACT_TYPE } from "./notation";
import { trustFor, type RepositoryTrust, type TrustEntry } from "./trust";

// A manifest's signature verdict: computed in the background when a signature for it is pushed, and again by any
// reader that finds the stored one stale (the repository's trusted keys changed, signatures came or went, or a
// certificate it relied on expired); never stale, since every read compares the stored verdict with the signatures
// as they are now and with the current configuration's fingerprint, in the same statement that reads it.

export interface Signer {
  format: SignatureFormat;
  /** The signature manifest, and the layer of it that holds the signature. */
  signature: string;
  layer: number;
  /** The trusted key's name (cosign), or the signing certificate's subject and its root's name (Notation). */
  signer: string;
}

export interface Problem {
  format: SignatureFormat;
  signature: string;
  layer: number;
  reason: string;
}

export type Verdict =
  | { status: "unsigned" }
  /** Signatures are attached but this response did not check them (a listing's budget); a later read will. */
  | { status: "pending"; signatures: number }
  | { status: "verified"; signers: Signer[]; problems: Problem[] }
  | { status: "invalid"; problems: Problem[] };

/** Signature manifests and layers checked per manifest: what one can push costs every reader at most this. */
export const MAX_SIGNATURES = 8;
/** Bytes read of one signature blob (a simple-signing payload is under 1 KiB, a JWS with its chain a few KiB). */
export const MAX_SIGNATURE_BYTES = 64 * 1024;
/** Verdicts a listing computes in the request; the rest are pending, and computed after the response. */
const COMPUTED_PER_LISTING = 4;
const COMPUTED_AFTER_LISTING = 8;

const SIGNATURE_ARTIFACT_TYPES = [COSIGN_ARTIFACT_TYPE, NOTATION_ARTIFACT_TYPE];

const NO_WAITER: Waiter = { waitUntil: () => undefined };

export class SignatureService {
  constructor(
    private readonly env: Env,
    private readonly trust: readonly TrustEntry[],
    private readonly db: RequestDatabase,
    private readonly ctx: Waiter = NO_WAITER,
  ) {}

  private get records(): SignatureRecords {
    return new SignatureRecords(this.db.current);
  }

  /** The verdict of one manifest, computed now if the stored one is stale (what a pull policy reads). */
  async verdict(repository: string, digest: string): Promise<Verdict> {
    return (await this.verdicts(repository, [digest], 1)).get(digest) ?? { status: "unsigned" };
  }

  /**
   * The verdicts of a page of manifests: stored ones that are current as they are, at most `compute` stale ones
   * computed now, the others pending (computed after the response, a bounded number).
   */
  async verdicts(repository: string, digests: string[], compute = COMPUTED_PER_LISTING): Promise<Map<string, Verdict>> {
    const unique = [...new Set(digests)];
    const rows = await this.records.inputs(repository, unique, SIGNATURE_ARTIFACT_TYPES, MAX_SIGNATURES);
    const trust = await trustFor(this.trust, repository);
    const now = Date.now();
    const verdicts = new Map<string, Verdict>();
    const later: SignatureInputs[] = [];
    for (const row of rows) {
      const count = row.referrers.length + (row.signatureTag ? 1 : 0);
      if (count === 0) verdicts.set(row.digest, { status: "unsigned" });
      // Signatures pushed before what they sign: checked once it is here (a Notation payload names its size).
      else if (row.size === null) verdicts.set(row.digest, { status: "pending", signatures: count });
      else if (isCurrent(row, trust, now)) verdicts.set(row.digest, fromStored(row.stored!));
      else if (compute-- > 0) verdicts.set(row.digest, await this.compute(repository, row, trust, now));
      else {
        verdicts.set(row.digest, { status: "pending", signatures: count });
        later.push(row);
      }
    }
    if (later.length > 0) {
      this.ctx.waitUntil(
        (async () => {
          for (const row of later.slice(0, COMPUTED_AFTER_LISTING)) await this.compute(repository, row, trust, Date.now());
        })().catch((error) => console.error(JSON.stringify({ event: "signature-verdict-failed", repository, error: String(error) }))),
      );
    }
    return verdicts;
  }

  /** After a push: when it was a signature (a referrer, or a sha256-<hex>.sig tag), the signed manifest's verdict. */
  afterPush(repository: string, reference: Reference, subject: string | null): void {
    const signed = subject ?? ("tag" in reference ? signedByTag(reference.tag) : null);
    if (!signed) return;
    this.ctx.waitUntil(
      this.verdict(repository, signed).catch((error) =>
        console.error(JSON.stringify({ event: "signature-verdict-failed", repository, digest: signed, error: String(error) })),
      ),
    );
  }

  private async compute(repository: string, row: SignatureInputs, trust: RepositoryTrust, now: number): Promise<Verdict> {
    const signers: Signer[] = [];
    const problems: Problem[] = [];
    let recheckAt: number | null = null;
    const signatures = await this.signaturesOf(repository, row, problems);
    for (const found of signatures) {
      const check = await this.check(repository, found, row, trust, now);
      if (check.recheckAt !== undefined) recheckAt = Math.min(recheckAt ?? Infinity, check.recheckAt);
      const where = { format: found.format, signature: found.manifest, layer: found.layer };
      if (check.ok) signers.push({ ...where, signer: check.signer });
      else problems.push({ ...where, reason: check.reason });
    }
    if (signers.length === 0 && problems.length === 0) {
      problems.push({ format: "cosign", signature: row.signatureTag ?? row.referrers[0] ?? "", layer: 0, reason: "the signature manifest holds no signature layer" });
    }
    const verdict: Verdict = signers.length > 0 ? { status: "verified", signers, problems } : { status: "invalid", problems };
    const stored: StoredVerdict = {
      status: verdict.status,
      signers: JSON.stringify(signers),
      problems: JSON.stringify(problems),
      fingerprint: trust.fingerprint,
      inputs: inputsOf(row),
      recheckAt,
    };
    await this.records.save(repository, row.digest, stored, now);
    return verdict;
  }

  /** The signature layers of a manifest's signature manifests, at most MAX_SIGNATURES in all. */
  private async signaturesOf(repository: string, row: SignatureInputs, problems: Problem[]): Promise<FoundSignature[]> {
    const found: FoundSignature[] = [];
    const sources = [...row.referrers, ...(row.signatureTag ? [row.signatureTag] : [])];
    for (const manifest of sources) {
      if (found.length >= MAX_SIGNATURES) break;
      const text = await this.records.manifestText(repository, manifest);
      const parsed = text === null ? null : ImageManifest.safeParse(safeJson(text));
      if (!parsed?.success) {
        problems.push({ format: "cosign", signature: manifest, layer: 0, reason: "the signature manifest could not be read (not an image manifest, or too large)" });
        continue;
      }
      const { artifactType, config, layers } = parsed.data;
      const notation = (artifactType ?? config.mediaType) === NOTATION_ARTIFACT_TYPE;
      const wanted = notation ? JWS_MEDIA_TYPE : SIMPLE_SIGNING;
      layers.forEach((layer, index) => {
        if (layer.mediaType === wanted && found.length < MAX_SIGNATURES) found.push({ format: notation ? "notation" : "cosign", manifest, layer: index, descriptor: layer });
      });
    }
    return found;
  }

  private async check(repository: string, found: FoundSignature, row: SignatureInputs, trust: RepositoryTrust, now: number): Promise<Check> {
    const { descriptor } = found;
    if (descriptor.size > MAX_SIGNATURE_BYTES) return { ok: false, reason: `the signature blob is larger than ${MAX_SIGNATURE_BYTES} bytes` };
    const bytes = await this.records.blobBytes(this.env.BLOBS, repository, descriptor.digest, MAX_SIGNATURE_BYTES);
    if (bytes === "missing") return { ok: false, reason: "the signature blob is not stored in this repository" };
    if (bytes === "too large") return { ok: false, reason: `the signature blob is larger than ${MAX_SIGNATURE_BYTES} bytes` };
    if ((await digestOf(bytes, descriptor.digest.startsWith("sha512:") ? "sha512" : "sha256")) !== descriptor.digest) {
      return { ok: false, reason: "the signature blob's bytes do not match its digest" };
    }
    if (found.format === "cosign") return checkCosign(bytes, descriptor.annotations?.[SIGNATURE_ANNOTATION], row.digest, trust.cosignKeys);
    return checkNotation(bytes, { digest: row.digest, size: row.size, mediaType: row.mediaType }, trust.notationRoots, now);
  }
}

interface FoundSignature {
  format: SignatureFormat;
  manifest: string;
  layer: number;
  descriptor: Descriptor;
}

function inputsOf(row: SignatureInputs): string {
  return JSON.stringify([row.referrers, row.signatureTag]);
}

function isCurrent(row: SignatureInputs, trust: RepositoryTrust, now: number): boolean {
  const stored = row.stored;
  return (
    stored !== null &&
    row.size !== null &&
    stored.fingerprint === trust.fingerprint &&
    stored.inputs === inputsOf(row) &&
    (stored.recheckAt === null || now < stored.recheckAt)
  );
}

function fromStored(stored: StoredVerdict): Verdict {
  const problems = JSON.parse(stored.problems) as Problem[];
  return stored.status === "verified" ? { status: "verified", signers: JSON.parse(stored.signers) as Signer[], problems } : { status: "invalid", problems };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
