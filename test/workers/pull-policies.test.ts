import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { ConfigError, parseConfig, type Env } from "../../src/config";
import { replaceFindings, type Finding, type Severity } from "../../src/vulnerabilities/store";
import { OCI_INDEX, OCI_MANIFEST, pushBlob, pushImage, pushManifest, sha256 } from "./helpers";
import { cosignSign, ecKey, pem, simpleSigningPayload, spkiOf, type KeyPair } from "./signature-fixtures";
import { ADMIN, basic, call, createToken, SERVICE, tokenEnv } from "./token-auth";

// Pull policies (README: "Pull policies"): a manifest GET or HEAD, by tag or by digest, is refused (DENIED) when the
// manifest fails an enforced policy of its repository, unless the admin asks (the bypass is recorded); audit-mode
// policies let it through with a warning header and a row in the audit log. Content is pushed through the open test
// Worker; pulls go through a token-auth Worker with PULL_POLICIES set (the same D1 and R2).

const COSIGN_ARTIFACT = "application/vnd.dev.cosign.artifact.sig.v1+json";
const SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json";
const EMPTY = "application/vnd.oci.empty.v1+json";
const TRIVY = "application/vnd.aquasec.trivy.report+json";
const ACCEPT = { Accept: [OCI_MANIFEST, OCI_INDEX].join(", ") };

const POLICIES = [
  { name: "signed-prod", repositories: ["policies/signed/*"], requireSignature: true, mode: "enforce" },
  { name: "signed-trial", repositories: ["policies/trial/*"], requireSignature: true, mode: "audit" },
  { name: "no-critical", repositories: ["policies/vulns/*"], maxSeverity: "critical", mode: "enforce" },
  { name: "no-high", repositories: ["policies/high/*"], maxSeverity: "high", mode: "enforce" },
  { name: "scanned", repositories: ["policies/scanned/*"], requireScan: true, mode: "enforce" },
  { name: "scanned-trial", repositories: ["policies/scanned/trial"], requireScan: true, mode: "audit" },
];

let release: KeyPair;
let policyEnv: Env;
let reader: { id: string; token: string };

beforeAll(async () => {
  release = await ecKey();
  const trust = [{ repositories: ["policies/*"], cosignKeys: [{ name: "release", pem: pem("PUBLIC KEY", await spkiOf(release)) }] }];
  policyEnv = { ...tokenEnv, PULL_POLICIES: JSON.stringify(POLICIES), SIGNATURE_TRUST: JSON.stringify(trust) } as unknown as Env;
  reader = await createToken("policy-reader", [{ repository: "policies/*", actions: ["pull"] }, { repository: "policies-free/*", actions: ["pull"] }]);
});

/** A pull of a manifest through the policy Worker, as the reader unless `auth` says otherwise. */
function pull(repository: string, reference: string, init: { method?: string; auth?: string; env?: object } = {}) {
  return call(`/v2/${repository}/manifests/${reference}`, {
    method: init.method ?? "GET",
    headers: ACCEPT,
    auth: init.auth ?? basic(reader.token),
    env: init.env ?? policyEnv,
  });
}

/** A small image pushed under `tag`, with its descriptor. */
async function image(repository: string, tag: string) {
  const manifest = await pushImage(repository, [256]);
  const text = JSON.stringify(manifest);
  const digest = await pushManifest(repository, tag, manifest);
  return { mediaType: OCI_MANIFEST, digest, size: new TextEncoder().encode(text).byteLength };
}

/** A cosign signature of `subject` by `key`, pushed as an OCI 1.1 referrer (cosign --registry-referrers-mode=oci-1-1). */
async function sign(
  repository: string,
  subject: { mediaType: string; digest: string; size: number },
  key: KeyPair = release,
  payload = simpleSigningPayload(subject.digest, `registry.test/${repository}`),
) {
  const signature = await cosignSign(key, new TextEncoder().encode(payload));
  const layer = { mediaType: SIMPLE_SIGNING, digest: await pushBlob(repository, payload), size: new TextEncoder().encode(payload).byteLength, annotations: { "dev.cosignproject.cosign/signature": signature } };
  const manifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: COSIGN_ARTIFACT,
    config: { mediaType: EMPTY, digest: await pushBlob(repository, "{}"), size: 2 },
    layers: [layer],
    subject,
  };
  return pushManifest(repository, await sha256(JSON.stringify(manifest)), manifest);
}

