import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { ConfigError, parseConfig, type Env } from "../../src/config";
import { MAX_SIGNATURE_BYTES } from "../../src/signatures/verdicts";
import { callWith, OCI_MANIFEST, pushBlobThrough, randomBytes, sha256 } from "./helpers";
import {
  certificate,
  certificateAuthority,
  cosignSign,
  ecKey,
  notationEnvelope,
  pem,
  rsaKey,
  simpleSigningPayload,
  spkiOf,
  type Issued,
  type KeyPair,
} from "./signature-fixtures";

// Signature verification (README: "Signatures"): cosign signatures made with a key, as OCI 1.1 referrers and under
// sha256-<hex>.sig tags, and Notation JWS envelopes with an X.509 chain, checked against SIGNATURE_TRUST when they
// are pushed and shown, with their verdict, in the tag API and the UI.

const COSIGN_ARTIFACT = "application/vnd.dev.cosign.artifact.sig.v1+json";
const SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json";
const NOTATION_ARTIFACT = "application/vnd.cncf.notary.signature";
const EMPTY = "application/vnd.oci.empty.v1+json";

interface Verdict {
  status: "verified" | "invalid" | "unsigned" | "pending";
  signers?: { format: string; signer: string; signature: string }[];
  problems?: { format: string; reason: string }[];
}

let ecRelease: KeyPair;
let rsaRelease: KeyPair;
let stranger: KeyPair;
let ecP384: KeyPair;
let ca: Awaited<ReturnType<typeof certificateAuthority>>;
let otherCa: Awaited<ReturnType<typeof certificateAuthority>>;
let trust: object[];
let signedEnv: Env;

/** A request to the Worker with SIGNATURE_TRUST set (open auth, as the other workers tests), after its waitUntil work. */
const send = (path: string, init: RequestInit = {}, callEnv: Env = signedEnv) => callWith(callEnv, path, init);

const blob = (repository: string, bytes: Uint8Array | string) => pushBlobThrough(send, repository, bytes);

async function manifest(repository: string, reference: string, body: object, callEnv: Env = signedEnv): Promise<{ mediaType: string; digest: string; size: number }> {
  const text = JSON.stringify(body);
  const response = await send(`/v2/${repository}/manifests/${reference}`, { method: "PUT", headers: { "Content-Type": OCI_MANIFEST }, body: text }, callEnv);
  expect(response.status, await response.clone().text()).toBe(201);
  return { mediaType: OCI_MANIFEST, digest: response.headers.get("Docker-Content-Digest")!, size: new TextEncoder().encode(text).byteLength };
}

/** A small image pushed under `tag`: the manifest signatures are attached to. */
async function image(repository: string, tag: string) {
  const config = await blob(repository, JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] }, tag }));
  const layer = await blob(repository, randomBytes(512));
  return manifest(repository, tag, {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...layer }],
  });
}

interface CosignLayer {
  payload: string;
  signature: string;
}

/** A cosign signature manifest as an OCI 1.1 referrer of `subject` (cosign --registry-referrers-mode=oci-1-1). */
async function cosignReferrer(repository: string, subject: { mediaType: string; digest: string; size: number }, layers: CosignLayer[], callEnv = signedEnv) {
  const empty = await blob(repository, "{}");
  const descriptors = [];
  for (const layer of layers) {
    descriptors.push({ mediaType: SIMPLE_SIGNING, ...(await blob(repository, layer.payload)), annotations: { "dev.cosignproject.cosign/signature": layer.signature } });
  }
  return manifest(repository, (await sha256(JSON.stringify(descriptors) + subject.digest)).replace(":", "-").slice(0, 60), {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: COSIGN_ARTIFACT,
    config: { mediaType: EMPTY, ...empty },
    layers: descriptors,
    subject,
  }, callEnv);
}

/** A cosign signature manifest in the older scheme: tagged sha256-<hex>.sig, layers one per signature. */
async function cosignTag(repository: string, signed: string, layers: CosignLayer[]) {
  const config = await blob(repository, JSON.stringify({ architecture: "", config: {}, created: "0001-01-01T00:00:00Z", os: "", rootfs: { type: "layers", diff_ids: [] } }));
  const descriptors = [];
  for (const layer of layers) {
    descriptors.push({ mediaType: SIMPLE_SIGNING, ...(await blob(repository, layer.payload)), annotations: { "dev.cosignproject.cosign/signature": layer.signature } });
  }
  return manifest(repository, `${signed.replace(":", "-")}.sig`, {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
    layers: descriptors,
  });
}

