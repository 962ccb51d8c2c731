#!/usr/bin/env bash
# One-time set-up for the VS Code end-to-end test (test/e2e/run.mjs), offline except for the
# Debian and npm registries:
#   - Chromium, ripgrep and the native build tools code-server needs, from Debian;
#   - code-server from npm, installed into $GEARSHIFT_E2E_DIR (default ~/.cache/gearshift/e2e).
# code-server's own postinstall cannot run here: @vscode/ripgrep downloads its binary from GitHub.
# So the install scripts are run by hand, with Debian's rg put where @vscode/ripgrep looks first.
# Idempotent: a second run only checks.
set -euo pipefail

CODE_SERVER_VERSION="${CODE_SERVER_VERSION:-4.100.3}"   # the last code-server release for Node 20
DEST="${GEARSHIFT_E2E_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/gearshift/e2e}"
STAMP="$DEST/.installed-$CODE_SERVER_VERSION"
export npm_config_yes=true npm_config_audit=false npm_config_fund=false   # node-pty's script runs npx node-gyp

say() { printf '[e2e setup] %s\n' "$*" >&2; }

node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" != "20" ]; then
  say "code-server $CODE_SERVER_VERSION needs Node 20, this is Node $node_major (set CODE_SERVER_VERSION for a release matching it)"
  exit 1
fi

# 1. Debian packages.
missing=()
for pkg in chromium ripgrep libkrb5-dev build-essential pkg-config python3; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "apt-get install ${missing[*]}"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 2. code-server.
if [ -f "$STAMP" ] && "$DEST/node_modules/.bin/code-server" --version >/dev/null 2>&1; then
  say "code-server $CODE_SERVER_VERSION already in $DEST"
  exit 0
fi
mkdir -p "$DEST"
cd "$DEST"
[ -f package.json ] || printf '{ "name": "gearshift-e2e-tools", "private": true }\n' > package.json
say "npm install code-server@$CODE_SERVER_VERSION (scripts off) into $DEST"
npm install --ignore-scripts --no-save "code-server@$CODE_SERVER_VERSION" >/dev/null
say "building argon2"
npm rebuild argon2 >/dev/null

VSCODE="$DEST/node_modules/code-server/lib/vscode"
cd "$VSCODE"
say "installing VS Code's dependencies (scripts off)"
npm install --omit=dev --ignore-scripts >/dev/null
mkdir -p node_modules/@vscode/ripgrep/bin
cp "$(command -v rg)" node_modules/@vscode/ripgrep/bin/rg
say "building VS Code's native modules (a few minutes on 2 cores)"
nice -n 10 npm rebuild >/dev/null
# The rest of code-server's postinstall.sh.
ln -sfn node_modules node_modules.asar
ln -sfn code-linux.sh bin/remote-cli/code-server
ln -sfn browser-linux.sh bin/helpers/browser.sh
(cd extensions && npm install --omit=dev >/dev/null)

"$DEST/node_modules/.bin/code-server" --version >&2
touch "$STAMP"
say "done: CODE_SERVER=$DEST/node_modules/.bin/code-server"