/** Findings recorded for a manifest by a scanner source (what an attached report or an SBOM scan stores). */
async function findings(repository: string, digest: string, severities: Severity[], suppressed: Severity[] = []) {
  const finding = (severity: Severity, index: number, isSuppressed: boolean): Finding => ({
    id: `CVE-2026-${1000 + index}`,
    package: `pkg-${index}`,
    installed: "1.0.0",
    fixed: "1.0.1",
    severity,
    title: "",
    report: null,
    suppressed: isSuppressed,
  });
  await replaceFindings(env.DB, repository, digest, "policy-tests", [
    ...severities.map((severity, index) => finding(severity, index, false)),
    ...suppressed.map((severity, index) => finding(severity, 100 + index, true)),
  ]);
}

/** A Trivy JSON report of `subject` attached as `oras attach --artifact-type` does (what the registry reads itself). */
async function attachTrivy(repository: string, subject: { mediaType: string; digest: string; size: number }, vulnerabilities: [id: string, severity: string][]) {
  const report = JSON.stringify({
    SchemaVersion: 2,
    ArtifactName: `registry.test/${repository}`,
    ArtifactType: "container_image",
    Results: [
      {
        Target: "app (alpine 3.19.1)",
        Class: "os-pkgs",
        Type: "alpine",
        Vulnerabilities: vulnerabilities.map(([VulnerabilityID, Severity]) => ({ VulnerabilityID, PkgName: "openssl", InstalledVersion: "3.1.4-r0", FixedVersion: "", Severity })),
      },
    ],
  });
  const manifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    artifactType: TRIVY,
    config: { mediaType: EMPTY, digest: await pushBlob(repository, "{}"), size: 2 },
    layers: [{ mediaType: TRIVY, digest: await pushBlob(repository, report), size: new TextEncoder().encode(report).byteLength }],
    subject,
  };
  return pushManifest(repository, await sha256(JSON.stringify(manifest)), manifest);
}

async function refusal(response: Response) {
  expect(response.status).toBe(403);
  const body = (await response.json()) as { errors: { code: string; message: string; detail: unknown }[] };
  expect(body.errors[0]!.code).toBe("DENIED");
  return body.errors[0]!;
}

interface AuditRow {
  actor: string;
  action: string;
  repository: string;
  target: string;
  result: string;
  detail: { method: string; kind: string; tag?: string; policies: { name: string; mode: string; reason: string }[] };
}

/** The audit log's rows of a repository, oldest first, as the admin reads them. */
async function auditOf(repository: string, action: string): Promise<AuditRow[]> {
  const response = await call(`/admin/audit?repository=${encodeURIComponent(repository)}&action=${action}`, { auth: basic(ADMIN, "admin"), env: policyEnv });
  expect(response.status).toBe(200);
  return ((await response.json()) as { events: AuditRow[] }).events.reverse();
}

