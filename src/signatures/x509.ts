// X.509 certificates and public keys (RFC 5280), read with der.ts: only what verifying a signature and a chain
// needs, namely names, validity, the public key, the issuer's signature, basicConstraints, keyUsage and
// extendedKeyUsage (the only extensions the Notary Project honours; others are skipped, as its spec says).
import { bitString, booleanOf, children, DerError, expect, oidOf, parseDer, smallInteger, TAG, timeOf, unsignedInteger, type Node } from "./der";

export type Curve = "P-256" | "P-384" | "P-521";
export type Hash = "SHA-256" | "SHA-384" | "SHA-512";

/** A SubjectPublicKeyInfo of a kind WebCrypto verifies with. */
export type PublicKey = { spki: Uint8Array } & ({ kind: "ec"; curve: Curve } | { kind: "rsa"; bits: number });

/** How an issuer signed a certificate. */
export type SignatureAlgorithm = { kind: "ecdsa"; hash: Hash } | { kind: "pkcs1"; hash: Hash } | { kind: "pss"; hash: Hash; saltLength: number };

export interface Certificate {
  der: Uint8Array;
  /** The signed part (tbsCertificate), as encoded. */
  tbs: Uint8Array;
  signatureAlgorithm: SignatureAlgorithm;
  signature: Uint8Array;
  /** Names as encoded (compared byte for byte) and as text (for people). */
  issuer: Uint8Array;
  subject: Uint8Array;
  subjectText: string;
  issuerText: string;
  notBefore: number;
  notAfter: number;
  publicKey: PublicKey;
  basicConstraints: { critical: boolean; ca: boolean; pathLength: number | null } | null;
  /** Bit n of the KeyUsage BIT STRING is `bits & (1 << n)` (0: digitalSignature, 5: keyCertSign). */
  keyUsage: { critical: boolean; bits: number } | null;
  extendedKeyUsage: string[] | null;
  /** Critical extensions this reader does not process (nameConstraints, policy constraints, ...): their OIDs. */
  unhandledCritical: string[];
}

// Extensions that are read (basicConstraints, keyUsage, extendedKeyUsage) or that constrain nothing a verdict relies
// on (subjectAltName: names are shown, never matched; the key identifiers).
const HANDLED_EXTENSIONS = new Set(["2.5.29.19", "2.5.29.15", "2.5.29.37", "2.5.29.17", "2.5.29.14", "2.5.29.35"]);

export const KEY_USAGE = {
  digitalSignature: 0,
  nonRepudiation: 1,
  keyEncipherment: 2,
  dataEncipherment: 3,
  keyAgreement: 4,
  keyCertSign: 5,
  cRLSign: 6,
  encipherOnly: 7,
  decipherOnly: 8,
} as const;

const CURVES: Record<string, Curve> = {
  "1.2.840.10045.3.1.7": "P-256",
  "1.3.132.0.34": "P-384",
  "1.3.132.0.35": "P-521",
};

const HASHES: Record<string, Hash> = {
  "2.16.840.1.101.3.4.2.1": "SHA-256",
  "2.16.840.1.101.3.4.2.2": "SHA-384",
  "2.16.840.1.101.3.4.2.3": "SHA-512",
};

// SHA-1 (and MD5) signatures are refused: the Notary Project forbids them, and they prove little.
const SIGNATURE_ALGORITHMS: Record<string, SignatureAlgorithm> = {
  "1.2.840.113549.1.1.11": { kind: "pkcs1", hash: "SHA-256" },
  "1.2.840.113549.1.1.12": { kind: "pkcs1", hash: "SHA-384" },
  "1.2.840.113549.1.1.13": { kind: "pkcs1", hash: "SHA-512" },
  "1.2.840.10045.4.3.2": { kind: "ecdsa", hash: "SHA-256" },
  "1.2.840.10045.4.3.3": { kind: "ecdsa", hash: "SHA-384" },
  "1.2.840.10045.4.3.4": { kind: "ecdsa", hash: "SHA-512" },
};
const RSASSA_PSS = "1.2.840.113549.1.1.10";

