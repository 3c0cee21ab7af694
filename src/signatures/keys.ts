// Signature checks with WebCrypto. ECDSA signatures arrive DER-encoded from cosign and X.509 (SEQUENCE of r and s),
// raw (r || s) from JWS; WebCrypto takes raw only.
import { children, DerError, expect, parseDer, TAG, unsignedInteger } from "./der";
import type { Curve, Hash, PublicKey, SignatureAlgorithm } from "./x509";

const CURVE_BYTES: Record<Curve, number> = { "P-256": 32, "P-384": 48, "P-521": 66 };

/** A DER ECDSA-Sig-Value as WebCrypto's r || s, each left-padded to the curve's size. */
export function ecdsaDerToRaw(der: Uint8Array, curve: Curve): Uint8Array {
  const size = CURVE_BYTES[curve];
  const parts = children(expect(parseDer(der), TAG.sequence, "an ECDSA signature"));
  if (parts.length !== 2) throw new DerError("not an ECDSA signature");
  const raw = new Uint8Array(size * 2);
  parts.forEach((part, index) => {
    const value = unsignedInteger(part);
    if (value.length > size) throw new DerError("ECDSA signature value too long for the curve");
    raw.set(value, index * size + size - value.length);
  });
  return raw;
}

const imported = new Map<string, Promise<CryptoKey>>();
const MAX_IMPORTED = 256;

function importFor(key: PublicKey, algorithm: SignatureAlgorithm): Promise<CryptoKey> {
  const params =
    key.kind === "ec"
      ? { name: "ECDSA", namedCurve: key.curve }
      : { name: algorithm.kind === "pss" ? "RSA-PSS" : "RSASSA-PKCS1-v1_5", hash: algorithm.hash };
  // Keys come from configuration and from signatures' chains: a bounded memo, per isolate.
  const id = `${JSON.stringify(params)}:${btoa(String.fromCharCode(...key.spki))}`;
  let found = imported.get(id);
  if (!found) {
    if (imported.size >= MAX_IMPORTED) imported.clear();
    found = crypto.subtle.importKey("spki", key.spki, params, false, ["verify"]);
    // A key WebCrypto refuses is asked again next time rather than remembered as a rejected promise.
    found.catch(() => imported.delete(id));
    imported.set(id, found);
  }
  return found;
}

/**
 * Whether `signature` over `data` verifies with `key` by `algorithm`. `signature` is what the format carries: DER for
 * ECDSA unless `rawEcdsa`. Whatever is malformed (a key of the wrong kind, a signature that does not parse) is false.
 */
export async function verifies(key: PublicKey, algorithm: SignatureAlgorithm, signature: Uint8Array, data: Uint8Array, rawEcdsa = false): Promise<boolean> {
  if ((key.kind === "ec") !== (algorithm.kind === "ecdsa")) return false;
  try {
    const cryptoKey = await importFor(key, algorithm);
    if (key.kind === "ec") {
      const raw = rawEcdsa ? signature : ecdsaDerToRaw(signature, key.curve);
      if (raw.length !== CURVE_BYTES[key.curve] * 2) return false;
      return await crypto.subtle.verify({ name: "ECDSA", hash: algorithm.hash }, cryptoKey, raw, data);
    }
    const params = algorithm.kind === "pss" ? { name: "RSA-PSS", saltLength: algorithm.saltLength } : { name: "RSASSA-PKCS1-v1_5" };
    return await crypto.subtle.verify(params, cryptoKey, signature, data);
  } catch {
    return false;
  }
}

export const HASH_BYTES: Record<Hash, number> = { "SHA-256": 32, "SHA-384": 48, "SHA-512": 64 };