describe("requireSignature", () => {
  it("refuses an unsigned image by tag and by digest, GET and HEAD, naming the policy and the reason", async () => {
    const repository = "policies/signed/unsigned";
    const { digest } = await image(repository, "v1");
    for (const reference of ["v1", digest]) {
      const error = await refusal(await pull(repository, reference));
      expect(error.message).toBe('policy "signed-prod": no verified signature (unsigned)');
      expect(error.detail).toEqual({ repository, digest, policies: [{ name: "signed-prod", reason: "no verified signature (unsigned)" }] });
      const head = await pull(repository, reference, { method: "HEAD" });
      expect(head.status).toBe(403);
      expect(head.headers.get("X-Registry-Policy-Refusal")).toBe('policy "signed-prod": no verified signature (unsigned)');
    }
  });

  it("serves the image once a trusted key's signature is attached, with no shared caching", async () => {
    const repository = "policies/signed/app";
    const subject = await image(repository, "v1");
    await refusal(await pull(repository, "v1"));
    await sign(repository, subject);
    for (const reference of ["v1", subject.digest]) {
      const response = await pull(repository, reference);
      expect(response.status).toBe(200);
      expect(response.headers.get("Docker-Content-Digest")).toBe(subject.digest);
      expect(response.headers.get("Cache-Control")).toBe("private, no-cache");
      expect(response.headers.get("X-Registry-Policy-Warning")).toBeNull();
      await response.arrayBuffer();
    }
    expect((await pull(repository, subject.digest, { method: "HEAD" })).status).toBe(200);
  });

  it("refuses an image whose only signature is by a key it does not trust, saying why", async () => {
    const repository = "policies/signed/stranger";
    const subject = await image(repository, "v1");
    await sign(repository, subject, await ecKey());
    const error = await refusal(await pull(repository, "v1"));
    expect(error.message).toMatch(/^policy "signed-prod": no verified signature \(invalid: .+\)$/);
  });

  it("names why a trusted key's signature of another digest is invalid, in a header only printable ASCII", async () => {
    const repository = "policies/signed/elsewhere";
    const subject = await image(repository, "v1");
    await sign(repository, subject, release, simpleSigningPayload("sha256:0\r\nX-Injected: yes\u00e9"));
    const head = await pull(repository, "v1", { method: "HEAD" });
    expect(head.status).toBe(403);
    expect(head.headers.get("X-Injected")).toBeNull();
    expect(head.headers.get("X-Registry-Policy-Refusal")).toBe('policy "signed-prod": no verified signature (invalid: the signed payload names sha256:0??X-Injected: yes?, not this manifest (' + subject.digest + "))");
    expect((await refusal(await pull(repository, "v1"))).message).toBe(`policy "signed-prod": no verified signature (invalid: the signed payload names sha256:0\r\nX-Injected: yes\u00e9, not this manifest (${subject.digest}))`);
  });

  it("serves signature manifests themselves (artifacts are what the checks read), unsigned as they are", async () => {
    const repository = "policies/signed/artifacts";
    const subject = await image(repository, "v1");
    const signature = await sign(repository, subject);
    expect((await pull(repository, signature)).status).toBe(200);
  });

  it("takes a signed index's signature for its images, and judges an index by its own", async () => {
    const repository = "policies/signed/multi";
    const amd64 = await image(repository, "amd64-build");
    const arm64 = await image(repository, "arm64-build");
    const index = {
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        { ...amd64, platform: { os: "linux", architecture: "amd64" } },
        { ...arm64, platform: { os: "linux", architecture: "arm64" } },
      ],
    };
    const text = JSON.stringify(index);
    const digest = await pushManifest(repository, "v1", index, OCI_INDEX);
    expect((await refusal(await pull(repository, "v1"))).message).toBe('policy "signed-prod": no verified signature (unsigned)');
    await refusal(await pull(repository, amd64.digest));
    await sign(repository, { mediaType: OCI_INDEX, digest, size: new TextEncoder().encode(text).byteLength });
    expect((await pull(repository, "v1")).status).toBe(200);
    expect((await pull(repository, amd64.digest)).status).toBe(200);
    expect((await pull(repository, arm64.digest)).status).toBe(200);
    // An image no signed index lists is refused still.
    const loose = await image(repository, "loose");
    await refusal(await pull(repository, loose.digest));
  });
});

describe("maxSeverity", () => {
  it("refuses an image with an unsuppressed finding at the severity, counting them", async () => {
    const repository = "policies/vulns/app";
    const { digest } = await image(repository, "v1");
    await findings(repository, digest, ["critical", "critical", "high", "low"]);
    for (const reference of ["v1", digest]) {
      expect((await refusal(await pull(repository, reference))).message).toBe('policy "no-critical": 2 critical findings');
    }
  });

  it("serves an image whose findings are below the severity, or suppressed, or which was never scanned", async () => {
    const repository = "policies/vulns/ok";
    const below = await image(repository, "below");
    await findings(repository, below.digest, ["high", "high", "medium"]);
    const suppressed = await image(repository, "suppressed");
    await findings(repository, suppressed.digest, ["low"], ["critical"]);
    await image(repository, "unscanned");
    for (const tag of ["below", "suppressed", "unscanned"]) expect((await pull(repository, tag)).status, tag).toBe(200);
  });

  it("refuses once an attached Trivy report has a critical finding, read by the registry itself", async () => {
    const repository = "policies/vulns/reported";
    const subject = await image(repository, "v1");
    expect((await pull(repository, "v1")).status).toBe(200);
    await attachTrivy(repository, subject, [["CVE-2024-1000", "CRITICAL"], ["CVE-2024-1001", "MEDIUM"]]);
    expect((await refusal(await pull(repository, "v1"))).message).toBe('policy "no-critical": 1 critical finding');
    expect((await refusal(await pull(repository, subject.digest))).message).toBe('policy "no-critical": 1 critical finding');
  });

  it("counts every severity at the maximum or worse", async () => {
    const repository = "policies/high/app";
    const { digest } = await image(repository, "v1");
    await findings(repository, digest, ["critical", "high", "high", "medium", "unknown"]);
    expect((await refusal(await pull(repository, "v1"))).message).toBe('policy "no-high": 1 critical and 2 high findings');
    const one = await image(repository, "v2");
    await findings(repository, one.digest, ["high", "low"]);
    expect((await refusal(await pull(repository, "v2"))).message).toBe('policy "no-high": 1 high finding');
  });
});

