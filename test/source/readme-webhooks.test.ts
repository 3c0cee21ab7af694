import { createHmac, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { namedSecrets, parseConfig, type Env } from "../../src/config";
import { signatureOf } from "../../src/webhooks/signature";

// The README's Webhooks section is what users copy: its WEBHOOKS example must pass the Worker's startup checks, and
// its receiver snippet must accept what the Worker signs, and refuse a tampered body or an old timestamp.
const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");

function webhookExamples(): string[] {
  const blocks = [...readme.matchAll(/```toml\n([\s\S]*?)```/g)].map((match) => match[1]!);
  return blocks.flatMap((block) => [...block.matchAll(/^WEBHOOKS = '([^'\n]*)'/gm)].map((match) => match[1]!));
}

type Verify = (secret: string, header: string | null, body: string | Buffer, toleranceSeconds?: number) => boolean;

/** The README's verifyRegistrySignature, run as written (its import given as parameters). */
function readmeVerifier(): Verify {
  const block = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((match) => match[1]!).find((code) => code.includes("function verifyRegistrySignature"));
  expect(block).toBeDefined();
  const code = block!.replace(/^\s*import .*$/m, "");
  return new Function("createHmac", "timingSafeEqual", "Buffer", `${code}\nreturn verifyRegistrySignature;`)(createHmac, timingSafeEqual, Buffer) as Verify;
}

describe("the README's webhooks", () => {
  it("WEBHOOKS example is a valid setting whose secrets are listed for check-config", () => {
    const examples = webhookExamples();
    expect(examples).toHaveLength(1);
    const config = parseConfig({ AUTH_MODE: "open", WEBHOOKS: examples[0] } as unknown as Env);
    expect(config.WEBHOOKS.map((endpoint) => endpoint.name)).toEqual(["deploys", "stats"]);
    expect(namedSecrets(config).map(({ secret }) => secret)).toEqual(["WEBHOOK_DEPLOYS_SECRET", "WEBHOOK_STATS_SECRET"]);
  });

  it("receiver snippet accepts the Worker's signature and refuses a changed body, another secret or an old timestamp", async () => {
    const verify = readmeVerifier();
    const body = JSON.stringify({ events: [{ id: "e1", action: "push", target: { repository: "team/app" } }] });
    const now = Math.floor(Date.now() / 1000);
    const header = await signatureOf("s3cret", now, body);
    expect(verify("s3cret", header, body)).toBe(true);
    expect(verify("s3cret", header, Buffer.from(body))).toBe(true);
    expect(verify("s3cret", header, body.replace("team/app", "team/evil"))).toBe(false);
    expect(verify("other", header, body)).toBe(false);
    expect(verify("s3cret", await signatureOf("s3cret", now - 600, body), body)).toBe(false);
    expect(verify("s3cret", null, body)).toBe(false);
  });
});
