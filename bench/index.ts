// npm run bench [-- <flags>]: the registry against CNCF Distribution (bench/compare.ts), blob uploads against a
// bare R2 Worker (bench/uploads.ts), then the cost per operation at two registry sizes (bench/cost.ts). Each prints
// markdown tables on stdout, progress on stderr.
//
//   --only=compare | --only=uploads | --only=cost   run one of them
//   compare:
//     --install-reference   apt-get install docker-registry when it is missing (with sudo unless root)
//     --duration=<s>        seconds of each manifest load run (10)
//     --image=<MiB>         random content of the single-layer image (300)
//     --pulls=<n>           pulls of each image from each registry, the median is reported (3, at least 2)
//   uploads:
//     --large               a blob of 5 GiB less 5 MiB instead of 1 GiB
//     --size=<MiB>          a blob of that size
//   cost:
//     --repositories=<a,b>  registry sizes, seeded in D1 (1000,100000; each with 10 tags per repository)
//     --runs=<n>            runs of each operation at each size, CPU their trimmed mean (5)
import { registerHooks } from "node:module";

// test/support/distribution.ts imports its neighbours without an extension, which vitest resolves and Node does not.
registerHooks({
  resolve(specifier, context, nextResolve) {
    try {
      return nextResolve(specifier, context);
    } catch (error) {
      const extensionless = specifier.startsWith(".") && !/\.[cm]?[jt]s$/.test(specifier);
      if (!extensionless || !context.parentURL?.endsWith(".ts")) throw error;
      return nextResolve(`${specifier}.ts`, context);
    }
  },
});

const args = process.argv.slice(2);
const only = args.find((arg) => arg.startsWith("--only="))?.slice("--only=".length);
const SECTIONS = ["compare", "uploads", "cost"];
if (only !== undefined && !SECTIONS.includes(only)) throw new Error(`--only= takes ${SECTIONS.join(", ")}`);
const runs = (section: string) => only === undefined || only === section;

if (runs("compare")) {
  const { benchAgainstDistribution, compareOptions } = await import("./compare.ts");
  await benchAgainstDistribution(compareOptions(args));
}
if (runs("uploads")) {
  const { benchUploads } = await import("./uploads.ts");
  await benchUploads();
}
if (runs("cost")) {
  const { benchCost, costOptions } = await import("./cost.ts");
  await benchCost(costOptions(args));
}