async function signedPayload(key: KeyPair, digest: string, payload = simpleSigningPayload(digest)): Promise<CosignLayer> {
  return { payload, signature: await cosignSign(key, new TextEncoder().encode(payload)) };
}

/** A Notation signature manifest (notation sign): a referrer whose one layer is the JWS envelope. */
async function notationReferrer(repository: string, subject: { mediaType: string; digest: string; size: number }, envelope: string) {
  const empty = await blob(repository, "{}");
  return manifest(repository, `notation-${crypto.randomUUID()}`, {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: NOTATION_ARTIFACT,
    config: { mediaType: EMPTY, ...empty },
    layers: [{ mediaType: "application/jose+json", ...(await blob(repository, envelope)) }],
    subject,
    annotations: { "io.cncf.notary.x509chain.thumbprint#S256": "[]" },
  });
}

async function verdictOf(repository: string, tag: string, callEnv = signedEnv): Promise<Verdict> {
  const response = await send(`/api/repositories/${repository}/tags?n=100`, {}, callEnv);
  expect(response.status).toBe(200);
  const body = (await response.json()) as { tags: { name: string; signature: Verdict }[] };
  const found = body.tags.find((entry) => entry.name === tag);
  expect(found, `tag ${tag}`).toBeDefined();
  return found!.signature;
}

async function storedVerdict(repository: string, digest: string) {
  return env.DB.prepare("SELECT status, fingerprint, inputs FROM signature_verdicts WHERE repository = ? AND digest = ?")
    .bind(repository, digest)
    .first<{ status: string; fingerprint: string; inputs: string }>();
}

const chainOf = (...certificates: Issued[]) => certificates;

beforeAll(async () => {
  [ecRelease, rsaRelease, stranger, ecP384] = await Promise.all([ecKey(), rsaKey(), ecKey(), ecKey("P-384")]);
  ca = await certificateAuthority("Corp");
  otherCa = await certificateAuthority("Elsewhere");
  trust = [
    {
      repositories: ["signed/*"],
      cosignKeys: [
        { name: "release-ec", pem: pem("PUBLIC KEY", await spkiOf(ecRelease)) },
        { name: "release-rsa", pem: pem("PUBLIC KEY", await spkiOf(rsaRelease)) },
      ],
      notationRoots: [{ name: "corp-ca", pem: ca.root.pem }],
    },
    { repositories: ["signed/cosign-p384"], cosignKeys: [{ name: "release-p384", pem: pem("PUBLIC KEY", await spkiOf(ecP384)) }] },
  ];
  signedEnv = { ...env, AUTH_MODE: "open", SIGNATURE_TRUST: JSON.stringify(trust) } as unknown as Env;
});

