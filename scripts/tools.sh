#!/usr/bin/env bash
# Installs the build and test tools sub2api needs, only when missing or at the wrong version.
# Everything comes from crates.io, npm and Debian apt; nothing is downloaded from elsewhere.
#   scripts/tools.sh build   wasm target, cargo-leptos, wasm-bindgen CLI, npm build tools
#   scripts/tools.sh test    the above plus chromium and Playwright (no browser download)
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_LEPTOS_VERSION=0.3.11
say() { printf '==> %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

# Builds a crate from its crates.io source with a lockfile tweak, because its published lock
# names versions this toolchain or registry cannot use.
install_patched() { # crate version update-args...
  local crate=$1 version=$2; shift 2
  cargo info "$crate@$version" >/dev/null 2>&1 || true # fetches and unpacks the source
  local src
  src=$(find "${CARGO_HOME:-$HOME/.cargo}"/registry/src -maxdepth 2 -type d -name "$crate-$version" 2>/dev/null | head -1)
  [ -n "$src" ] || { echo "cannot find the source of $crate $version" >&2; return 1; }
  local tmp; tmp=$(mktemp -d)
  cp -r "$src/." "$tmp"
  (cd "$tmp" && "$@")
  cargo install --path "$tmp" --locked
  rm -rf "$tmp"
}

build_tools() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    say "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown || { echo "cannot add the wasm32 target (rustup needs the network)" >&2; exit 1; }
  fi
  if [ "$(cargo leptos --version 2>/dev/null)" != "cargo-leptos $CARGO_LEPTOS_VERSION" ]; then
    say "installing cargo-leptos $CARGO_LEPTOS_VERSION (about 15 minutes, once)"
    # Its lock pins cargo-util-schemas 0.14.2, which needs a newer rustc than stable.
    install_patched cargo-leptos "$CARGO_LEPTOS_VERSION" cargo update -p cargo-util-schemas --precise 0.14.1
  fi
  local wbg
  wbg=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/,""); print; exit}' Cargo.lock)
  if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $wbg" ]; then
    say "installing wasm-bindgen-cli $wbg (must equal the crate version in Cargo.lock)"
    # Its lock names a webpki-roots release the registry does not serve.
    install_patched wasm-bindgen-cli "$wbg" sh -c 'cargo update -p webpki-roots@1.0.11 --precise 1.0.10 2>/dev/null || true'
  fi
  if [ ! -x node_modules/.bin/wasm-opt ]; then
    say "installing npm build tools (wasm-opt)"
    npm ci --no-audit --no-fund
  fi
}

test_tools() {
  if [ -n "${CHROMIUM_PATH:-}" ] && [ -x "$CHROMIUM_PATH" ]; then
    : # a browser was chosen explicitly
  elif ! command -v chromium >/dev/null; then
    say "installing chromium from Debian"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium
  fi
  if [ ! -d end2end/node_modules/@playwright/test ]; then
    say "installing Playwright (no browser download)"
    (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
  fi
}

case "${1:-build}" in
  build) build_tools ;;
  test) build_tools; test_tools ;;
  *) echo "usage: $0 build|test" >&2; exit 2 ;;
esac