const NAME_ATTRIBUTES: Record<string, string> = {
  "2.5.4.3": "CN",
  "2.5.4.5": "serialNumber",
  "2.5.4.6": "C",
  "2.5.4.7": "L",
  "2.5.4.8": "ST",
  "2.5.4.10": "O",
  "2.5.4.11": "OU",
  "1.2.840.113549.1.9.1": "emailAddress",
};

/** The DER bodies of a PEM text's blocks with this label, in order. */
export function pemBlocks(text: string, label: string): Uint8Array[] {
  const blocks: Uint8Array[] = [];
  const pattern = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
  for (const match of text.matchAll(pattern)) {
    if (match[1] !== label) throw new DerError(`holds a ${match[1]} block, not ${label}`);
    const base64 = match[2]!.replace(/\s+/g, "");
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) throw new DerError("not base64 inside the PEM block");
    blocks.push(Uint8Array.from(atob(base64), (c) => c.charCodeAt(0)));
  }
  if (blocks.length === 0) throw new DerError(`no -----BEGIN ${label}----- block`);
  return blocks;
}

/** A SubjectPublicKeyInfo: EC on P-256, P-384 or P-521, or RSA of at least 2048 bits. */
export function parsePublicKey(spki: Uint8Array): PublicKey {
  const [algorithm, key, ...rest] = children(expect(parseDer(spki), TAG.sequence, "a SubjectPublicKeyInfo"));
  if (!algorithm || !key || rest.length > 0) throw new DerError("not a SubjectPublicKeyInfo");
  const [oid, parameters] = children(expect(algorithm, TAG.sequence, "an algorithm identifier"));
  const { bytes } = bitString(expect(key, TAG.bitString, "a public key"));
  const id = oidOf(oid!);
  if (id === "1.2.840.10045.2.1") {
    const curve = parameters?.tag === TAG.oid ? CURVES[oidOf(parameters)] : undefined;
    if (!curve) throw new DerError("an EC key on a curve other than P-256, P-384 or P-521");
    return { kind: "ec", curve, spki };
  }
  if (id === "1.2.840.113549.1.1.1") {
    const [modulus] = children(expect(parseDer(bytes), TAG.sequence, "an RSA public key"));
    const magnitude = unsignedInteger(modulus!);
    const bits = magnitude.length * 8 - Math.clz32(magnitude[0]!) + 24;
    if (bits < 2048) throw new DerError(`an RSA key of ${bits} bits (at least 2048 are needed)`);
    return { kind: "rsa", bits, spki };
  }
  throw new DerError(`a key of algorithm ${id}, not EC or RSA`);
}

export function parseCertificate(der: Uint8Array): Certificate {
  const [tbsNode, algorithmNode, signatureNode, ...rest] = children(expect(parseDer(der), TAG.sequence, "a certificate"));
  if (!tbsNode || !algorithmNode || !signatureNode || rest.length > 0) throw new DerError("not a certificate");
  const fields = children(expect(tbsNode, TAG.sequence, "a tbsCertificate"));
  // version [0] EXPLICIT, then serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, ...
  let at = fields[0]?.tag === 0xa0 ? 1 : 0;
  const [, innerAlgorithm, issuer, validity, subject, spki] = fields.slice(at, at + 6);
  at += 6;
  if (!innerAlgorithm || !issuer || !validity || !subject || !spki) throw new DerError("not a certificate");
  const signatureAlgorithm = parseSignatureAlgorithm(algorithmNode);
  if (!equalNodes(innerAlgorithm, algorithmNode)) throw new DerError("the two signature algorithms differ");
  const [notBefore, notAfter] = children(expect(validity, TAG.sequence, "a validity"));
  const certificate: Certificate = {
    der,
    tbs: tbsNode.raw,
    signatureAlgorithm,
    signature: bitString(signatureNode).bytes,
    issuer: expect(issuer, TAG.sequence, "an issuer name").raw,
    subject: expect(subject, TAG.sequence, "a subject name").raw,
    subjectText: nameText(subject),
    issuerText: nameText(issuer),
    notBefore: timeOf(notBefore!),
    notAfter: timeOf(notAfter!),
    publicKey: parsePublicKey(spki.raw),
    basicConstraints: null,
    keyUsage: null,
    extendedKeyUsage: null,
    unhandledCritical: [],
  };
  const extensions = fields.slice(at).find((node) => node.tag === 0xa3);
  if (extensions) readExtensions(certificate, children(expect(children(extensions)[0], TAG.sequence, "extensions")));
  return certificate;
}

