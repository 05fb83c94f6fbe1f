#!/usr/bin/env bash
# Installs the agent CLIs pinned in test/agents/package.json into .test-agents/ (or $1), from the npm registry only.
# They are test-only: hundreds of MB that a user's `npm install` must not pull. Skips the install when every pinned
# version is already there, so CI and repeated runs pay for it once.
set -euo pipefail
cd "$(dirname "$0")/.."
manifest=test/agents/package.json
target="${1:-.test-agents}"

# Prints the pinned packages whose installed version differs (or that are missing); nothing when all match.
stale() {
  node -e '
    const fs = require("node:fs"), path = require("node:path");
    const [manifest, target] = process.argv.slice(1);
    for (const [name, version] of Object.entries(JSON.parse(fs.readFileSync(manifest, "utf8")).dependencies)) {
      let installed = null;
      try { installed = JSON.parse(fs.readFileSync(path.join(target, "node_modules", name, "package.json"), "utf8")).version; } catch {}
      if (installed !== version) console.log(`${name}@${version} (installed: ${installed ?? "none"})`);
    }' "$manifest" "$target"
}

missing="$(stale)"
if [ -z "$missing" ]; then
  echo "test agents: pinned versions present in $target"
  exit 0
fi
echo "test agents: installing into $target:"
echo "$missing"
mkdir -p "$target"
cp "$manifest" "$target/package.json"
# gemini-cli's node-pty compiles with node-gyp, which needs Node's headers from the machine (TOOLCHAIN.md).
export npm_config_nodedir="${npm_config_nodedir:-/usr}"
npm install --prefix "$target" --no-audit --no-fund --no-save --loglevel=error
missing="$(stale)"
if [ -n "$missing" ]; then
  echo "test agents: still not at the pinned versions after install:" >&2
  echo "$missing" >&2
  exit 1
fi
echo "test agents: installed"