describe("cosign signatures made with a key", () => {
  it("verifies an ECDSA P-256 signature pushed as an OCI 1.1 referrer, when it is pushed, and names the key", async () => {
    const repository = "signed/cosign-referrer";
    const subject = await image(repository, "v1");
    const signature = await cosignReferrer(repository, subject, [await signedPayload(ecRelease, subject.digest)]);
    // Computed after the push's response (waitUntil), before anyone asked.
    expect((await storedVerdict(repository, subject.digest))?.status).toBe("verified");
    const verdict = await verdictOf(repository, "v1");
    expect(verdict.status).toBe("verified");
    expect(verdict.signers).toEqual([{ format: "cosign", signature: signature.digest, layer: 0, signer: "release-ec" }]);
  });

  it("verifies an RSA signature under the sha256-<hex>.sig tag", async () => {
    const repository = "signed/cosign-tag";
    const subject = await image(repository, "v1");
    await cosignTag(repository, subject.digest, [await signedPayload(rsaRelease, subject.digest)]);
    const verdict = await verdictOf(repository, "v1");
    expect(verdict.status).toBe("verified");
    expect(verdict.signers?.[0]).toMatchObject({ format: "cosign", signer: "release-rsa" });
  });

  it("verifies a payload with extra whitespace: the signature covers the bytes, whatever their layout", async () => {
    const repository = "signed/cosign-whitespace";
    const subject = await image(repository, "v1");
    const payload = `  ${JSON.stringify(JSON.parse(simpleSigningPayload(subject.digest)), null, 4)}\n\n`;
    await cosignReferrer(repository, subject, [await signedPayload(ecRelease, subject.digest, payload)]);
    expect((await verdictOf(repository, "v1")).status).toBe("verified");
  });

  it("verifies a P-384 key's signature (SHA-256, as cosign hashes) where a second entry trusts it", async () => {
    const repository = "signed/cosign-p384";
    const subject = await image(repository, "v1");
    await cosignReferrer(repository, subject, [await signedPayload(ecP384, subject.digest)]);
    expect((await verdictOf(repository, "v1")).signers?.[0]?.signer).toBe("release-p384");
    // The P-384 key vouches for that repository only.
    const elsewhere = "signed/cosign-p384-elsewhere";
    const other = await image(elsewhere, "v1");
    await cosignReferrer(elsewhere, other, [await signedPayload(ecP384, other.digest)]);
    expect((await verdictOf(elsewhere, "v1")).status).toBe("invalid");
  });

  it("finds a tampered payload invalid: the signature no longer covers it", async () => {
    const repository = "signed/cosign-tampered";
    const subject = await image(repository, "v1");
    const honest = await signedPayload(ecRelease, subject.digest);
    const tampered = { payload: honest.payload.replace("registry.test/signed/app", "registry.test/signed/evil"), signature: honest.signature };
    await cosignReferrer(repository, subject, [tampered]);
    const verdict = await verdictOf(repository, "v1");
    expect(verdict.status).toBe("invalid");
    expect(verdict.problems?.[0]?.reason).toMatch(/does not verify with any trusted cosign key/);
  });

  it("finds a signature of digest A attached to digest B invalid, as a referrer and under B's .sig tag", async () => {
    const repository = "signed/cosign-wrong-digest";
    const a = await image(repository, "a");
    const b = await image(repository, "b");
    const forA = await signedPayload(ecRelease, a.digest);
    await cosignReferrer(repository, b, [forA]);
    await cosignTag(repository, b.digest, [forA]);
    const verdict = await verdictOf(repository, "b");
    expect(verdict.status).toBe("invalid");
    expect(verdict.problems).toHaveLength(2);
    for (const problem of verdict.problems!) expect(problem.reason).toContain(`names ${a.digest}, not this manifest (${b.digest})`);
    // A itself carries no signature: the one that names it is attached to B.
    expect((await verdictOf(repository, "a")).status).toBe("unsigned");
  });

  it("finds a signature by a key SIGNATURE_TRUST does not list invalid", async () => {
    const repository = "signed/cosign-wrong-key";
    const subject = await image(repository, "v1");
    await cosignReferrer(repository, subject, [await signedPayload(stranger, subject.digest)]);
    const verdict = await verdictOf(repository, "v1");
    expect(verdict.status).toBe("invalid");
    expect(verdict.problems?.[0]?.reason).toMatch(/does not verify with any trusted cosign key/);
  });

  it("is verified when one of several signatures verifies, and lists the others' problems", async () => {
    const repository = "signed/cosign-several";
    const subject = await image(repository, "v1");
    await cosignTag(repository, subject.digest, [await signedPayload(stranger, subject.digest), await signedPayload(ecRelease, subject.digest)]);
    const verdict = await verdictOf(repository, "v1");
    expect(verdict.status).toBe("verified");
    expect(verdict.signers?.map((signer) => signer.signer)).toEqual(["release-ec"]);
    expect(verdict.problems).toHaveLength(1);
  });

  it("reports an image with no signature (an SBOM attached only) as unsigned", async () => {
    const repository = "signed/unsigned";
    const subject = await image(repository, "v1");
    const empty = await blob(repository, "{}");
    const sbom = await blob(repository, JSON.stringify({ spdxVersion: "SPDX-2.3" }));
    await manifest(repository, "sbom", {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: "application/spdx+json",
      config: { mediaType: EMPTY, ...empty },
      layers: [{ mediaType: "application/spdx+json", ...sbom }],
      subject,
    });
    expect(await verdictOf(repository, "v1")).toEqual({ status: "unsigned" });
    expect(await storedVerdict(repository, subject.digest)).toBeNull();
  });

  it("refuses to read a signature blob larger than the bound", async () => {
    const repository = "signed/cosign-oversized";
    const subject = await image(repository, "v1");
    const payload = simpleSigningPayload(subject.digest).replace('"creator":"signature tests"', `"padding":"${"x".repeat(MAX_SIGNATURE_BYTES)}"`);
    await cosignReferrer(repository, subject, [await signedPayload(ecRelease, subject.digest, payload)]);
    const verdict = await verdictOf(repository, "v1");
    expect(verdict.status).toBe("invalid");
    expect(verdict.problems?.[0]?.reason).toBe(`the signature blob is larger than ${MAX_SIGNATURE_BYTES} bytes`);
  });
});

