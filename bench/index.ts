// npm run bench [-- <flags>]: the registry against CNCF Distribution (bench/compare.ts), then blob uploads against a
// bare R2 Worker (bench/uploads.ts). Each prints a markdown table on stdout, progress on stderr.
//
//   --only=compare | --only=uploads   run one of the two
//   compare:
//     --install-reference   apt-get install docker-registry when it is missing (with sudo unless root)
//     --duration=<s>        seconds of each manifest load run (10)
//     --image=<MiB>         random content of the single-layer image (300)
//     --pulls=<n>           pulls of each image from each registry, the median is reported (3, at least 2)
//   uploads:
//     --large               a blob of 5 GiB less 5 MiB instead of 1 GiB
//     --size=<MiB>          a blob of that size
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
if (only !== undefined && only !== "compare" && only !== "uploads") throw new Error("--only= takes compare or uploads");

if (only !== "uploads") {
  const { benchAgainstDistribution, compareOptions } = await import("./compare.ts");
  await benchAgainstDistribution(compareOptions(args));
}
if (only !== "compare") {
  const { benchUploads } = await import("./uploads.ts");
  await benchUploads();
}
