import { z } from "zod";
import { RepositoryPattern } from "./auth/scopes";
import { insecureUrlProblem, TrustPolicies } from "./auth/trust-policies";
import type { MirrorBlobFetch } from "./mirror/blob-fetch";
import { RetentionRules } from "./gc/retention";
import { Mirrors } from "./mirror/config";
import { OsvFeeds } from "./osv/config";
import { PullPolicies } from "./policies/config";
import { SignatureTrust } from "./signatures/trust";
import type { UploadSession } from "./uploads/upload-session";
import { insecureEndpointProblem, Webhooks } from "./webhooks/config";
import type { WebhookMessage } from "./webhooks/events";

export interface Env {
  BLOBS: R2Bucket;
  DB: D1Database;
  UPLOADS: DurableObjectNamespace<UploadSession>;
  MIRROR_FETCHES: DurableObjectNamespace<MirrorBlobFetch>;
  MIRRORS?: string;
  STORAGE_QUOTA_BYTES?: string;
  IMMUTABLE_TAGS?: string;
  GC_GRACE_SECONDS?: string;
  GC_BATCH_SIZE?: string;
  GC_SUBREQUEST_BUDGET?: string;
  GC_DRY_RUN?: string;
  RETENTION?: string;
  AUDIT_RETENTION_DAYS?: string;
  EDGE_CACHE_MAX_BYTES?: string;
  TAG_CACHE_SECONDS?: string;
  BLOB_REDIRECT?: string;
  BLOB_REDIRECT_MIN_BYTES?: string;
  BLOB_REDIRECT_TTL_SECONDS?: string;
  BLOB_PUBLIC_URL?: string;
  R2_S3_ENDPOINT?: string;
  R2_BUCKET_NAME?: string;
  R2_ACCESS_KEY_ID?: string;
  LOG_REQUESTS?: string;
  LOG_READ_SAMPLE_RATE?: string;
  LOG_SLOW_MS?: string;
  MAX_BODY_BYTES?: string;
  UPLOAD_PART_BYTES?: string;
  MAX_MANIFEST_BYTES?: string;
  UPLOAD_TTL_SECONDS?: string;
  AUTH_MODE?: string;
  REGISTRY_SERVICE?: string;
  TOKEN_TTL_SECONDS?: string;
  PUBLIC_REPOSITORIES?: string;
  OIDC_TRUST_POLICIES?: string;
  OIDC_ALLOW_HTTP_ISSUERS?: string;
  SIGNATURE_TRUST?: string;
  PULL_POLICIES?: string;
  OSV_FEEDS?: string;
  OSV_FEED_RECORDS_PER_RUN?: string;
  OSV_RESCANS_PER_RUN?: string;
  WEBHOOKS?: string;
  WEBHOOKS_ALLOW_HTTP?: string;
  WEBHOOKS_RETRY_SECONDS?: string;
  /** The queue webhook events go to (wrangler.toml; needed once WEBHOOKS lists an endpoint). */
  EVENTS?: Queue<WebhookMessage>;
  /** Secrets. */
  TOKEN_SIGNING_KEY?: string;
  ADMIN_TOKEN?: string;
  R2_SECRET_ACCESS_KEY?: string;
  /** Counts failed authentications per client (Workers rate limiting binding). */
  AUTH_FAILURES?: RateLimit;
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

const bytes = (min: number, max: number, fallback: number) =>
  z.coerce.number().int().min(min).max(max).default(fallback);

const patternList = z
  .string()
  .default("")
  .transform((text) => text.split(",").map((part) => part.trim()).filter(Boolean))
  .pipe(z.array(RepositoryPattern));

const ConfigSchema = z
  .object({
  // At most R2's largest single put (5 GiB less 5 MiB), which a monolithic push becomes.
  MAX_BODY_BYTES: bytes(1, 5 * GiB - 5 * MiB, 100_000_000),
  // R2 multipart: every part but the last is equal and at least 5 MiB; 16 MiB x 10,000 parts = 156 GiB per blob. At
  // most 32 MiB (312 GiB per blob): a body of unknown length keeps a copy of the part it streams until the part is
  // full, so one upload holds up to a part in memory, and a 128 MB isolate may serve several uploads at once.
  UPLOAD_PART_BYTES: bytes(5 * MiB, 32 * MiB, 16 * MiB),
  MAX_MANIFEST_BYTES: bytes(4 * MiB, 64 * MiB, 4 * MiB),
  UPLOAD_TTL_SECONDS: z.coerce.number().int().min(60).default(86_400),
  // "token": Docker token auth, private by default. "open": anyone may do anything (local development only).
  AUTH_MODE: z.enum(["token", "open"]).default("token"),
  // The token service name (the `service` of challenges, the `aud` of tokens); defaults to the request's host.
  REGISTRY_SERVICE: z.string().min(1).optional(),
  TOKEN_TTL_SECONDS: z.coerce.number().int().min(30).max(3600).default(300),
  // Repository patterns anyone may pull without credentials, comma separated ("library/*,public/*").
  PUBLIC_REPOSITORIES: patternList,
  // CI identities (OIDC tokens) trusted for scopes, a JSON list; see src/auth/trust-policies.ts.
  OIDC_TRUST_POLICIES: TrustPolicies,
  // Tests only: an issuer (and its jwks_uri) may be plain http on a loopback host.
  OIDC_ALLOW_HTTP_ISSUERS: z.enum(["true", "false"]).default("false").transform((value) => value === "true"),
  TOKEN_SIGNING_KEY: z.string().min(1).optional(),
  ADMIN_TOKEN: z.string().min(32, "must be at least 32 characters").optional(),
  // Read-only namespaces backed by upstream registries (pull-through cache); see src/mirror/config.ts.
  MIRRORS: Mirrors,
  // Keys (cosign) and roots (Notation) trusted for signatures, per repository pattern; see src/signatures/trust.ts.
  SIGNATURE_TRUST: SignatureTrust,
  // Rules a manifest must pass to be pulled (a verified signature, no finding at a severity, a scan), per repository
  // pattern, enforced or audit-only; see src/policies/config.ts.
  PULL_POLICIES: PullPolicies,
  // OSV exports the cron imports (SBOM scanning), a JSON list of {ecosystem, url}; see src/osv/config.ts. Each run
  // imports at most OSV_FEED_RECORDS_PER_RUN records of them and rescans at most OSV_RESCANS_PER_RUN manifests whose
  // scan is older than the database (0 turns rescans off).
  OSV_FEEDS: OsvFeeds,
  OSV_FEED_RECORDS_PER_RUN: z.coerce.number({ message: "must be a number of records" }).int().min(0).max(20_000).default(2000),
  OSV_RESCANS_PER_RUN: z.coerce.number({ message: "must be a number of manifests" }).int().min(0).max(200).default(10),
  // Endpoints told of pushes, deletes and (if they ask) pulls, through the EVENTS queue; see src/webhooks/config.ts.
  WEBHOOKS: Webhooks,
  // Tests only: an endpoint may be plain http on a loopback host.
  WEBHOOKS_ALLOW_HTTP: z.enum(["true", "false"]).default("false").transform((value) => value === "true"),
  // The wait before a failed delivery's first retry (seconds); each next one doubles, up to an hour.
  WEBHOOKS_RETRY_SECONDS: z.coerce.number().int().min(0).max(3600).default(30),
  // Optional: the most bytes of blobs this registry stores; a push past it is refused.
  STORAGE_QUOTA_BYTES: z.coerce.number().int().positive().optional(),
  // Repository patterns whose tags, once pushed, may not be moved or deleted.
  IMMUTABLE_TAGS: patternList,
  // Garbage collection (Cron Trigger): nothing younger than the grace window is touched, and a marked blob waits
  // that long again before it goes; each pass handles at most GC_BATCH_SIZE blobs; GC_DRY_RUN only reports.
  // At least an hour: the window between a client's HEAD that finds a blob (and skips uploading it) and its manifest
  // PUT, and between an upload's write to R2 and its D1 record, both of which a slow push of large layers stretches.
  GC_GRACE_SECONDS: z.coerce.number().int().min(3600, "at least 3600 (an hour: a slow multi-layer push must finish within it)").default(86_400),
  GC_BATCH_SIZE: z.coerce.number().int().min(1).max(1000).default(500),
  // D1 queries and R2 calls one pass may make: far below Workers Paid's per-invocation limits; on Workers Free
  // (50 subrequests) set it to 40.
  GC_SUBREQUEST_BUDGET: z.coerce.number().int().min(20).max(5000).default(500),
  GC_DRY_RUN: z.enum(["true", "false"]).default("false").transform((value) => value === "true"),
  // Retention rules per repository pattern (keep last N tags, keep matching tags, delete untagged after N days).
  RETENTION: RetentionRules,
  // The audit log keeps rows this many days (0: for ever); older ones go, a bounded batch each GC pass.
  AUDIT_RETENTION_DAYS: z.coerce
    .number({ message: "must be a number of days" })
    .int("must be a whole number of days")
    .min(0, "must be 0 (keep for ever) or more days")
    .max(36_500, "must be at most 36500 days")
    .default(90),
  // Blobs and manifests by digest up to this size are kept in the edge cache (0 turns it off).
  EDGE_CACHE_MAX_BYTES: z.coerce.number().int().min(0).max(512 * MiB).default(32 * MiB),
  // Manifests by tag are kept in the edge cache this long (0: never; tags then say no-cache). At most 5 minutes.
  TAG_CACHE_SECONDS: z.coerce.number().int().min(0).max(300).default(0),
  // Blob downloads of at least BLOB_REDIRECT_MIN_BYTES answered with a 307 to R2 itself, so large layers skip the
  // Worker: "public" to BLOB_PUBLIC_URL (a public bucket or custom domain; public repositories only), "presigned" to a
  // URL signed for BLOB_REDIRECT_TTL_SECONDS with an R2 API token (R2_S3_ENDPOINT, R2_BUCKET_NAME, R2_ACCESS_KEY_ID,
  // R2_SECRET_ACCESS_KEY); "off" streams every blob through the Worker.
  BLOB_REDIRECT: z.enum(["off", "public", "presigned"]).default("off"),
  BLOB_REDIRECT_MIN_BYTES: z.coerce.number().int().min(0).default(32 * MiB),
  BLOB_REDIRECT_TTL_SECONDS: z.coerce.number().int().min(60).max(7 * 86_400).default(600),
  BLOB_PUBLIC_URL: z.url({ protocol: /^https?$/ }).optional(),
  R2_S3_ENDPOINT: z.url({ protocol: /^https?$/ }).optional(),
  R2_BUCKET_NAME: z.string().min(3).optional(),
  R2_ACCESS_KEY_ID: z.string().min(1).optional(),
  R2_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  // One JSON line per request (see src/logging.ts): every write, error and slow request, and this share of the
  // rest (successful, quick GETs and HEADs, the bulk of a registry's traffic and of its log bill).
  LOG_REQUESTS: z.enum(["true", "false"]).default("true").transform((value) => value === "true"),
  LOG_READ_SAMPLE_RATE: z.coerce.number().min(0).max(1).default(0.01),
  LOG_SLOW_MS: z.coerce.number().int().min(0).default(1000),
  })
  .superRefine((config, context) => {
    if (config.AUTH_MODE === "token" && !config.TOKEN_SIGNING_KEY) {
      context.addIssue({
        code: "custom",
        path: ["TOKEN_SIGNING_KEY"],
        message: "required when AUTH_MODE is token (an EC P-256 private key, PKCS#8 PEM or JWK; `npm run admin -- keygen`)",
      });
    }
    config.OIDC_TRUST_POLICIES.forEach((policy, index) => {
      const problem = insecureUrlProblem(policy.issuer, config.OIDC_ALLOW_HTTP_ISSUERS);
      if (problem) context.addIssue({ code: "custom", path: ["OIDC_TRUST_POLICIES", index, "issuer"], message: problem });
    });
    config.WEBHOOKS.forEach((endpoint, index) => {
      const problem = insecureEndpointProblem(endpoint.url, config.WEBHOOKS_ALLOW_HTTP);
      if (problem) context.addIssue({ code: "custom", path: ["WEBHOOKS", index, "url"], message: problem });
    });
    const needed = {
      off: [],
      public: ["BLOB_PUBLIC_URL"],
      presigned: ["R2_S3_ENDPOINT", "R2_BUCKET_NAME", "R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY"],
    } as const;
    for (const setting of needed[config.BLOB_REDIRECT]) {
      if (config[setting] === undefined) {
        context.addIssue({ code: "custom", path: [setting], message: `required when BLOB_REDIRECT is ${config.BLOB_REDIRECT}` });
      }
    }
  });

export type Config = z.infer<typeof ConfigSchema>;

export class ConfigError extends Error {
  constructor(readonly issues: string[]) {
    super(`invalid configuration: ${issues.join("; ")}`);
    this.name = "ConfigError";
  }
}

const parsed = new WeakMap<object, Config>();

/** Parses the Worker's vars once per isolate; a bad setting, or a secret a setting names but nobody set, fails loudly. */
export function configOf(env: Env): Config {
  const cached = parsed.get(env);
  if (cached) return cached;
  const config = parseConfig(env);
  const missing = namedSecrets(config).filter(({ secret }) => secretOf(env, secret) === undefined);
  if (missing.length > 0) {
    throw new ConfigError(missing.map(({ setting, secret }) => `${setting}: names the secret ${secret}, which is not set (wrangler secret put ${secret})`));
  }
  if (config.WEBHOOKS.length > 0 && !env.EVENTS) {
    throw new ConfigError(["WEBHOOKS: lists endpoints, but the Worker has no EVENTS queue binding (wrangler.toml [[queues.producers]])"]);
  }
  parsed.set(env, config);
  return config;
}

/** The vars parsed and checked, without asking for the secrets they name (check-config cannot read secrets). */
export function parseConfig(env: Env): Config {
  const result = ConfigSchema.safeParse(env);
  if (!result.success) {
    throw new ConfigError(result.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`));
  }
  return result.data;
}

/** The secrets settings name by name (mirrors' passwordSecret, webhooks' secretName), which must be set for the Worker to start. */
export function namedSecrets(config: Config): { setting: string; secret: string }[] {
  return [
    ...config.MIRRORS.flatMap((mirror, index) =>
      mirror.passwordSecret ? [{ setting: `MIRRORS.${index}.passwordSecret (mirror "${mirror.prefix}")`, secret: mirror.passwordSecret }] : [],
    ),
    ...config.WEBHOOKS.map((endpoint, index) => ({ setting: `WEBHOOKS.${index}.secretName (endpoint "${endpoint.name}")`, secret: endpoint.secretName })),
  ];
}

/** A secret named by a setting: a non-empty string, or undefined (a binding of the same name is no secret). */
export function secretOf(env: Env, name: string): string | undefined {
  const value = (env as unknown as Record<string, unknown>)[name];
  return typeof value === "string" && value !== "" ? value : undefined;
}