describe("Notation signatures (JWS, X.509 chain)", () => {
  async function notationCase(repository: string, options: Partial<Parameters<typeof notationEnvelope>[0]> = {}) {
    const subject = await image(repository, "v1");
    const envelope = await notationEnvelope({ chain: chainOf(ca.leaf, ca.intermediate, ca.root), target: subject, ...options });
    await notationReferrer(repository, subject, envelope);
    return { subject, verdict: await verdictOf(repository, "v1") };
  }

  it("verifies an envelope whose chain ends at a trusted root, naming the signing certificate and the root", async () => {
    const { verdict } = await notationCase("signed/notation-valid");
    expect(verdict.status).toBe("verified");
    expect(verdict.signers?.[0]).toMatchObject({ format: "notation", signer: "O=Signature Tests, CN=Corp Signer (root corp-ca)" });
  });

  it("verifies a PS256 envelope signed with an RSA 2048 key", async () => {
    const rsaLeaf = await certificate({ subject: "Corp RSA Signer", key: await rsaKey("rsa-pss"), ca: false, codeSigning: true, issuer: ca.intermediate });
    const { verdict } = await notationCase("signed/notation-rsa", { chain: chainOf(rsaLeaf, ca.intermediate, ca.root), alg: "PS256" });
    expect(verdict.status).toBe("verified");
    expect(verdict.signers?.[0]?.signer).toBe("O=Signature Tests, CN=Corp RSA Signer (root corp-ca)");
  });

  it("finds an x5c certificate that does not parse invalid, saying which", async () => {
    const truncated = { ...ca.leaf, der: ca.leaf.der.subarray(0, ca.leaf.der.length - 10) };
    const { verdict } = await notationCase("signed/notation-truncated", { chain: chainOf(ca.leaf, truncated as Issued, ca.root) });
    expect(verdict.status).toBe("invalid");
    expect(verdict.problems?.[0]?.reason).toMatch(/^x5c\[1\] is not a usable certificate: /);
  });

  it("finds an envelope whose payload was changed after signing invalid", async () => {
    const { verdict } = await notationCase("signed/notation-tampered", { tamper: (payload) => payload.replace('"size":', '"size":1') });
    expect(verdict.status).toBe("invalid");
    expect(verdict.problems?.[0]?.reason).toMatch(/JWS signature does not verify/);
  });

  it("finds a signed payload naming another manifest invalid", async () => {
    const repository = "signed/notation-wrong-digest";
    const other = await image(repository, "other");
    const subject = await image(repository, "v1");
    await notationReferrer(repository, subject, await notationEnvelope({ chain: chainOf(ca.leaf, ca.intermediate, ca.root), target: other }));
    const verdict = await verdictOf(repository, "v1");
    expect(verdict.status).toBe("invalid");
    expect(verdict.problems?.[0]?.reason).toContain(`names ${other.digest}, not this manifest`);
  });

  it("finds a chain with an expired signing certificate invalid, with the reason", async () => {
    const now = Date.now();
    const expired = await certificate({
      subject: "Corp Expired Signer",
      key: await ecKey(),
      ca: false,
      codeSigning: true,
      issuer: ca.intermediate,
      notBefore: now - 30 * 86_400_000,
      notAfter: now - 86_400_000,
    });
    const { verdict } = await notationCase("signed/notation-expired", { chain: chainOf(expired, ca.intermediate, ca.root), signingTime: now - 10 * 86_400_000 });
    expect(verdict.status).toBe("invalid");
    expect(verdict.problems?.[0]?.reason).toMatch(/^certificate "O=Signature Tests, CN=Corp Expired Signer" expired at /);
  });

  it("finds a signing time outside the certificate's validity invalid", async () => {
    const { verdict } = await notationCase("signed/notation-signing-time", { signingTime: Date.now() - 5 * 86_400_000 });
    expect(verdict.status).toBe("invalid");
    expect(verdict.problems?.[0]?.reason).toMatch(/was not valid at the signing time/);
  });

  it("finds a leaf of the same subject issued under an untrusted root invalid", async () => {
    const impostor = await certificate({ subject: "Corp Signer", key: await ecKey(), ca: false, codeSigning: true, issuer: otherCa.intermediate });
    const { verdict } = await notationCase("signed/notation-untrusted", { chain: chainOf(impostor, otherCa.intermediate, otherCa.root) });
    expect(verdict.status).toBe("invalid");
    expect(verdict.problems?.[0]?.reason).toBe('the chain\'s root "O=Signature Tests, CN=Elsewhere Root" is not a trusted root for this repository (untrusted root)');
  });

  it("finds a chain whose intermediate is not a CA invalid", async () => {
    const notCa = await certificate({ subject: "Corp Not A CA", key: await ecKey(), ca: false, issuer: ca.root, keyUsage: [0, 5] });
    const leaf = await certificate({ subject: "Corp Signer Below", key: await ecKey(), ca: false, codeSigning: true, issuer: notCa });
    const { verdict } = await notationCase("signed/notation-not-ca", { chain: chainOf(leaf, notCa, ca.root) });
    expect(verdict.status).toBe("invalid");
    expect(verdict.problems?.[0]?.reason).toBe('certificate "O=Signature Tests, CN=Corp Not A CA" issues certificates but is not a CA (basicConstraints)');
  });

  it("finds a chain that skips a link (leaf, then the root that did not sign it) invalid", async () => {
    const { verdict } = await notationCase("signed/notation-gap", { chain: chainOf(ca.leaf, ca.root) });
    expect(verdict.status).toBe("invalid");
    expect(verdict.problems?.[0]?.reason).toMatch(/is not issued by the next in the chain/);
  });

  it("finds an alg that does not match the signing key invalid (algorithm substitution)", async () => {
    const { verdict } = await notationCase("signed/notation-alg", { alg: "PS256" });
    expect(verdict.status).toBe("invalid");
    expect(verdict.problems?.[0]?.reason).toBe("alg PS256 does not match the signing certificate's key (EC P-256)");
  });

  it("finds a critical header it does not understand invalid, and a past expiry", async () => {
    const unknown = await notationCase("signed/notation-crit", {
      headers: { crit: ["io.cncf.notary.signingScheme", "com.example.mustUnderstand"], "com.example.mustUnderstand": true },
    });
    expect(unknown.verdict.problems?.[0]?.reason).toBe("the critical header com.example.mustUnderstand is not understood");
    const expiredSignature = await notationCase("signed/notation-expiry", {
      headers: { crit: ["io.cncf.notary.signingScheme", "io.cncf.notary.expiry"], "io.cncf.notary.expiry": "2020-01-01T00:00:00Z" },
    });
    expect(expiredSignature.verdict.problems?.[0]?.reason).toBe("the signature expired at 2020-01-01T00:00:00Z (io.cncf.notary.expiry)");
    const uncritical = await notationCase("signed/notation-expiry-not-crit", { headers: { "io.cncf.notary.expiry": "2999-01-01T00:00:00Z" } });
    expect(uncritical.verdict.problems?.[0]?.reason).toBe("io.cncf.notary.expiry is present but not critical");
  });
});