describe("requireScan", () => {
  it("refuses an image no source has scanned, and serves it once one has (clean or not)", async () => {
    const repository = "policies/scanned/app";
    const { digest } = await image(repository, "v1");
    expect((await refusal(await pull(repository, digest))).message).toBe('policy "scanned": never scanned');
    await findings(repository, digest, ["critical"]);
    expect((await pull(repository, "v1")).status).toBe(200);
  });

  it("serves an image once a clean Trivy report is attached", async () => {
    const repository = "policies/scanned/reported";
    const subject = await image(repository, "v1");
    await refusal(await pull(repository, "v1"));
    await attachTrivy(repository, subject, []);
    expect((await pull(repository, "v1")).status).toBe(200);
  });

  it("judges an index's images on their own pulls, not the index", async () => {
    const repository = "policies/scanned/multi";
    const child = await image(repository, "child");
    const digest = await pushManifest(repository, "v1", { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [child] }, OCI_INDEX);
    expect((await pull(repository, digest)).status).toBe(200);
    await refusal(await pull(repository, child.digest));
  });
});

describe("audit mode", () => {
  it("serves what it would refuse with a warning header, and records it once per caller and image", async () => {
    const repository = "policies/trial/app";
    const { digest } = await image(repository, "v1");
    for (const reference of ["v1", digest, "v1"]) {
      const response = await pull(repository, reference);
      expect(response.status).toBe(200);
      expect(response.headers.get("X-Registry-Policy-Warning")).toBe('policy "signed-trial": no verified signature (unsigned) (audit mode)');
    }
    const rows = await auditOf(repository, "policy.warn");
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ actor: reader.id, target: digest, result: "ok", detail: { tag: "v1", kind: "image", policies: [{ name: "signed-trial", mode: "audit" }] } });
  });

  it("refuses on the enforced policy and not the audited one when both match", async () => {
    const repository = "policies/scanned/trial";
    const { digest } = await image(repository, "v1");
    expect((await refusal(await pull(repository, "v1"))).message).toBe('policy "scanned": never scanned');
    await findings(repository, digest, []);
    const response = await pull(repository, "v1");
    expect(response.status).toBe(200);
    expect(response.headers.get("X-Registry-Policy-Warning")).toBeNull();
  });
});

describe("the audit log and the admin", () => {
  it("records each refusal with the caller, the digest, the tag and the reason", async () => {
    const repository = "policies/signed/recorded";
    const { digest } = await image(repository, "v1");
    await refusal(await pull(repository, "v1"));
    expect((await pull(repository, digest, { method: "HEAD" })).status).toBe(403);
    const rows = await auditOf(repository, "policy.refuse");
    expect(rows.map(({ actor, action, target, result, detail }) => ({ actor, action, target, result, method: detail.method, tag: detail.tag, policies: detail.policies }))).toEqual([
      { actor: reader.id, action: "policy.refuse", target: digest, result: "denied", method: "GET", tag: "v1", policies: [{ name: "signed-prod", mode: "enforce", reason: "no verified signature (unsigned)" }] },
      { actor: reader.id, action: "policy.refuse", target: digest, result: "denied", method: "HEAD", tag: undefined, policies: [{ name: "signed-prod", mode: "enforce", reason: "no verified signature (unsigned)" }] },
    ]);
  });

  it("lets the admin pull what it refuses, says so in a header, and records the bypass", async () => {
    const repository = "policies/signed/bypass";
    const { digest } = await image(repository, "v1");
    const response = await pull(repository, "v1", { auth: basic(ADMIN, "admin") });
    expect(response.status).toBe(200);
    expect(response.headers.get("Docker-Content-Digest")).toBe(digest);
    expect(response.headers.get("X-Registry-Policy-Warning")).toBe('policy "signed-prod": no verified signature (unsigned) (bypassed: admin)');
    const rows = await auditOf(repository, "policy.bypass");
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ actor: "admin", target: digest, result: "ok", detail: { tag: "v1", policies: [{ name: "signed-prod", reason: "no verified signature (unsigned)" }] } });
    expect(await auditOf(repository, "policy.refuse")).toEqual([]);
  });
});

