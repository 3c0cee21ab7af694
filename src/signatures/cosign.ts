// cosign signatures made with a key (sigstore/cosign: "Signature Specification"): a layer of media type
// application/vnd.dev.cosign.simplesigning.v1+json whose blob is the simple-signing payload and whose annotation
// dev.cosignproject.cosign/signature is the base64 signature over those exact bytes (ECDSA: ASN.1 DER; RSA: PKCS#1
// v1.5 or PSS; SHA-256 whatever the key). They are attached as OCI 1.1 referrers (artifactType below, `subject` the
// signed manifest) or, the older scheme, as layers of the manifest tagged sha256-<hex>.sig.
import { failed, decodeBase64, parseJsonObject, type Check } from "./check";
import { HASH_BYTES, verifies } from "./keys";
import type { TrustedKey } from "./trust";
import type { PublicKey, SignatureAlgorithm } from "./x509";

export const COSIGN_ARTIFACT_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json";
export const SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json";
export const SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature";
const PAYLOAD_TYPE = "cosign container image signature";

/** The legacy tag of the signatures of `digest` ("sha256:<hex>" → "sha256-<hex>.sig"). */
export function signatureTag(digest: string): string {
  return `${digest.replace(":", "-")}.sig`;
}

/** The digest a legacy signature tag names, or null when the tag is not one. */
export function signedByTag(tag: string): string | null {
  const match = tag.match(/^(sha256|sha512)-([0-9a-f]{64}|[0-9a-f]{128})\.sig$/);
  if (!match || (match[1] === "sha256") !== (match[2]!.length === 64)) return null;
  return `${match[1]}:${match[2]}`;
}

// cosign hashes with SHA-256 for every key; a P-384 or P-521 key's own hash is tried as well.
function algorithmsFor(key: PublicKey): SignatureAlgorithm[] {
  if (key.kind === "ec") {
    const own = key.curve === "P-384" ? "SHA-384" : key.curve === "P-521" ? "SHA-512" : null;
    return [{ kind: "ecdsa", hash: "SHA-256" }, ...(own ? [{ kind: "ecdsa", hash: own } as const] : [])];
  }
  const maxSalt = Math.ceil(key.bits / 8) - HASH_BYTES["SHA-256"] - 2;
  return [
    { kind: "pkcs1", hash: "SHA-256" },
    { kind: "pss", hash: "SHA-256", saltLength: HASH_BYTES["SHA-256"] },
    { kind: "pss", hash: "SHA-256", saltLength: maxSalt },
  ];
}

/** Checks one cosign signature layer's payload and annotation, as a signature of the manifest `digest`. */
export async function checkCosign(payload: Uint8Array, annotation: string | undefined, digest: string, keys: TrustedKey[]): Promise<Check> {
  if (annotation === undefined) return failed(`the layer has no ${SIGNATURE_ANNOTATION} annotation`);
  const signature = decodeBase64(annotation.trim());
  if (!signature || signature.length === 0) return failed(`the ${SIGNATURE_ANNOTATION} annotation is not base64`);
  if (keys.length === 0) return failed("no cosign key in SIGNATURE_TRUST covers this repository");
  let signer: string | null = null;
  for (const { name, key } of keys) {
    for (const algorithm of algorithmsFor(key)) {
      if (await verifies(key, algorithm, signature, payload)) {
        signer = name;
        break;
      }
    }
    if (signer) break;
  }
  if (!signer) return failed("the signature does not verify with any trusted cosign key (another key signed it, or the payload was changed)");
  // Only a payload the signature covers is read.
  const json = parseJsonObject(payload);
  const critical = json?.critical as { type?: unknown; image?: { "docker-manifest-digest"?: unknown } } | undefined;
  if (!critical || typeof critical !== "object") return failed("the signed payload is not a simple-signing payload");
  if (critical.type !== PAYLOAD_TYPE) return failed(`the signed payload's type is not "${PAYLOAD_TYPE}"`);
  const named = critical.image?.["docker-manifest-digest"];
  if (named !== digest) return failed(`the signed payload names ${typeof named === "string" ? named.slice(0, 80) : "no digest"}, not this manifest (${digest})`);
  return { ok: true, signer };
}
