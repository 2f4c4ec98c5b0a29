#!/usr/bin/env bash
# Tests the JS client: type-check (tsc --noEmit) and the vitest suite (SSE parser, reducer,
# reconnect/resume/dedupe, transport fallback, React hooks under jsdom), then type-checks the web
# UI that is built on it. Installs with `npm ci` from the committed lock files when needed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=scripts/ensure-deps.sh
source "$here/scripts/ensure-deps.sh"

check_node
ensure_deps "$here"
ensure_deps "$root/web"

cd "$here"
echo "clients/js: tsc --noEmit" >&2
./node_modules/.bin/tsc --noEmit -p tsconfig.json
echo "clients/js: vitest run" >&2
./node_modules/.bin/vitest run

cd "$root/web"
echo "web: tsc --noEmit" >&2
./node_modules/.bin/tsc --noEmit -p tsconfig.json
./node_modules/.bin/tsc --noEmit -p tsconfig.node.json
