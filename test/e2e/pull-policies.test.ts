// Pull policies end to end: skopeo against `wrangler dev` with a requireSignature policy. The pull of an unsigned
// image is refused with the policy's DENIED error; once a cosign signature (a simple-signing payload signed with an
// ECDSA P-256 key that SIGNATURE_TRUST trusts, pushed as an OCI 1.1 referrer over plain HTTP) is attached, the same
// pull succeeds and copies the image unchanged.
import { createHash, generateKeyPairSync, sign } from "node:crypto";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { mustRun, runCommand } from "../support/command";
import { buildImage, findTagged, MediaTypes } from "../support/oci-layout";
import { registryForFile } from "./fixture";
import type { Registry } from "./harness";

const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
const PUBLIC_PEM = publicKey.export({ type: "spki", format: "pem" }).toString();

const POLICIES = [{ name: "signed-prod", repositories: ["e2e/prod/*"], requireSignature: true, mode: "enforce" }];
const TRUST = [{ repositories: ["e2e/prod/*"], cosignKeys: [{ name: "release", pem: PUBLIC_PEM }] }];

let registry: Registry;
let work: string;

registryForFile("oci-e2e-policies-", { vars: { PULL_POLICIES: JSON.stringify(POLICIES), SIGNATURE_TRUST: JSON.stringify(TRUST) } }, (started, dir) => {
  registry = started;
  work = dir;
});

const skopeo = (...args: string[]) => ["--insecure-policy", "--tmpdir", work, ...args];
const docker = (reference: string) => `docker://${registry.host}/${reference}`;
const digestOf = (bytes: Buffer | string) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;

/** Pushes a blob in one request (POST ?digest=). */
async function pushBlob(repository: string, bytes: Buffer): Promise<{ digest: string; size: number }> {
  const digest = digestOf(bytes);
  const response = await fetch(`${registry.url}/v2/${repository}/blobs/uploads/?digest=${digest}`, { method: "POST", body: new Uint8Array(bytes) });
  expect(response.status, await response.text()).toBe(201);
  return { digest, size: bytes.byteLength };
}

/** A cosign signature of `subject`, as `cosign sign --key` with OCI 1.1 referrers makes it, pushed over HTTP. */
async function attachSignature(repository: string, subject: { mediaType: string; digest: string; size: number }): Promise<string> {
  const payload = Buffer.from(
    JSON.stringify({
      critical: { identity: { "docker-reference": `${registry.host}/${repository}` }, image: { "docker-manifest-digest": subject.digest }, type: "cosign container image signature" },
      optional: null,
    }),
  );
  // ECDSA with SHA-256, DER-encoded: what cosign writes in the annotation, base64.
  const signature = sign("sha256", payload, privateKey).toString("base64");
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaTypes.manifest,
    artifactType: "application/vnd.dev.cosign.artifact.sig.v1+json",
    config: { mediaType: "application/vnd.oci.empty.v1+json", ...(await pushBlob(repository, Buffer.from("{}"))) },
    layers: [
      {
        mediaType: "application/vnd.dev.cosign.simplesigning.v1+json",
        ...(await pushBlob(repository, payload)),
        annotations: { "dev.cosignproject.cosign/signature": signature },
      },
    ],
    subject,
  });
  const digest = digestOf(manifest);
  const response = await fetch(`${registry.url}/v2/${repository}/manifests/${digest}`, {
    method: "PUT",
    headers: { "Content-Type": MediaTypes.manifest },
    body: manifest,
  });
  expect(response.status, await response.text()).toBe(201);
  return digest;
}

describe("pull policies with skopeo against wrangler dev", () => {
  it("refuses the pull of an unsigned image, then serves it once a trusted signature is attached", async () => {
    const source = join(work, "app-src");
    const app = await buildImage(source, { layers: [2048, 4096], tag: "v1" });
    // Pushes are not judged: the image goes in as it is.
    await mustRun("skopeo", skopeo("copy", "--retry-times", "0", "--preserve-digests", "--dest-tls-verify=false", `oci:${source}:v1`, docker("e2e/prod/app:v1")));

    const refusedOut = join(work, "refused");
    const refused = await runCommand("skopeo", skopeo("copy", "--retry-times", "0", "--src-tls-verify=false", docker("e2e/prod/app:v1"), `oci:${refusedOut}:v1`));
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/denied/i);
    // skopeo logs the registry's message quoted, its quotes escaped.
    const said = (stderr: string) => stderr.replaceAll('\\"', '"');
    expect(said(refused.stderr)).toContain('denied: policy "signed-prod": no verified signature (unsigned)');
    const byDigest = await runCommand("skopeo", skopeo("inspect", "--retry-times", "0", "--tls-verify=false", "--raw", docker(`e2e/prod/app@${app.manifest.digest}`)));
    expect(byDigest.code).not.toBe(0);
    expect(said(byDigest.stderr)).toContain('policy "signed-prod": no verified signature (unsigned)');

    const signature = await attachSignature("e2e/prod/app", { mediaType: MediaTypes.manifest, digest: app.manifest.digest, size: app.manifest.size });

    const out = join(work, "allowed");
    await mustRun("skopeo", skopeo("copy", "--retry-times", "0", "--preserve-digests", "--src-tls-verify=false", docker("e2e/prod/app:v1"), `oci:${out}:v1`));
    const copied = await findTagged(out, "v1");
    expect(copied?.digest).toBe(app.manifest.digest);
    const raw = await mustRun("skopeo", skopeo("inspect", "--retry-times", "0", "--tls-verify=false", "--raw", docker(`e2e/prod/app@${app.manifest.digest}`)));
    expect(raw.stdout.equals(app.manifestBytes)).toBe(true);
    // The signature manifest itself is an artifact, which policies do not judge: verifiers can read it.
    await mustRun("skopeo", skopeo("inspect", "--retry-times", "0", "--tls-verify=false", "--raw", docker(`e2e/prod/app@${signature}`)));

    // A repository no policy matches is served as before.
    await mustRun("skopeo", skopeo("copy", "--retry-times", "0", "--preserve-digests", "--dest-tls-verify=false", `oci:${source}:v1`, docker("e2e/open/app:v1")));
    await mustRun("skopeo", skopeo("copy", "--retry-times", "0", "--src-tls-verify=false", docker("e2e/open/app:v1"), `oci:${join(work, "open")}:v1`));
  });
});