describe("the admin's bearer tokens", () => {
  it("bypass as the admin token does, and are recorded as the admin; a reader's bearer token does not", async () => {
    const repository = "policies/signed/bearer";
    const { digest } = await image(repository, "v1");
    const bearerFor = async (auth: string) => {
      const response = await call(`/token?service=${SERVICE}&scope=repository:${repository}:pull`, { auth, env: policyEnv });
      expect(response.status).toBe(200);
      return `Bearer ${((await response.json()) as { token: string }).token}`;
    };
    const admin = await pull(repository, "v1", { auth: await bearerFor(basic(ADMIN, "admin")) });
    expect(admin.status).toBe(200);
    expect(admin.headers.get("X-Registry-Policy-Warning")).toMatch(/\(bypassed: admin\)$/);
    await refusal(await pull(repository, digest, { auth: await bearerFor(basic(reader.token)) }));
    expect((await auditOf(repository, "policy.bypass")).map((row) => row.actor)).toEqual(["admin"]);
    expect((await auditOf(repository, "policy.refuse")).map((row) => row.actor)).toEqual([reader.id]);
  });
});

describe("repositories without a policy, and caches", () => {
  /** A D1 binding that counts the statements the Worker prepares (every read and write is one). */
  function counting(db: D1Database, counts: { statements: number }): D1Database {
    return new Proxy(db, {
      get(target, property) {
        if (property === "prepare") return (sql: string) => {
          counts.statements += 1;
          return target.prepare(sql);
        };
        if (property === "withSession") return (constraint?: string) => counting(target.withSession(constraint) as unknown as D1Database, counts);
        const value = Reflect.get(target, property);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  }

  it("reads nothing more for a repository no policy matches, and answers it as before", async () => {
    const repository = "policies-free/app";
    const { digest } = await image(repository, "v1");
    const measure = async (settings: object) => {
      const counts = { statements: 0 };
      const response = await pull(repository, "v1", { auth: basic(ADMIN, "admin"), env: { ...settings, DB: counting(env.DB, counts) } });
      expect(response.status).toBe(200);
      await response.arrayBuffer();
      return { statements: counts.statements, cacheControl: response.headers.get("Cache-Control"), warning: response.headers.get("X-Registry-Policy-Warning") };
    };
    const without = await measure({ ...tokenEnv, SIGNATURE_TRUST: policyEnv.SIGNATURE_TRUST });
    const withPolicies = await measure(policyEnv);
    expect(withPolicies).toEqual(without);
    const byDigest = await pull(repository, digest);
    expect(byDigest.headers.get("Cache-Control")).toMatch(/immutable/);
  });

  it("reads one statement more under a signature policy (the verdict) and one under a severity policy (the summary)", async () => {
    const signed = "policies/signed/reads";
    const subject = await image(signed, "v1");
    await sign(signed, subject);
    const vulns = "policies/vulns/reads";
    await image(vulns, "v1");
    const statements = async (repository: string) => {
      const counts = { statements: 0 };
      const response = await pull(repository, "v1", { env: { ...policyEnv, DB: counting(env.DB, counts) } });
      expect(response.status).toBe(200);
      await response.arrayBuffer();
      return counts.statements;
    };
    const free = "policies-free/reads";
    await image(free, "v1");
    const baseline = await statements(free);
    // The first pull computes the verdict under this Worker's SIGNATURE_TRUST (the push was checked under another's)
    // and stores it; from then on the stored one is current.
    expect(await statements(signed)).toBeGreaterThan(baseline + 1);
    expect(await statements(signed)).toBe(baseline + 1);
    expect(await statements(vulns)).toBe(baseline + 1);
  });

  it("does not serve a refused tag from the edge cache, where a policy-free Worker kept it", async () => {
    const repository = "policies/signed/cached";
    const { digest } = await image(repository, "v1");
    const cachingEnv = { ...tokenEnv, TAG_CACHE_SECONDS: "60" };
    const first = await pull(repository, "v1", { env: cachingEnv });
    expect(first.headers.get("X-Edge-Cache")).toBe("miss");
    expect((await pull(repository, "v1", { env: cachingEnv })).headers.get("X-Edge-Cache")).toBe("hit");
    const governed = { ...policyEnv, TAG_CACHE_SECONDS: "60" };
    const refused = await pull(repository, "v1", { env: governed });
    expect(refused.headers.get("X-Edge-Cache")).toBeNull();
    expect((await refusal(refused)).message).toBe('policy "signed-prod": no verified signature (unsigned)');
    expect((await pull(repository, "v1", { method: "HEAD", env: governed })).status).toBe(403);
    // The admin's bypass is not kept for others either.
    expect((await pull(repository, "v1", { auth: basic(ADMIN, "admin"), env: governed })).headers.get("X-Edge-Cache")).toBeNull();
    await refusal(await pull(repository, digest, { env: governed }));
  });
});

describe("PULL_POLICIES", () => {
  const issues = (value: unknown) => {
    try {
      parseConfig({ ...env, PULL_POLICIES: typeof value === "string" ? value : JSON.stringify(value) } as Env);
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return (error as ConfigError).issues;
    }
    throw new Error("the configuration was accepted");
  };
  const policy = { name: "p", repositories: ["team/*"], requireSignature: true, mode: "enforce" };

  it("accepts every kind of rule, and none by default", () => {
    expect(parseConfig(env as Env).PULL_POLICIES).toEqual([]);
    const parsed = parseConfig({ ...env, PULL_POLICIES: JSON.stringify(POLICIES) } as Env).PULL_POLICIES;
    expect(parsed.map((entry) => entry.name)).toEqual(POLICIES.map((entry) => entry.name));
  });

  it("refuses a bad entry, naming the setting, the entry and the field", () => {
    expect(issues("[{")).toEqual(["PULL_POLICIES: not JSON"]);
    expect(issues([{ ...policy, mode: undefined }])).toEqual([expect.stringMatching(/^PULL_POLICIES\.0\.mode: /)]);
    expect(issues([policy, { ...policy, name: "q", maxSeverity: "severe" }])).toEqual([expect.stringMatching(/^PULL_POLICIES\.1\.maxSeverity: /)]);
    expect(issues([{ ...policy, requireSignature: false }])).toEqual([expect.stringMatching(/^PULL_POLICIES\.0\.requireSignature: /)]);
    expect(issues([{ ...policy, requireSignatures: true }])).toEqual([expect.stringMatching(/^PULL_POLICIES\.0: .*requireSignatures/)]);
    expect(issues([{ ...policy, repositories: ["Team/*"] }])).toEqual([expect.stringMatching(/^PULL_POLICIES\.0\.repositories\.0: /)]);
    expect(issues([{ ...policy, repositories: [] }])).toEqual([expect.stringMatching(/^PULL_POLICIES\.0\.repositories: /)]);
    expect(issues([{ ...policy, name: "signed prod" }])).toEqual([expect.stringMatching(/^PULL_POLICIES\.0\.name: /)]);
    expect(issues([{ name: "p", repositories: ["team/*"], mode: "audit" }])).toEqual(["PULL_POLICIES.0: checks nothing: give requireSignature, maxSeverity or requireScan"]);
    expect(issues([policy, { ...policy, maxSeverity: "high" }])).toEqual(['PULL_POLICIES.1.name: "p" is also the name of entry 0']);
  });

  it("keeps the Worker from serving while the setting is invalid", async () => {
    const response = await call("/v2/policies/signed/app/manifests/v1", { env: { ...tokenEnv, PULL_POLICIES: '[{"name": "x"}]' } });
    expect(response.status).toBe(500);
    const body = (await response.json()) as { errors: { detail: { issues: string[] } }[] };
    expect(body.errors[0]!.detail.issues.join("\n")).toMatch(/PULL_POLICIES\.0\.repositories/);
  });
});

describe("the tag API's filters", () => {
  const list = (repository: string, query: string) => call(`/api/repositories/${repository}/tags?${query}`, { auth: basic(reader.token), env: policyEnv });
  const names = async (repository: string, query: string) => {
    const response = await list(repository, query);
    expect(response.status, await response.clone().text()).toBe(200);
    return ((await response.json()) as { tags: { name: string }[] }).tags.map((tag) => tag.name);
  };

  it("lists the signed, the unsigned, those with a critical finding and those without, and pages with the filter kept", async () => {
    const repository = "policies/filters/app";
    const signed = await image(repository, "signed");
    await sign(repository, signed);
    const critical = await image(repository, "critical");
    await findings(repository, critical.digest, ["critical", "low"]);
    const high = await image(repository, "high");
    await findings(repository, high.digest, ["high"], ["critical"]);
    await image(repository, "plain");
    // The signature was checked when it was pushed, under the open Worker's trust: a listing here checks it again.
    expect(await names(repository, "")).toEqual(["plain", "high", "critical", "signed"]);
    expect(await names(repository, "signed=true")).toEqual(["signed"]);
    expect(await names(repository, "signed=false")).toEqual(["plain", "high", "critical"]);
    expect(await names(repository, "critical=true")).toEqual(["critical"]);
    expect(await names(repository, "critical=false&signed=false")).toEqual(["plain", "high"]);
    const first = await list(repository, "signed=false&n=2");
    expect(((await first.json()) as { tags: { name: string }[] }).tags.map((tag) => tag.name)).toEqual(["plain", "high"]);
    const next = /<([^>]+)>; rel="next"/.exec(first.headers.get("Link") ?? "")?.[1];
    expect(next).toMatch(/signed=false/);
    const rest = await call(next!, { auth: basic(reader.token), env: policyEnv });
    expect(((await rest.json()) as { tags: { name: string }[] }).tags.map((tag) => tag.name)).toEqual(["critical"]);
  });

  it("refuses a filter value other than true or false, naming it", async () => {
    const response = await list("policies/filters/app", "signed=yes");
    expect(response.status).toBe(400);
    const body = (await response.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors[0]).toMatchObject({ code: "REQUEST_INVALID", message: "signed must be true or false" });
  });
});

describe("search's filters", () => {
  const found = async (query: string) => {
    const response = await call(`/api/search?${query}`, { auth: basic(reader.token), env: policyEnv });
    expect(response.status, await response.clone().text()).toBe(200);
    return ((await response.json()) as { repositories: { name: string }[] }).repositories.map((repository) => repository.name);
  };

  it("finds repositories by their latest tag's verdict and findings, with a query and without", async () => {
    const signed = await image("policies/find/signed", "v1");
    await sign("policies/find/signed", signed);
    const critical = await image("policies/find/critical", "v1");
    await findings("policies/find/critical", critical.digest, ["critical"]);
    await image("policies/find/plain", "v1");
    // The tag API checks the signature under this Worker's trust, and stores the verdict search reads.
    expect((await call("/api/repositories/policies/find/signed/tags", { auth: basic(reader.token), env: policyEnv })).status).toBe(200);
    expect(await found("q=policies/find&signed=true")).toEqual(["policies/find/signed"]);
    expect(await found("q=policies/find&signed=false")).toEqual(["policies/find/critical", "policies/find/plain"]);
    expect(await found("q=policies/find&critical=true")).toEqual(["policies/find/critical"]);
    expect(await found("q=policies/find&critical=false&signed=false")).toEqual(["policies/find/plain"]);
    const listed = await found("signed=true&n=100");
    expect(listed).toContain("policies/find/signed");
    expect(listed).not.toContain("policies/find/plain");
    expect(listed).not.toContain("policies/find/critical");
    expect(await found("critical=true&n=100")).toContain("policies/find/critical");
  });

  it("pages a filtered listing with the filter kept", async () => {
    const response = await call("/api/search?signed=false&n=1", { auth: basic(reader.token), env: policyEnv });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { repositories: unknown[] }).repositories).toHaveLength(1);
    expect(response.headers.get("Link")).toMatch(/signed=false.*cursor=|cursor=.*signed=false/);
  });
});
