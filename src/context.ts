import type { Access } from "./auth/access";
import { configOf, type Config, type Env } from "./config";
import { BlobService } from "./services/blobs";
import { ManifestService } from "./services/manifests";
import { QuotaService } from "./services/quota";
import { UploadService } from "./services/uploads";

export interface Registry {
  config: Config;
  blobs: BlobService;
  uploads: UploadService;
  manifests: ManifestService;
  quota: QuotaService;
}

export interface AppEnv {
  Bindings: Env;
  Variables: { registry: Registry; access: Access };
}

export function registryOf(env: Env): Registry {
  const config = configOf(env);
  return {
    config,
    quota: new QuotaService(env.DB, config),
    blobs: new BlobService(env),
    uploads: new UploadService(env),
    manifests: new ManifestService(env, config.IMMUTABLE_TAGS),
  };
}
