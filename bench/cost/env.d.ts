// The cost project's own bindings (vitest.config.ts, project "cost").
declare global {
  namespace Cloudflare {
    interface Env {
      /** Registry sizes to measure at, in repositories, comma separated ("1000,100000"). */
      COST_REPOSITORIES: string;
      /** Runs of each operation at each size. */
      COST_REPETITIONS: string;
    }
  }
}

export {};
