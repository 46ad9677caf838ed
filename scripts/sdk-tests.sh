#!/usr/bin/env bash
# End-to-end tests of the Anthropic-, OpenAI- and Gemini-compatible routes with the official
# `anthropic`, `openai` and `google-genai` Python SDKs as clients (sdk-tests/): the real sub2api
# binary relays to the fake upstream.
#   1. a venv in target/sdk-venv, (re)installing sdk-tests/requirements.txt only when it changed,
#      and the pinned Codex CLI in sdk-tests/codex and Claude Code CLI in sdk-tests/claude (npm ci,
#      each only when missing or its lock changed);
#   2. the debug binaries sub2api and fake-upstream;
#   3. pytest, then one line `sdk: N passed, N failed`.
# Extra arguments go to pytest (scripts/sdk-tests.sh -k stream). Exits non-zero when a test
# failed or none ran.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO=${CARGO:-cargo}
PYTHON=${PYTHON:-python3}
VENV=target/sdk-venv
REQUIREMENTS=sdk-tests/requirements.txt
STAMP=$VENV/.requirements.sha256
REPORT=target/sdk-tests.xml
say() { printf '==> %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

make_venv() {
  rm -rf "$VENV"
  if "$PYTHON" -m venv "$VENV" 2>/dev/null; then return 0; fi
  # Debian's python3 ships venv (ensurepip) separately.
  say "installing python3-venv"
  rm -rf "$VENV"
  as_root apt-get install -y python3 python3-venv >/dev/null
  "$PYTHON" -m venv "$VENV"
}

if ! "$VENV/bin/python" -c '' 2>/dev/null; then
  say "creating $VENV"
  make_venv
fi
wanted=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$wanted" ]; then
  say "installing $REQUIREMENTS into $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
  printf '%s\n' "$wanted" >"$STAMP"
fi

# npm_ci DIR BIN NAME: `npm ci` in DIR when node_modules/.bin/BIN is missing or the lock changed
# since the last install (its hash is kept in node_modules/.lock.sha256).
npm_ci() {
  local dir=$1 bin=$2 name=$3 lock
  lock=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [ ! -x "$dir/node_modules/.bin/$bin" ] ||
    [ "$(cat "$dir/node_modules/.lock.sha256" 2>/dev/null || true)" != "$lock" ]; then
    say "installing $name ($dir, npm registry)"
    (cd "$dir" && npm ci --no-audit --no-fund)
    printf '%s\n' "$lock" >"$dir/node_modules/.lock.sha256"
  fi
}
npm_ci sdk-tests/codex codex "Codex CLI"
# Its postinstall puts the native binary (from an optional dependency) in place of a stub.
npm_ci sdk-tests/claude claude "Claude Code CLI"

say "building sub2api and fake-upstream (debug)"
"$CARGO" build -p server --bin sub2api
"$CARGO" build -p proxy --features testing --bin fake-upstream
target_dir=$("$CARGO" metadata --format-version 1 --no-deps |
  "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')

say "running the SDK tests"
rm -f "$REPORT"
status=0
SUB2API_BIN="$target_dir/debug/sub2api" FAKE_UPSTREAM_BIN="$target_dir/debug/fake-upstream" \
  PYTHONDONTWRITEBYTECODE=1 \
  "$VENV/bin/python" -m pytest sdk-tests -p no:cacheprovider --junitxml="$REPORT" "$@" || status=$?

# Counts from the JUnit report: "passed failed skipped".
counts=$("$VENV/bin/python" - "$REPORT" <<'EOF' || true
import sys
import xml.etree.ElementTree as ET

suites = ET.parse(sys.argv[1]).getroot()
suites = [suites] if suites.tag == "testsuite" else suites.findall("testsuite")
n = lambda key: sum(int(s.get(key, 0)) for s in suites)
failed = n("failures") + n("errors")
print(n("tests") - failed - n("skipped"), failed, n("skipped"))
EOF
)
read -r passed failed skipped <<<"${counts:-0 0 0}"
line="sdk: $passed passed, $failed failed"
if [ "$skipped" -gt 0 ]; then line="$line, $skipped skipped"; fi
echo "$line"
if [ "$status" -eq 0 ] && [ "$passed" -eq 0 ]; then
  echo "sdk: no test ran" >&2
  status=1
fi
if [ "$status" -eq 0 ] && [ "$failed" -gt 0 ]; then status=1; fi
exit "$status"
