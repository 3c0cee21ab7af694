import type { D1Migration } from "@cloudflare/vitest-plugin";
import type { Env } from "../../src/config";

declare global {
  namespace Cloudflare {
    interface Env extends import("../../src/config").Env {
      TEST_MIGRATIONS: D1Migration[];
    }
  }
}
