// Signature fixtures made in the test with WebCrypto: keys, cosign simple-signing payloads and signatures, a tiny DER
// writer for X.509 certificates (a CA of root, intermediate and leaf) and Notation JWS envelopes.

// ---- DER ----
function length(n: number): number[] {
  if (n < 0x80) return [n];
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return [0x80 | bytes.length, ...bytes];
}

export function tlv(tag: number, ...contents: Uint8Array[]): Uint8Array {
  const body = concat(...contents);
  return concat(new Uint8Array([tag, ...length(body.length)]), body);
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

export const seq = (...items: Uint8Array[]) => tlv(0x30, ...items);
const set = (...items: Uint8Array[]) => tlv(0x31, ...items);
const explicit = (n: number, ...items: Uint8Array[]) => tlv(0xa0 + n, ...items);
const bool = (value: boolean) => tlv(0x01, new Uint8Array([value ? 0xff : 0]));
const octets = (bytes: Uint8Array) => tlv(0x04, bytes);
const bits = (bytes: Uint8Array, unused = 0) => tlv(0x03, new Uint8Array([unused]), bytes);
const utf8 = (text: string) => tlv(0x0c, new TextEncoder().encode(text));

export function integer(value: Uint8Array | number): Uint8Array {
  let bytes = typeof value === "number" ? new Uint8Array(bigEndian(value)) : value;
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0 && !(bytes[start + 1]! & 0x80)) start++;
  bytes = bytes.subarray(start);
  if (bytes[0]! & 0x80) bytes = concat(new Uint8Array([0]), bytes);
  return tlv(0x02, bytes);
}

function bigEndian(value: number): number[] {
  const out: number[] = [];
  for (let v = value; v > 0; v = Math.floor(v / 256)) out.unshift(v & 0xff);
  return out.length ? out : [0];
}

export function oid(dotted: string): Uint8Array {
  const [a, b, ...rest] = dotted.split(".").map(Number) as number[];
  const out = [a! * 40 + b!];
  for (const part of rest) {
    const chunk: number[] = [part & 0x7f];
    for (let v = Math.floor(part / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift(0x80 | (v & 0x7f));
    out.push(...chunk);
  }
  return tlv(0x06, new Uint8Array(out));
}

function time(millis: number): Uint8Array {
  const iso = new Date(millis).toISOString();
  const digits = iso.slice(0, 19).replace(/[-:T]/g, "");
  const year = new Date(millis).getUTCFullYear();
  return year < 2050 ? tlv(0x17, new TextEncoder().encode(`${digits.slice(2)}Z`)) : tlv(0x18, new TextEncoder().encode(`${digits}Z`));
}

const name = (cn: string) => seq(set(seq(oid("2.5.4.10"), utf8("Signature Tests"))), set(seq(oid("2.5.4.3"), utf8(cn))));

// ---- keys and signatures ----
export type KeyPair = CryptoKeyPair & { kind: "ec" | "rsa-pkcs1" | "rsa-pss" };

export async function ecKey(curve: "P-256" | "P-384" = "P-256"): Promise<KeyPair> {
  return { ...((await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: curve }, true, ["sign", "verify"])) as CryptoKeyPair), kind: "ec" };
}

