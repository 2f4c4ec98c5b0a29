#!/usr/bin/env bash
# Fails when the committed web UI build (src/jobstream/web) is not what the sources build to:
# rebuilds it with web/build.sh (deterministic: same sources and lock files, same bytes), then
# asks git whether anything under src/jobstream/web changed (modified, added or deleted files).
# Read-only as far as git is concerned; for CI, after a fresh clone.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash web/build.sh

changes="$(git status --porcelain --untracked-files=all -- src/jobstream/web)"
if [ -n "$changes" ]; then
  echo "$changes" >&2
  echo "the committed web UI build is stale: run bash web/build.sh and commit src/jobstream/web" >&2
  exit 1
fi
echo "the committed web UI build is up to date" >&2
