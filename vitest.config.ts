import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { generateKeyPairSync } from "node:crypto";
import { defineConfig } from "vitest/config";

// A signing key made for this run: token tests sign and verify real ES256 tokens.
const signingKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();

// Read by test/workers/webhooks.test.ts as the WEBHOOKS binding.
const TEST_WEBHOOKS = [
  { name: "ci", url: "https://hooks.test/ci", repositories: ["webhooks/*"], actions: ["push", "delete"], secretName: "WEBHOOK_CI_SECRET", timeoutSeconds: 2 },
  { name: "audit", url: "https://audit.test/in?key=k1", repositories: ["webhooks/team/*"], actions: ["push", "delete", "pull"], secretName: "WEBHOOK_AUDIT_SECRET", timeoutSeconds: 2 },
];

export default defineConfig({
  test: {
    projects: [
      {
        // In workerd, with real local R2, D1 (migrations applied) and Durable Objects.
        plugins: [
          cloudflareTest(async () => ({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                TEST_MIGRATIONS: await readD1Migrations("./migrations"),
                // R2's smallest legal part, so multipart paths run on small test blobs.
                UPLOAD_PART_BYTES: String(5 * 1024 * 1024),
                MAX_BODY_BYTES: String(12 * 1024 * 1024),
                // Most tests exercise the registry itself; test/workers/auth tests switch to "token".
                AUTH_MODE: "open",
                // Hundreds of requests per test: their log lines would only slow the runner (operations tests turn it on).
                LOG_REQUESTS: "false",
                TOKEN_SIGNING_KEY: signingKey,
                ADMIN_TOKEN: "admin-token-for-tests-0123456789abcdef",
                // Webhooks for repositories under webhooks/ only (test/workers/webhooks.test.ts receives them through
                // the real local queue); retries at once, so that a delivery reaches the dead-letter queue in seconds.
                WEBHOOKS: JSON.stringify(TEST_WEBHOOKS),
                WEBHOOK_CI_SECRET: "ci-secret-for-tests",
                WEBHOOK_AUDIT_SECRET: "audit-secret-for-tests",
                WEBHOOKS_RETRY_SECONDS: "0",
              },
            },
          })),
        ],
        test: {
          name: "workers",
          include: ["test/workers/**/*.test.ts"],
          setupFiles: ["./test/workers/setup.ts"],
          testTimeout: 60_000,
        },
      },
      {
        // Cost per operation (bench/cost/): the registry's Worker with counting bindings and Durable Objects, in
        // production settings (wrangler.toml's vars), at each registry size of COST_REPOSITORIES, seeded in D1.
        // `npx vitest run` runs it small; `npm run bench -- --only=cost` at 1,000 and 100,000 repositories.
        plugins: [
          cloudflareTest(async () => ({
            main: "./bench/cost/worker.ts",
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                TEST_MIGRATIONS: await readD1Migrations("./migrations"),
                TOKEN_SIGNING_KEY: signingKey,
                ADMIN_TOKEN: "admin-token-for-tests-0123456789abcdef",
                COST_REPOSITORIES: process.env.COST_REPOSITORIES ?? "100,2000",
                COST_REPETITIONS: process.env.COST_REPETITIONS ?? "1",
              },
            },
          })),
        ],
        test: {
          name: "cost",
          include: ["bench/cost/**/*.bench-test.ts"],
          setupFiles: ["./test/workers/setup.ts"],
          // Seeding 100,000 repositories takes a while; the small run should not.
          testTimeout: process.env.COST_REPOSITORIES ? 3_600_000 : 120_000,
        },
      },
      {
        // Rules about the source itself, checked in Node (no runtime needed).
        test: { name: "source", include: ["test/source/**/*.test.ts"], environment: "node" },
      },
      {
        // End to end: `wrangler dev` driven by real clients (skopeo, curl).
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          environment: "node",
          testTimeout: 180_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