export async function rsaKey(kind: "rsa-pkcs1" | "rsa-pss" = "rsa-pkcs1", bitsLength = 2048): Promise<KeyPair> {
  const algorithm = { name: kind === "rsa-pss" ? "RSA-PSS" : "RSASSA-PKCS1-v1_5", modulusLength: bitsLength, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" };
  return { ...((await crypto.subtle.generateKey(algorithm, true, ["sign", "verify"])) as CryptoKeyPair), kind };
}

export async function spkiOf(key: KeyPair): Promise<Uint8Array> {
  return new Uint8Array((await crypto.subtle.exportKey("spki", key.publicKey)) as ArrayBuffer);
}

export function pem(label: string, der: Uint8Array): string {
  const base64 = btoa(String.fromCharCode(...der));
  return `-----BEGIN ${label}-----\n${base64.match(/.{1,64}/g)!.join("\n")}\n-----END ${label}-----\n`;
}

/** raw r || s (WebCrypto) as DER ECDSA-Sig-Value (cosign, X.509). */
export function rawToDer(raw: Uint8Array): Uint8Array {
  const half = raw.length / 2;
  return seq(integer(raw.subarray(0, half)), integer(raw.subarray(half)));
}

/** Signs as cosign does: ECDSA (DER) or RSA PKCS#1 v1.5, SHA-256. */
export async function cosignSign(key: KeyPair, payload: Uint8Array): Promise<string> {
  const signature = await sign(key, payload, "SHA-256");
  return btoa(String.fromCharCode(...(key.kind === "ec" ? rawToDer(signature) : signature)));
}

async function sign(key: KeyPair, data: Uint8Array, hash: string): Promise<Uint8Array> {
  const params = key.kind === "ec" ? { name: "ECDSA", hash } : key.kind === "rsa-pss" ? { name: "RSA-PSS", saltLength: 32 } : { name: "RSASSA-PKCS1-v1_5" };
  return new Uint8Array(await crypto.subtle.sign(params, key.privateKey, data));
}

export function simpleSigningPayload(digest: string, reference = "registry.test/signed/app"): string {
  return JSON.stringify({
    critical: { identity: { "docker-reference": reference }, image: { "docker-manifest-digest": digest }, type: "cosign container image signature" },
    optional: { creator: "signature tests" },
  });
}

// ---- X.509 ----
const DAY = 86_400_000;

export interface CertificateOptions {
  subject: string;
  issuer?: { name: string; key: KeyPair };
  key: KeyPair;
  ca?: boolean;
  pathLength?: number;
  /** keyUsage bits: digitalSignature (leaf) or keyCertSign and cRLSign (CA) by default. */
  keyUsage?: number[];
  codeSigning?: boolean;
  notBefore?: number;
  notAfter?: number;
  serial?: number;
}

export interface Issued {
  der: Uint8Array;
  pem: string;
  name: string;
  key: KeyPair;
}

/** A v3 certificate signed by its issuer's key (ECDSA with SHA-256) or by its own (a root). */
export async function certificate(options: CertificateOptions): Promise<Issued> {
  const issuer = options.issuer ?? { name: options.subject, key: options.key };
  if (issuer.key.kind !== "ec") throw new Error("fixtures sign certificates with EC keys");
  const algorithm = seq(oid("1.2.840.10045.4.3.2"));
  const extensions: Uint8Array[] = [];
  if (options.ca !== undefined) {
    const content = seq(...(options.ca ? [bool(true)] : []), ...(options.pathLength !== undefined ? [integer(options.pathLength)] : []));
    extensions.push(seq(oid("2.5.29.19"), bool(true), octets(content)));
  }
  const usage = options.keyUsage ?? (options.ca ? [5, 6] : [0]);
  let usageBits = 0;
  for (const bit of usage) usageBits |= 0x8000 >> bit;
  const usageBytes = usageBits & 0xff ? new Uint8Array([usageBits >> 8, usageBits & 0xff]) : new Uint8Array([usageBits >> 8]);
  extensions.push(seq(oid("2.5.29.15"), bool(true), octets(bits(usageBytes))));
  if (options.codeSigning) extensions.push(seq(oid("2.5.29.37"), octets(seq(oid("1.3.6.1.5.5.7.3.3")))));
  const now = Date.now();
  const tbs = seq(
    explicit(0, integer(2)),
    integer(options.serial ?? Math.floor(Math.random() * 2 ** 31)),
    algorithm,
    name(issuer.name),
    seq(time(options.notBefore ?? now - DAY), time(options.notAfter ?? now + 365 * DAY)),
    name(options.subject),
    await spkiOf(options.key),
    explicit(3, seq(...extensions)),
  );
  const signature = rawToDer(await sign(issuer.key, tbs, "SHA-256"));
  const der = seq(tbs, algorithm, bits(signature));
  return { der, pem: pem("CERTIFICATE", der), name: options.subject, key: options.key };
}

/** root → intermediate → leaf (code signing), all EC P-256. */
export async function certificateAuthority(prefix: string, leafOptions: Partial<CertificateOptions> = {}) {
  const root = await certificate({ subject: `${prefix} Root`, key: await ecKey(), ca: true });
  const intermediate = await certificate({ subject: `${prefix} Intermediate`, key: await ecKey(), ca: true, pathLength: 0, issuer: root });
  const leaf = await certificate({ subject: `${prefix} Signer`, key: await ecKey(), ca: false, codeSigning: true, issuer: intermediate, ...leafOptions });
  return { root, intermediate, leaf };
}

// ---- Notation ----
const base64url = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
const text = (value: string) => new TextEncoder().encode(value);

export interface EnvelopeOptions {
  chain: Issued[];
  target: { mediaType: string; digest: string; size: number };
  alg?: string;
  headers?: Record<string, unknown>;
  signingTime?: number;
  /** Changes the payload after signing. */
  tamper?: (payload: string) => string;
}

/** A flattened JWS JSON envelope (notaryproject signature-envelope-jws.md), signed by the chain's first key. */
export async function notationEnvelope(options: EnvelopeOptions): Promise<string> {
  const leaf = options.chain[0]!;
  const protectedHeader = {
    alg: options.alg ?? "ES256",
    cty: "application/vnd.cncf.notary.payload.v1+json",
    crit: ["io.cncf.notary.signingScheme"],
    "io.cncf.notary.signingScheme": "notary.x509",
    "io.cncf.notary.signingTime": new Date(options.signingTime ?? Date.now() - 60_000).toISOString().replace(/\.\d+Z$/, "Z"),
    ...options.headers,
  };
  const payloadJson = JSON.stringify({ targetArtifact: options.target });
  const protectedText = base64url(text(JSON.stringify(protectedHeader)));
  const payloadText = base64url(text(payloadJson));
  const signature = await sign(leaf.key, text(`${protectedText}.${payloadText}`), "SHA-256");
  return JSON.stringify({
    payload: options.tamper ? base64url(text(options.tamper(payloadJson))) : payloadText,
    protected: protectedText,
    header: { x5c: options.chain.map((cert) => btoa(String.fromCharCode(...cert.der))), "io.cncf.notary.signingAgent": "signature-tests/1.0" },
    signature: base64url(signature),
  });
}
