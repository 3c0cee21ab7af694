// Notary Project (Notation) signatures, JWS envelope (notaryproject/specifications: signature-envelope-jws.md,
// signature-specification.md, trust-store-trust-policy.md), signing scheme notary.x509: a flattened JWS JSON whose
// payload names the signed manifest, signed by the first certificate of its x5c chain, which must end at a root in
// SIGNATURE_TRUST. Timestamp countersignatures (notary.x509.signingAuthority) and verification plugins are not
// supported: such signatures are invalid here, with that reason, as the spec requires of a verifier that cannot.
import { failed, decodeBase64, parseJsonObject, type Check } from "./check";
import { equalBytes } from "./der";
import { verifies } from "./keys";
import type { TrustedRoot } from "./trust";
import { KEY_USAGE, parseCertificate, type Certificate, type SignatureAlgorithm } from "./x509";

export const NOTATION_ARTIFACT_TYPE = "application/vnd.cncf.notary.signature";
export const JWS_MEDIA_TYPE = "application/jose+json";
const PAYLOAD_CONTENT_TYPE = "application/vnd.cncf.notary.payload.v1+json";
const MAX_CHAIN = 8;

const SIGNING_SCHEME = "io.cncf.notary.signingScheme";
const SIGNING_TIME = "io.cncf.notary.signingTime";
const EXPIRY = "io.cncf.notary.expiry";
const KNOWN_CRITICAL = new Set([SIGNING_SCHEME, EXPIRY]);
const NEEDS_MORE = new Set(["io.cncf.notary.authenticSigningTime", "io.cncf.notary.verificationPlugin", "io.cncf.notary.verificationPluginMinVersion"]);

// JWS `alg` by the signing key (signature-envelope-jws.md: "alg MUST match the signing key", against substitution).
const ALGORITHMS: Record<string, { algorithm: SignatureAlgorithm; matches: (certificate: Certificate) => boolean }> = {
  PS256: { algorithm: { kind: "pss", hash: "SHA-256", saltLength: 32 }, matches: ({ publicKey: k }) => k.kind === "rsa" && k.bits === 2048 },
  PS384: { algorithm: { kind: "pss", hash: "SHA-384", saltLength: 48 }, matches: ({ publicKey: k }) => k.kind === "rsa" && k.bits === 3072 },
  PS512: { algorithm: { kind: "pss", hash: "SHA-512", saltLength: 64 }, matches: ({ publicKey: k }) => k.kind === "rsa" && k.bits === 4096 },
  ES256: { algorithm: { kind: "ecdsa", hash: "SHA-256" }, matches: ({ publicKey: k }) => k.kind === "ec" && k.curve === "P-256" },
  ES384: { algorithm: { kind: "ecdsa", hash: "SHA-384" }, matches: ({ publicKey: k }) => k.kind === "ec" && k.curve === "P-384" },
  ES512: { algorithm: { kind: "ecdsa", hash: "SHA-512" }, matches: ({ publicKey: k }) => k.kind === "ec" && k.curve === "P-521" },
};

// Extended key usages a signing certificate must not have (signature-specification.md, "Leaf Certificates").
const FORBIDDEN_EKUS = new Set(["2.5.29.37.0", "1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2", "1.3.6.1.5.5.7.3.4", "1.3.6.1.5.5.7.3.8"]);
const LEAF_FORBIDDEN_USAGES = ["keyEncipherment", "dataEncipherment", "keyAgreement", "keyCertSign", "cRLSign", "encipherOnly", "decipherOnly"] as const;

const has = (certificate: Certificate, usage: keyof typeof KEY_USAGE) => ((certificate.keyUsage?.bits ?? 0) & (1 << KEY_USAGE[usage])) !== 0;
const iso = (millis: number) => new Date(millis).toISOString().replace(".000Z", "Z");

/** The signed manifest, as the payload must name it. */
export interface SignedManifest {
  digest: string;
  mediaType: string | null;
  size: number | null;
}