function equalNodes(a: Node, b: Node): boolean {
  return a.raw.length === b.raw.length && a.raw.every((byte, i) => byte === b.raw[i]);
}

function parseSignatureAlgorithm(node: Node): SignatureAlgorithm {
  const [oid, parameters] = children(expect(node, TAG.sequence, "an algorithm identifier"));
  const id = oidOf(oid!);
  const known = SIGNATURE_ALGORITHMS[id];
  if (known) return known;
  if (id !== RSASSA_PSS || !parameters) throw new DerError(`unsupported signature algorithm ${id}`);
  // RSASSA-PSS-params: [0] hashAlgorithm (default SHA-1, refused), [1] maskGenAlgorithm, [2] saltLength.
  let hash: Hash | undefined;
  let saltLength = 20;
  for (const field of children(expect(parameters, TAG.sequence, "PSS parameters"))) {
    if (field.tag === 0xa0) hash = HASHES[oidOf(children(children(field)[0]!)[0]!)];
    if (field.tag === 0xa2) saltLength = smallInteger(children(field)[0]!);
  }
  if (!hash) throw new DerError("RSASSA-PSS with SHA-1 or an unknown hash");
  return { kind: "pss", hash, saltLength };
}

function readExtensions(certificate: Certificate, extensions: Node[]): void {
  for (const extension of extensions) {
    const parts = children(expect(extension, TAG.sequence, "an extension"));
    const id = oidOf(parts[0]!);
    const critical = parts.length === 3 ? booleanOf(parts[1]!) : false;
    const value = parseDer(expect(parts.at(-1), TAG.octetString, "an extension value").contents);
    if (critical && !HANDLED_EXTENSIONS.has(id)) certificate.unhandledCritical.push(id);
    if (id === "2.5.29.19") {
      const inner = children(expect(value, TAG.sequence, "basicConstraints"));
      const ca = inner[0]?.tag === TAG.boolean ? booleanOf(inner[0]) : false;
      const length = inner.find((node) => node.tag === TAG.integer);
      certificate.basicConstraints = { critical, ca, pathLength: length ? smallInteger(length) : null };
    } else if (id === "2.5.29.15") {
      const { bytes } = bitString(value, true);
      // Named bits, first bit the most significant of the first byte.
      let bits = 0;
      for (let bit = 0; bit < Math.min(bytes.length * 8, 16); bit++) if (bytes[bit >> 3]! & (0x80 >> (bit & 7))) bits |= 1 << bit;
      certificate.keyUsage = { critical, bits };
    } else if (id === "2.5.29.37") {
      certificate.extendedKeyUsage = children(expect(value, TAG.sequence, "extendedKeyUsage")).map(oidOf);
    }
  }
}

/** A Name as people read it: "CN=release, O=Example" (RDNs in their encoded order). */
function nameText(name: Node): string {
  const parts: string[] = [];
  for (const rdn of children(name)) {
    for (const attribute of children(expect(rdn, TAG.set, "a relative distinguished name"))) {
      const [type, value] = children(expect(attribute, TAG.sequence, "an attribute"));
      const id = oidOf(type!);
      parts.push(`${NAME_ATTRIBUTES[id] ?? id}=${new TextDecoder().decode(value!.contents)}`);
    }
  }
  return parts.join(", ");
}
