# Sourced by web/build.sh and clients/js/test.sh.
#
# check_node: Node 20.19+ (or 22.12+) is required by Vite 7.
# ensure_deps DIR: `npm ci` in DIR from its committed package-lock.json, skipped when DIR's
#   node_modules was installed from the very same lock file with the same Node (a stamp file
#   records both). JOBSTREAM_NPM_CI=1 forces a fresh install.

check_node() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "error: node and npm are needed (Node 20.19+ or 22.12+)" >&2
    return 1
  fi
  local version major minor
  version="$(node -p 'process.versions.node')"
  major="${version%%.*}"
  minor="${version#*.}"
  minor="${minor%%.*}"
  if (( major < 20 || (major == 20 && minor < 19) || (major == 22 && minor < 12) || major == 21 )); then
    echo "error: Node $version is too old: Vite 7 needs Node 20.19+ or 22.12+" >&2
    return 1
  fi
}

ensure_deps() {
  local dir="$1"
  local stamp="$dir/node_modules/.jobstream-installed"
  local want
  want="$(node -e 'const c=require("crypto"),f=require("fs");process.stdout.write(c.createHash("sha256").update(f.readFileSync(process.argv[1])).digest("hex"))' "$dir/package-lock.json") node-$(node -v)"
  if [[ "${JOBSTREAM_NPM_CI:-0}" != "1" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  echo "npm ci in ${dir}" >&2
  (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  printf '%s' "$want" >"$stamp"
}