/** Checks a JWS envelope as a signature of `target`, at `now`. */
export async function checkNotation(envelopeBytes: Uint8Array, target: SignedManifest, roots: TrustedRoot[], now: number): Promise<Check> {
  const envelope = parseJsonObject(envelopeBytes);
  if (!envelope) return failed("the envelope is not a JSON object");
  const { payload, protected: protectedText, header, signature } = envelope;
  if (typeof payload !== "string" || typeof protectedText !== "string" || typeof signature !== "string" || typeof header !== "object" || header === null) {
    return failed("the envelope is not a flattened JWS JSON serialization (payload, protected, header, signature)");
  }
  const extra = Object.keys(envelope).filter((key) => !["payload", "protected", "header", "signature"].includes(key));
  if (extra.length > 0) return failed(`the envelope has fields a Notary Project envelope may not have (${extra.join(", ").slice(0, 100)})`);

  // Protected headers: what the signature covers and the verifier must understand.
  const protectedBytes = decodeBase64(protectedText, true);
  const headers = protectedBytes && parseJsonObject(protectedBytes);
  if (!headers) return failed("the protected header is not base64url JSON");
  if (headers.cty !== PAYLOAD_CONTENT_TYPE) return failed(`the protected header's cty is not ${PAYLOAD_CONTENT_TYPE}`);
  const alg = typeof headers.alg === "string" ? ALGORITHMS[headers.alg] : undefined;
  if (!alg) return failed(`unsupported alg ${JSON.stringify(headers.alg ?? null).slice(0, 40)} (PS256, PS384, PS512, ES256, ES384, ES512)`);
  const crit = headers.crit;
  if (!Array.isArray(crit) || crit.length === 0 || !crit.every((name) => typeof name === "string")) return failed("the protected header has no crit list");
  for (const name of crit as string[]) {
    if (NEEDS_MORE.has(name)) return failed(`the signature needs ${name} (a timestamp authority or a verification plugin), which this registry does not support`);
    if (!KNOWN_CRITICAL.has(name)) return failed(`the critical header ${name.slice(0, 100)} is not understood`);
    if (!(name in headers)) return failed(`the critical header ${name} is missing`);
  }
  if (!crit.includes(SIGNING_SCHEME)) return failed(`crit does not list ${SIGNING_SCHEME}`);
  if (EXPIRY in headers && !crit.includes(EXPIRY)) return failed(`${EXPIRY} is present but not critical`);
  if (headers[SIGNING_SCHEME] === "notary.x509.signingAuthority") return failed("signing scheme notary.x509.signingAuthority needs a timestamp authority, which this registry does not support");
  if (headers[SIGNING_SCHEME] !== "notary.x509") return failed(`unknown signing scheme ${JSON.stringify(headers[SIGNING_SCHEME]).slice(0, 60)}`);
  const signingTime = rfc3339(headers[SIGNING_TIME]);
  if (signingTime === null) return failed(`${SIGNING_TIME} is missing or not an RFC 3339 time`);
  const expiry = EXPIRY in headers ? rfc3339(headers[EXPIRY]) : undefined;
  if (expiry === null) return failed(`${EXPIRY} is not an RFC 3339 time`);
  if (expiry !== undefined && now >= expiry) return failed(`the signature expired at ${iso(expiry)} (${EXPIRY})`);

  // The certificate chain, leaf first.
  const x5c = (header as { x5c?: unknown }).x5c;
  if (!Array.isArray(x5c) || x5c.length === 0) return failed("the unprotected header has no x5c certificate chain");
  if (x5c.length > MAX_CHAIN) return failed(`the certificate chain is longer than ${MAX_CHAIN}`);
  const chain: Certificate[] = [];
  for (const [index, text] of x5c.entries()) {
    const der = typeof text === "string" ? decodeBase64(text) : null;
    if (!der) return failed(`x5c[${index}] is not base64`);
    try {
      chain.push(parseCertificate(der));
    } catch (error) {
      return failed(`x5c[${index}] is not a usable certificate: ${(error as Error).message}`);
    }
  }
  const leaf = chain[0]!;
  if (!alg.matches(leaf)) return failed(`alg ${headers.alg as string} does not match the signing certificate's key (${keyText(leaf)})`);

  const signatureBytes = decodeBase64(signature, true);
  const signingInput = new TextEncoder().encode(`${protectedText}.${payload}`);
  if (!signatureBytes || !(await verifies(leaf.publicKey, alg.algorithm, signatureBytes, signingInput, true))) {
    return failed("the JWS signature does not verify with the signing certificate (the envelope was changed)");
  }

  const problem = certificateProblem(chain) ?? (await chainProblem(chain, roots));
  if (problem) return failed(problem);
  // Valid at signing time, and (no authentic timestamp) now (signature-specification.md, "Other requirements").
  for (const certificate of chain) {
    if (signingTime < certificate.notBefore || signingTime > certificate.notAfter) {
      return failed(`certificate "${certificate.subjectText}" was not valid at the signing time ${iso(signingTime)} (valid ${iso(certificate.notBefore)} to ${iso(certificate.notAfter)})`);
    }
    if (now > certificate.notAfter) return failed(`certificate "${certificate.subjectText}" expired at ${iso(certificate.notAfter)}`);
    if (now < certificate.notBefore) return failed(`certificate "${certificate.subjectText}" is not valid before ${iso(certificate.notBefore)}`, certificate.notBefore);
  }

  const claims = decodeBase64(payload, true);
  const target_ = claims && (parseJsonObject(claims)?.targetArtifact as Record<string, unknown> | undefined);
  if (!target_ || typeof target_ !== "object") return failed("the payload has no targetArtifact");
  if (target_.digest !== target.digest) {
    return failed(`the signed payload names ${typeof target_.digest === "string" ? target_.digest.slice(0, 80) : "no digest"}, not this manifest (${target.digest})`);
  }
  if (target.size !== null && target_.size !== target.size) return failed(`the signed payload's size ${String(target_.size).slice(0, 20)} is not the manifest's ${target.size}`);
  if (target.mediaType !== null && target_.mediaType !== target.mediaType) return failed(`the signed payload's mediaType is not the manifest's ${target.mediaType}`);

  const root = chain.at(-1)!;
  const trustedBy = roots.find((candidate) => equalBytes(candidate.certificate.der, root.der))!;
  const recheckAt = Math.min(...chain.map((certificate) => certificate.notAfter + 1), expiry ?? Infinity);
  return { ok: true, signer: `${leaf.subjectText} (root ${trustedBy.name})`, recheckAt };
}