describe("verdicts stay current", () => {
  it("are computed again when the trusted keys change, and when signatures come or go", async () => {
    const repository = "signed/stale";
    const subject = await image(repository, "v1");
    const signature = await cosignReferrer(repository, subject, [await signedPayload(ecRelease, subject.digest)]);
    const before = await storedVerdict(repository, subject.digest);
    expect(before?.status).toBe("verified");

    // The same repository with the key gone from SIGNATURE_TRUST: not the stored verdict, a new one.
    const withoutKey = { ...env, AUTH_MODE: "open", SIGNATURE_TRUST: JSON.stringify([{ repositories: ["signed/*"], cosignKeys: [{ name: "other", pem: pem("PUBLIC KEY", await spkiOf(stranger)) }] }]) } as unknown as Env;
    const now = await verdictOf(repository, "v1", withoutKey);
    expect(now.status).toBe("invalid");
    expect((await storedVerdict(repository, subject.digest))?.fingerprint).not.toBe(before?.fingerprint);
    // No configuration at all for the repository: the signature is there, but nothing vouches for it.
    const none = await verdictOf(repository, "v1", { ...env, AUTH_MODE: "open" } as unknown as Env);
    expect(none.problems?.[0]?.reason).toBe("no cosign key in SIGNATURE_TRUST covers this repository");
    expect((await verdictOf(repository, "v1")).status).toBe("verified");

    // The signature deleted: unsigned at once, whatever was stored.
    expect((await send(`/v2/${repository}/manifests/${signature.digest}`, { method: "DELETE" })).status).toBe(202);
    expect((await verdictOf(repository, "v1")).status).toBe("unsigned");
  });

  it("a signature pushed under a trust that did not cover it is checked again under one that does", async () => {
    const repository = "signed/late-key";
    const subject = await image(repository, "v1");
    // Pushed through a Worker without SIGNATURE_TRUST: its verdict (invalid, nothing trusted) is stored then.
    await cosignReferrer(repository, subject, [await signedPayload(ecRelease, subject.digest)], { ...env, AUTH_MODE: "open" } as unknown as Env);
    expect((await storedVerdict(repository, subject.digest))?.status).toBe("invalid");
    expect((await verdictOf(repository, "v1")).status).toBe("verified");
  });
});

