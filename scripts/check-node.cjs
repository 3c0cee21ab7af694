// Runs before dev, test and bench: wrangler and vitest need Node 22 or newer. Kept to syntax any old Node can parse.
var required = 22;
var major = Number(process.versions.node.split(".")[0]);
if (major < required) {
  console.error(
    "\nThis project needs Node.js " + required + " or newer (found " + process.version + ").\n" +
    "In this shell, `source scripts/use-node.sh` fetches Node 24 from the npm registry and puts it first on the PATH;\n" +
    "or install it with nvm (`nvm install` reads .nvmrc) or from https://nodejs.org.\n"
  );
  process.exit(1);
}