function keyText({ publicKey }: Certificate): string {
  return publicKey.kind === "rsa" ? `RSA ${publicKey.bits}` : `EC ${publicKey.curve}`;
}

/** The Notary Project's requirements of each certificate, apart from trust (signature-specification.md). */
function certificateProblem(chain: Certificate[]): string | null {
  const leaf = chain[0]!;
  // A chain of one root alone: it must meet the leaf's requirements.
  if (leaf.basicConstraints?.ca) return `the signing certificate "${leaf.subjectText}" is a CA certificate`;
  if (!leaf.keyUsage?.critical || !has(leaf, "digitalSignature")) return `the signing certificate "${leaf.subjectText}" lacks a critical keyUsage with digitalSignature`;
  const forbidden = LEAF_FORBIDDEN_USAGES.find((usage) => has(leaf, usage));
  if (forbidden) return `the signing certificate "${leaf.subjectText}" has keyUsage ${forbidden}`;
  const eku = leaf.extendedKeyUsage?.find((usage) => FORBIDDEN_EKUS.has(usage));
  if (eku) return `the signing certificate "${leaf.subjectText}" has extended key usage ${eku}, not for code signing`;
  for (const [index, certificate] of chain.entries()) {
    // RFC 5280 4.2: a critical extension the verifier does not process (a constrained CA's nameConstraints) fails the chain.
    const unhandled = certificate.unhandledCritical[0];
    if (unhandled) return `certificate "${certificate.subjectText}" has a critical extension ${unhandled} that this registry does not check`;
    if (certificate.publicKey.kind === "rsa" && certificate.publicKey.bits < 2048) return `certificate "${certificate.subjectText}" has an RSA key under 2048 bits`;
    if (index === 0) continue;
    const constraints = certificate.basicConstraints;
    if (!constraints?.ca || !constraints.critical) return `certificate "${certificate.subjectText}" issues certificates but is not a CA (basicConstraints)`;
    // The CA certificates below this one, which its pathLenConstraint bounds.
    if (constraints.pathLength !== null && index - 1 > constraints.pathLength) return `certificate "${certificate.subjectText}" allows a path of ${constraints.pathLength} CA certificates below it`;
    if (!certificate.keyUsage?.critical || !has(certificate, "keyCertSign")) return `CA certificate "${certificate.subjectText}" lacks a critical keyUsage with keyCertSign`;
  }
  return null;
}

/** Each certificate is signed by the next; the last is a root, self-signed and in the trust store. */
async function chainProblem(chain: Certificate[], roots: TrustedRoot[]): Promise<string | null> {
  for (const [index, certificate] of chain.entries()) {
    const issuer = chain[index + 1] ?? certificate;
    if (!equalBytes(certificate.issuer, issuer.subject)) {
      return index + 1 < chain.length
        ? `certificate "${certificate.subjectText}" is not issued by the next in the chain ("${issuer.subjectText}")`
        : `the chain ends at "${certificate.subjectText}", issued by "${certificate.issuerText}", which is not in the chain: it must end at its root`;
    }
    if (!(await verifies(issuer.publicKey, certificate.signatureAlgorithm, certificate.signature, certificate.tbs))) {
      return `the signature on certificate "${certificate.subjectText}" does not verify with "${issuer.subjectText}"`;
    }
  }
  const root = chain.at(-1)!;
  if (roots.length === 0) return "no notation root in SIGNATURE_TRUST covers this repository";
  if (!roots.some((candidate) => equalBytes(candidate.certificate.der, root.der))) {
    return `the chain's root "${root.subjectText}" is not a trusted root for this repository (untrusted root)`;
  }
  return null;
}

function rfc3339(value: unknown): number | null {
  if (typeof value !== "string" || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i.test(value)) return null;
  const millis = Date.parse(value);
  return Number.isNaN(millis) ? null : millis;
}