describe("the web UI shows the verdict", () => {
  it("on the tag page and in the repository's tag list, with the signer", async () => {
    const repository = "signed/ui";
    const subject = await image(repository, "v1");
    await cosignReferrer(repository, subject, [await signedPayload(ecRelease, subject.digest)]);
    await image(repository, "v2");
    const tagPage = await (await send(`/r/${repository}/-/tags/v1`)).text();
    expect(tagPage).toContain('id="signature"');
    expect(tagPage).toMatch(/Verified[^<]*<\/span>/);
    expect(tagPage).toContain("release-ec");
    const listing = await (await send(`/r/${repository}`)).text();
    const row = (tag: string) => listing.match(new RegExp(`<li data-tag="${tag}">[\\s\\S]*?</li>`))?.[0] ?? "";
    expect(row("v1")).toContain('<span class="badge signed" title="signature verified: release-ec">signed · release-ec</span>');
    expect(row("v2")).not.toContain("badge signed");
    expect(row("v2")).toContain("Copy pull");
  });
});

describe("SIGNATURE_TRUST is checked at startup", () => {
  const parse = (value: unknown) => () => parseConfig({ ...env, AUTH_MODE: "open", SIGNATURE_TRUST: typeof value === "string" ? value : JSON.stringify(value) } as unknown as Env);

  it("names the entry whose PEM is not a key or certificate", () => {
    expect(parse([{ repositories: ["a/*"], cosignKeys: [{ name: "broken", pem: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----" }] }])).toThrow(
      /SIGNATURE_TRUST\.0\.cosignKeys\.0: cosign key "broken": not a usable PEM public key/,
    );
    expect(parse([{ repositories: ["a/*"], notationRoots: [{ name: "corp", pem: pem("PUBLIC KEY", new Uint8Array([0x30, 0x00])) }] }])).toThrow(
      /SIGNATURE_TRUST\.0\.notationRoots\.0: notation root "corp": not a usable PEM certificate: holds a PUBLIC KEY block, not CERTIFICATE/,
    );
    expect(parse("not json")).toThrow(/SIGNATURE_TRUST: not JSON/);
    expect(parse([{ repositories: [], cosignKeys: [] }])).toThrow(ConfigError);
  });

  it("accepts keys and roots, and the Worker refuses to serve with a bad one", async () => {
    expect(parse(trust)().SIGNATURE_TRUST[0]?.cosignKeys.map((key) => key.name)).toEqual(["release-ec", "release-rsa"]);
    const broken = { ...env, AUTH_MODE: "open", SIGNATURE_TRUST: JSON.stringify([{ repositories: ["a/*"], cosignKeys: [{ name: "broken", pem: "nope" }] }]) } as unknown as Env;
    const response = await send("/v2/", {}, broken);
    expect(response.status).toBe(500);
    expect(JSON.stringify(await response.json())).toContain('SIGNATURE_TRUST.0.cosignKeys.0: cosign key \\"broken\\"');
  });
});
