#!/usr/bin/env bash
# The MCP servers from npm that the MCP data-source tests and bench run (idempotent). Installed
# globally, under /usr: every sandbox box mounts /usr read-only, so `npx -y <package>` in a box finds
# them after one registry lookup instead of downloading them; on the host they are the remote servers
# of the HTTP tests. Versions: coherex/testing/mcp_servers.py (PACKAGES) — keep both in step.
set -euo pipefail
PKGS=(
  @modelcontextprotocol/server-everything@2026.8.31
  @modelcontextprotocol/server-filesystem@2026.8.31
  @modelcontextprotocol/server-memory@2026.8.31
)
command -v npm >/dev/null || { echo "npm is missing (Debian: apt-get install nodejs npm)" >&2; exit 1; }
missing=()
for p in "${PKGS[@]}"; do
  npm ls -g --depth=0 "$p" >/dev/null 2>&1 || missing+=("$p")  # exits 1 unless that version is there
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
echo "==> npm install -g ${missing[*]}"
$SUDO npm install -g --no-audit --no-fund --loglevel=error "${missing[@]}"
