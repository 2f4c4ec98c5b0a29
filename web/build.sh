#!/usr/bin/env bash
# Builds jobstream's web UI into src/jobstream/web (index.html + hashed assets), which the Python
# package ships and the server serves at /. Installs both Node packages with `npm ci` from their
# committed lock files (skipped when already installed from the same lock), type-checks and
# builds the JS client (clients/js/dist), then type-checks and builds the UI.
# Needs Node 20.19+ and npm; the only network it uses is the npm registry, on first install.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=../clients/js/scripts/ensure-deps.sh
source "$root/clients/js/scripts/ensure-deps.sh"

check_node
ensure_deps "$root/clients/js"
ensure_deps "$root/web"

echo "building clients/js" >&2
(cd "$root/clients/js" && ./node_modules/.bin/tsc -p tsconfig.build.json)

echo "building web -> src/jobstream/web" >&2
cd "$root/web"
./node_modules/.bin/tsc --noEmit -p tsconfig.json
./node_modules/.bin/tsc --noEmit -p tsconfig.node.json
./node_modules/.bin/vite build --logLevel warn
test -f "$root/src/jobstream/web/index.html"
echo "web UI built: $(cd "$root/src/jobstream/web" && find . -type f | sort | tr '\n' ' ')" >&2
