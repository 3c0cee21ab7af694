// A 1 GiB blob pushed to `wrangler dev` the ways clients push: PATCHes of 1 MiB, 10 MiB and 64 MiB with
// Content-Range, and one streamed PATCH of unknown length (docker), each pulled back whole with its digest checked.
// The bytes are generated as they are sent (seeded, so reproducible) and hashed on the way: the test process never
// holds the blob. The registry uses its production part size (16 MiB), so chunks smaller and larger than a part, and
// not multiples of it (10 MiB), are all re-cut; MAX_BODY_BYTES is raised to 1 GiB so the single streamed PATCH fits.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { pull, pushChunked, pushStreamed, type Pushed } from "../support/blob-transfer";
import { randomBytesStream } from "../support/oci-layout";
import { startRegistry, type Registry } from "./harness";

const MiB = 1024 * 1024;
const SIZE = 1024 * MiB;
const REPOSITORY = "e2e/large";

let registry: Registry;

beforeAll(async () => {
  registry = await startRegistry({ vars: { MAX_BODY_BYTES: String(SIZE) } });
});

afterAll(async () => {
  await registry?.stop();
});

beforeEach((context) => {
  context.onTestFailed(() => {
    console.error(`--- wrangler output (tail) ---\n${registry?.output().slice(-8000)}`);
  });
});

async function pushAndPull(name: string, push: () => Promise<Pushed>): Promise<void> {
  const started = performance.now();
  const pushed = await push();
  const pushedAt = performance.now();
  expect(pushed.size).toBe(SIZE);
  const pulled = await pull(`${registry.url}/v2/${REPOSITORY}/blobs/${pushed.digest}`);
  const seconds = (at: number, from: number) => ((at - from) / 1000).toFixed(1);
  console.info(`${name}: push ${seconds(pushedAt, started)} s, pull ${seconds(performance.now(), pushedAt)} s`);
  expect(pulled.status).toBe(200);
  expect(pulled.size).toBe(SIZE);
  expect(pulled.digest).toBe(pushed.digest);
}

describe("a 1 GiB blob", { timeout: 300_000 }, () => {
  for (const chunk of [1, 10, 64]) {
    it(`is pushed in ${chunk} MiB PATCHes with Content-Range and pulled back intact`, async () => {
      const data = randomBytesStream(`large ${chunk} MiB chunks`, SIZE, MiB);
      await pushAndPull(`${chunk} MiB chunks`, () => pushChunked(registry.url, REPOSITORY, data, SIZE, chunk * MiB));
    });
  }

  it("is pushed as one streamed PATCH without a length, as docker does, and pulled back intact", async () => {
    const data = randomBytesStream("large streamed", SIZE, MiB);
    await pushAndPull("one streamed PATCH", () => pushStreamed(registry.url, REPOSITORY, data));
  });
});
