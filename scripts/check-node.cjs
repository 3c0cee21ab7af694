// Runs before dev, test and bench: wrangler and vitest need Node 22, and the scripts and CLI (TypeScript run by Node's
// type stripping, on by default since 22.18) need 22.18 or newer. Kept to syntax any old Node can parse.
var required = "22.18";
var parts = process.versions.node.split(".").map(Number);
if (parts[0] < 22 || (parts[0] === 22 && parts[1] < 18)) {
  console.error(
    "\nThis project needs Node.js " + required + " or newer (found " + process.version + ").\n" +
    "In this shell, `source scripts/use-node.sh` fetches Node 24 from the npm registry and puts it first on the PATH;\n" +
    "or install it with nvm (`nvm install` reads .nvmrc) or from https://nodejs.org.\n"
  );
  process.exit(1);
}
