import type { Access } from "./auth/access";
import { configOf, type Config, type Env } from "./config";
import type { Waiter } from "./cache/edge";
import { BlobService } from "./services/blobs";
import { ManifestService } from "./services/manifests";
import { QuotaService } from "./services/quota";
import { UploadService } from "./services/uploads";
import { SignatureService } from "./signatures/verdicts";
import { VulnerabilityService } from "./vulnerabilities/reports";
import type { RequestPath } from "./routes/path";
import { RequestDatabase } from "./storage/database";

export interface Registry {
  config: Config;
  db: RequestDatabase;
  blobs: BlobService;
  uploads: UploadService;
  manifests: ManifestService;
  quota: QuotaService;
  signatures: SignatureService;
  vulnerabilities: VulnerabilityService;
}

export interface AppEnv {
  Bindings: Env;
  Variables: { registry: Registry; access: Access; path: RequestPath };
}

/** The registry's services for one request, reading D1 through that request's sessions. */
export function registryOf(env: Env, request: Request, ctx?: Waiter): Registry {
  const config = configOf(env);
  const db = RequestDatabase.forRequest(env.DB, request.headers);
  return {
    config,
    db,
    quota: new QuotaService(env.DB, config),
    blobs: new BlobService(env, db, ctx),
    uploads: new UploadService(env),
    manifests: new ManifestService(env, config.IMMUTABLE_TAGS, db),
    signatures: new SignatureService(env, config.SIGNATURE_TRUST, db, ctx),
    vulnerabilities: new VulnerabilityService(env, db, ctx),
  };
}
