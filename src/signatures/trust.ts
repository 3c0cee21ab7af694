import { z } from "zod";
import { patternMatches, RepositoryPattern } from "../auth/scopes";
import { jsonList } from "../json-setting";
import { parseCertificate, parsePublicKey, pemBlocks, type Certificate, type PublicKey } from "./x509";

// SIGNATURE_TRUST: which keys and roots vouch for which repositories (README: "Signatures").
//   [{"repositories": ["team/*"], "cosignKeys": [{"name": "release", "pem": "-----BEGIN PUBLIC KEY-----\n..."}],
//     "notationRoots": [{"name": "corp-ca", "pem": "-----BEGIN CERTIFICATE-----\n..."}]}]
// Keys and certificates are parsed when the configuration is (a bad one fails the Worker's start, naming the entry);
// a signature of a repository is checked against every key and root of every entry whose patterns match it.

const Name = z.string().min(1).max(100);
const Pem = z.string().min(1).max(64 * 1024);

export interface TrustedKey {
  name: string;
  key: PublicKey;
}

export interface TrustedRoot {
  name: string;
  certificate: Certificate;
}

const CosignKey = z.object({ name: Name, pem: Pem }).transform(({ name, pem }, context): TrustedKey => {
  try {
    const [spki, ...more] = pemBlocks(pem, "PUBLIC KEY");
    if (more.length > 0) throw new Error("holds more than one key (give each its own entry)");
    return { name, key: parsePublicKey(spki!) };
  } catch (error) {
    context.addIssue({ code: "custom", message: `cosign key "${name}": not a usable PEM public key: ${(error as Error).message}` });
    return z.NEVER;
  }
});

const NotationRoot = z.object({ name: Name, pem: Pem }).transform(({ name, pem }, context): TrustedRoot[] => {
  try {
    return pemBlocks(pem, "CERTIFICATE").map((der) => ({ name, certificate: parseCertificate(der) }));
  } catch (error) {
    context.addIssue({ code: "custom", message: `notation root "${name}": not a usable PEM certificate: ${(error as Error).message}` });
    return z.NEVER;
  }
});

export const TrustEntry = z.object({
  repositories: z.array(RepositoryPattern).min(1),
  cosignKeys: z.array(CosignKey).default([]),
  notationRoots: z.array(NotationRoot).default([]).transform((roots) => roots.flat()),
});
export type TrustEntry = z.infer<typeof TrustEntry>;

export const SignatureTrust = jsonList(TrustEntry);

/** What one repository's signatures are checked against, and a fingerprint of it that changes when any of it does. */
export interface RepositoryTrust {
  cosignKeys: TrustedKey[];
  notationRoots: TrustedRoot[];
  fingerprint: string;
}

// Bump when what verification accepts changes: every stored verdict is then recomputed.
const VERIFIER_VERSION = "2";

// Computed with WebCrypto when first asked (config.ts is also bundled for Node by check-config: no hashing library).
const memo = new WeakMap<readonly TrustEntry[], Map<string, Promise<RepositoryTrust>>>();
const MAX_MEMO = 1000;

export function trustFor(entries: readonly TrustEntry[], repository: string): Promise<RepositoryTrust> {
  let byRepository = memo.get(entries);
  if (!byRepository) memo.set(entries, (byRepository = new Map()));
  const found = byRepository.get(repository);
  if (found) return found;
  const matching = entries.filter((entry) => entry.repositories.some((pattern) => patternMatches(pattern, repository)));
  const cosignKeys = matching.flatMap((entry) => entry.cosignKeys);
  const notationRoots = matching.flatMap((entry) => entry.notationRoots);
  const trust = (async () => {
    const text = JSON.stringify([
      VERIFIER_VERSION,
      await Promise.all(cosignKeys.map(async ({ name, key }) => [name, await sha256Hex(key.spki)])),
      await Promise.all(notationRoots.map(async ({ name, certificate }) => [name, await sha256Hex(certificate.der)])),
    ]);
    return { cosignKeys, notationRoots, fingerprint: (await sha256Hex(new TextEncoder().encode(text))).slice(0, 32) };
  })();
  if (byRepository.size >= MAX_MEMO) byRepository.clear();
  byRepository.set(repository, trust);
  return trust;
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  return [...new Uint8Array(await crypto.subtle.digest("SHA-256", bytes))].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}
