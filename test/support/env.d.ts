import type { D1Migration } from "cloudflare:test";
import type { Env as RegistryEnv } from "../../src/config";

declare global {
  namespace Cloudflare {
    interface Env extends RegistryEnv {
      TEST_MIGRATIONS: D1Migration[];
    }
  }
}
