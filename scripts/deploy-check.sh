#!/usr/bin/env bash
# Checks the deployment kit (`make deploy-check`); needs neither Docker nor root:
#   1. compose files: parse, and name only defined services, declared volumes and networks,
#      and ${VARS} listed in deploy/.env.example; the release/CI workflows parse;
#   2. deploy/.env.example covers every compose variable, lists no unused ones, marks secrets;
#   3. shellcheck on every shell script;
#   4. systemd-analyze verify on deploy/sub2api.service (where systemd-analyze exists);
#   5. docker-deploy.sh prepares a folder with secrets and refuses to reuse it (and
#      `docker compose config` accepts it, where the Compose plugin is installed);
#   6. install.sh end to end: a debug build stamped v1.2.3 is packed with scripts/package.sh,
#      served from 127.0.0.1, installed into a temporary root and removed again; a tampered
#      archive must be refused. The debug binary is rebuilt unstamped at the end.
# Prints one line per check and exits non-zero when any failed. Only 127.0.0.1 is contacted
# (apart from apt/PyPI when PyYAML or shellcheck are missing).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO=${CARGO:-cargo}
TEST_VERSION=1.2.3
failures=0

pass() { printf 'ok    %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; failures=$((failures + 1)); }
skip() { printf 'skip  %s\n' "$*"; }
note() { printf '      %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

# Installs Debian packages quietly, refreshing the package lists only when the first try fails.
apt_install() {
  command -v apt-get >/dev/null || return 1
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 && return 0
  as_root apt-get update -qq >/dev/null 2>&1 \
    && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/sub2api-deploy-check.XXXXXX")
http_pid=""
stamped_build=0
# Also on an early exit: stop the test server and never leave the shared debug binary
# reporting the test version.
cleanup() {
  stop_server
  restore_build
  rm -rf "$work"
}
trap cleanup EXIT

# ------------------------------------------------------------------ tools

# A python3 with PyYAML: the one on PATH, Debian's (installing python3-yaml if needed), or a
# small venv under target/.
find_python() {
  local py
  for py in python3 /usr/bin/python3 target/deploy-venv/bin/python; do
    if "$py" -c 'import yaml' 2>/dev/null; then PY=$py; return 0; fi
  done
  if command -v apt-get >/dev/null && [ -x /usr/bin/python3 ]; then
    note "installing python3-yaml from apt"
    if apt_install python3-yaml && /usr/bin/python3 -c 'import yaml' 2>/dev/null; then
      PY=/usr/bin/python3
      return 0
    fi
  fi
  note "installing PyYAML into target/deploy-venv"
  python3 -m venv target/deploy-venv >/dev/null && target/deploy-venv/bin/pip install -q pyyaml >/dev/null \
    && PY=target/deploy-venv/bin/python && return 0
  return 1
}

find_shellcheck() {
  command -v shellcheck >/dev/null && return 0
  note "installing shellcheck from apt"
  apt_install shellcheck
}

# ------------------------------------------------------------------ 1 + 2: YAML, compose, .env

compose_checks() {
  "$PY" - deploy/.env.example deploy/docker-compose*.yml -- .github/workflows/*.yml <<'PYEOF'
"""Static checks of the compose files against .env.example; one output line per check."""
import re
import sys

import yaml

args = sys.argv[1:]
env_example = args[0]
split = args.index("--")
compose_files, workflow_files = args[1:split], args[split + 1:]
failed = 0


def report(ok, what, detail=""):
    global failed
    failed += not ok
    print(f"{'ok   ' if ok else 'FAIL '} {what}{': ' + detail if detail else ''}")


# KEY=value lines of .env.example, and whether the comment block right above each says
# [secret]. One block may introduce several variables on consecutive lines.
env_keys, secret_marked, comment, after_key = {}, set(), [], False
for line in open(env_example, encoding="utf-8"):
    line = line.rstrip("\n")
    m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line)
    if line.startswith("#"):
        comment = [line] if after_key else comment + [line]
        after_key = False
    elif m:
        env_keys[m.group(1)] = m.group(2)
        if any("[secret]" in c for c in comment):
            secret_marked.add(m.group(1))
        after_key = True
    else:
        if line.strip():
            report(False, f"{env_example} line is not KEY=value", line)
        comment, after_key = [], False

# ${VAR}, ${VAR:-x}, ${VAR?x}, $VAR; "$$" is a literal dollar in compose files.
VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}|\$([A-Za-z_][A-Za-z0-9_]*)")
REQUIRED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?\?")


def strings(node):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from strings(k)
            yield from strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings(v)
    elif isinstance(node, str):
        yield node


def variables(doc):
    found, required = set(), set()
    for s in strings(doc):
        s = s.replace("$$", "")
        found.update(a or b for a, b in VAR.findall(s))
        required.update(REQUIRED.findall(s))
    return found, required


def seconds(value):
    m = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", str(value))
    return int(m.group(1) or 0) * 60 + int(m.group(2) or 0) if m and value else 0


used_anywhere = set()
for path in compose_files:
    try:
        doc = yaml.safe_load(open(path, encoding="utf-8"))
    except yaml.YAMLError as e:
        report(False, f"{path} parses as YAML", str(e).replace("\n", " "))
        continue
    services = doc.get("services") or {}
    volumes = set((doc.get("volumes") or {}).keys())
    networks = set((doc.get("networks") or {}).keys()) | {"default"}
    report(bool(services), f"{path} parses as YAML", f"services {', '.join(services)}")

    problems, used_volumes = [], set()
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        for dep in deps:
            if dep not in services:
                problems.append(f"{name} depends on undefined service {dep}")
            elif not (services[dep] or {}).get("healthcheck"):
                problems.append(f"{name} waits for {dep}, which has no healthcheck")
            if isinstance(deps, list) or (deps[dep] or {}).get("condition") != "service_healthy":
                problems.append(f"{name} -> {dep} is not condition: service_healthy")
        for other in svc.get("links") or []:
            if other.split(":")[0] not in services:
                problems.append(f"{name} links undefined service {other}")
        for vol in svc.get("volumes") or []:
            source = vol.get("source", "") if isinstance(vol, dict) else vol.split(":")[0]
            if isinstance(vol, dict) and vol.get("type", "volume") != "volume":
                continue
            if source and not source.startswith((".", "/", "~", "$")):
                used_volumes.add(source)
                if source not in volumes:
                    problems.append(f"{name} mounts undeclared volume {source}")
        for net in svc.get("networks") or []:
            if net not in networks:
                problems.append(f"{name} joins undeclared network {net}")
        if not svc.get("healthcheck"):
            problems.append(f"{name} has no healthcheck")
    for unused in sorted(volumes - used_volumes):
        problems.append(f"volume {unused} is declared but never mounted")
    report(not problems, f"{path} services, volumes and networks", "; ".join(problems) or
           f"{len(services)} services, {len(volumes)} named volumes")

    # What the deployment promises: a grace period above the 30 s shutdown grace, and
    # PostgreSQL 16+ / Redis 7+.
    problems = []
    for name, svc in services.items():
        image = str(svc.get("image", ""))
        if "sub2api" in image and seconds(svc.get("stop_grace_period")) < 40:
            problems.append(f"{name}: stop_grace_period below 40s")
        for base, least in (("postgres:", 16), ("redis:", 7)):
            if image.startswith(base):
                major = re.match(r"\d+", image[len(base):])
                if not major or int(major.group()) < least:
                    problems.append(f"{name}: {image} is older than {base}{least}")
    report(not problems, f"{path} grace period and image versions", "; ".join(problems) or "as required")

    found, required = variables(doc)
    used_anywhere |= found
    missing = sorted(found - env_keys.keys())
    report(not missing, f"{path} variables are in {env_example}",
           f"missing {', '.join(missing)}" if missing else f"{len(found)} used, {len(required)} required")

missing_marks = sorted(k for k in env_keys if re.search(r"PASSWORD|SECRET|_KEY$", k) and k not in secret_marked)
unused = sorted(set(env_keys) - used_anywhere)
problems = ([f"not used by any compose file: {', '.join(unused)}"] if unused else []) + \
           ([f"secret without a [secret] mark: {', '.join(missing_marks)}"] if missing_marks else [])
report(not problems, f"{env_example} covers the compose files", "; ".join(problems) or
       f"{len(env_keys)} variables, {len(secret_marked)} marked [secret]")

for path in workflow_files:
    try:
        doc = yaml.safe_load(open(path, encoding="utf-8"))
        report(isinstance(doc, dict) and bool(doc.get("jobs")), f"{path} parses as YAML",
               f"jobs {', '.join((doc or {}).get('jobs') or {})}")
    except yaml.YAMLError as e:
        report(False, f"{path} parses as YAML", str(e).replace("\n", " "))

sys.exit(min(failed, 100))
PYEOF
}

# ------------------------------------------------------------------ 3: shellcheck

shell_checks() {
  local f
  for f in deploy/*.sh scripts/*.sh bench/*.sh .ci/run; do
    [ -f "$f" ] || continue
    if shellcheck "$f" > "$work/shellcheck.out" 2>&1; then
      pass "shellcheck $f"
    else
      fail "shellcheck $f"
      sed 's/^/      /' "$work/shellcheck.out"
    fi
  done
}

# ------------------------------------------------------------------ 4: the systemd unit

unit_checks() {
  local unit=deploy/sub2api.service problems=() key
  for key in 'NoNewPrivileges=true' 'ProtectSystem=strict' 'Restart=always' 'ReadWritePaths=/' \
    'WorkingDirectory=/' 'EnvironmentFile=-/' 'User=sub2api'; do
    grep -q "^$key" "$unit" || problems+=("no $key")
  done
  local stop
  stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s\{0,1\}$/\1/p' "$unit")
  [ "${stop:-0}" -ge 40 ] || problems+=("TimeoutStopSec below 40")
  local data
  data=$(sed -n 's/^ReadWritePaths=//p' "$unit")
  grep -q "^WorkingDirectory=${data%/data}$" "$unit" || problems+=("ReadWritePaths is not WorkingDirectory/data")
  if [ ${#problems[@]} -eq 0 ]; then pass "$unit has the required settings"; else fail "$unit: ${problems[*]}"; fi

  if ! command -v systemd-analyze >/dev/null; then
    skip "systemd-analyze verify $unit (systemd-analyze is not installed)"
    return
  fi
  # verify insists that ExecStart exists: check a copy that runs a binary present here.
  local exe
  exe=$(command -v true)
  if [ -x target/debug/sub2api ]; then exe=$(pwd)/target/debug/sub2api; fi
  mkdir -p "$work/unit"
  sed "s|^ExecStart=/opt/sub2api/sub2api|ExecStart=$exe|" "$unit" > "$work/unit/sub2api.service"
  if systemd-analyze verify "$work/unit/sub2api.service" > "$work/verify.out" 2>&1; then
    pass "systemd-analyze verify $unit"
  else
    fail "systemd-analyze verify $unit"
    sed 's/^/      /' "$work/verify.out"
  fi
}

# ------------------------------------------------------------------ 5: docker-deploy.sh

docker_deploy_checks() {
  local dir="$work/docker-deploy" variant
  for variant in named local standalone; do
    local target="$dir/$variant"
    if ! deploy/docker-deploy.sh --dir "$target" --variant "$variant" > "$work/dd.out" 2>&1; then
      fail "docker-deploy.sh --variant $variant"
      sed 's/^/      /' "$work/dd.out"
      continue
    fi
    local problems=() compose
    compose=$(sed -n 's/^COMPOSE_FILE=//p' "$target/.env")
    [ -f "$target/$compose" ] || problems+=("no compose file $compose")
    [ "$(stat -c %a "$target/.env")" = 600 ] || problems+=(".env is not mode 600")
    grep -Eq '^SUB2API__SECURITY__ENCRYPTION_KEY=[0-9a-f]{64}$' "$target/.env" || problems+=("no 64-hex encryption key")
    # Every ${VAR:?} the chosen compose file requires must have a value in the .env.
    local var
    while read -r var; do
      grep -Eq "^$var=.+" "$target/.env" || problems+=("$var is empty")
    done < <(grep -o '[$]{[A-Z0-9_]*:?' "$target/$compose" | sed 's/^[$]{//; s/:?$//' | sort -u)
    if [ "$variant" = local ] && [ ! -d "$target/data" ]; then problems+=("no ./data"); fi
    if deploy/docker-deploy.sh --dir "$target" --variant "$variant" > "$work/dd.out" 2>&1; then
      problems+=("a second run reused the folder")
    fi
    if [ ${#problems[@]} -eq 0 ]; then
      pass "docker-deploy.sh --variant $variant: $compose + .env with secrets; refuses an existing folder"
    else
      fail "docker-deploy.sh --variant $variant: ${problems[*]}"
    fi
    # With the Compose plugin around (CI runners), let it resolve the file with that .env.
    if docker compose version >/dev/null 2>&1; then
      if (cd "$target" && docker compose config -q) > "$work/dc.out" 2>&1; then
        pass "docker compose config accepts the $variant deployment"
      else
        fail "docker compose config rejects the $variant deployment"
        sed 's/^/      /' "$work/dc.out"
      fi
    fi
  done
  if ! docker compose version >/dev/null 2>&1; then
    skip "docker compose config (the Compose plugin is not installed)"
  fi
}

# ------------------------------------------------------------------ 6: install.sh end to end

# install.sh with proxies disabled: the test server is on loopback and nothing else may be
# contacted.
run_install() {
  env -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY -u ALL_PROXY -u all_proxy \
    -u SUB2API_VERSION -u SUB2API_REPO -u SUB2API_RELEASE_BASE_URL -u DESTDIR \
    NO_PROXY=127.0.0.1 no_proxy=127.0.0.1 deploy/install.sh "$@"
}

reported_version() { "$1" version 2>/dev/null | sed 's/^sub2api //'; }

install_checks() {
  local log="$work/cargo.log"
  if SUB2API_VERSION="v$TEST_VERSION" "$CARGO" build -q -p server --bin sub2api > "$log" 2>&1; then
    stamped_build=1
    pass "debug build stamped SUB2API_VERSION=v$TEST_VERSION"
  else
    stamped_build=1 # the build may have half-run: restore it anyway
    fail "debug build stamped SUB2API_VERSION=v$TEST_VERSION"
    tail -n 30 "$log" | sed 's/^/      /'
    return
  fi

  local site=target/site
  if [ ! -d "$site" ]; then
    # The release UI build is slow; the installer only needs a folder to carry.
    site="$work/site"
    mkdir -p "$site/pkg"
    echo 'stand-in for the built web UI' > "$site/pkg/README"
  fi
  local www="$work/www" arch archive
  mkdir -p "$www/good" "$www/bad"
  if scripts/package.sh --bin target/debug/sub2api --site "$site" --version "$TEST_VERSION" \
    --repo owner/sub2api --out "$www/good" > "$work/package.out" 2>&1; then
    archive=$(cd "$www/good" && ls sub2api-"$TEST_VERSION"-linux-*.tar.gz)
    pass "scripts/package.sh packed $archive and SHA256SUMS"
  else
    fail "scripts/package.sh"
    sed 's/^/      /' "$work/package.out"
    return
  fi
  arch=${archive%.tar.gz}
  arch=${arch##*-}
  # The shipped scripts know where they came from: the installer its repository and version,
  # docker-deploy.sh the matching image.
  local unpacked="$work/unpacked/sub2api-$TEST_VERSION-linux-$arch"
  mkdir -p "$work/unpacked"
  tar -xzf "$www/good/$archive" -C "$work/unpacked"
  if grep -q '^RELEASE_REPO="owner/sub2api"$' "$unpacked/install.sh" \
    && grep -q "^RELEASE_VERSION=\"$TEST_VERSION\"$" "$unpacked/install.sh" \
    && "$unpacked/docker-deploy.sh" --dir "$work/unpacked/deployment" > /dev/null \
    && grep -q "^SUB2API_IMAGE=ghcr.io/owner/sub2api:$TEST_VERSION$" "$work/unpacked/deployment/.env"; then
    pass "the archive's install.sh and docker-deploy.sh are stamped with repository and version"
  else
    fail "the archive's install.sh / docker-deploy.sh were not stamped with --repo and the version"
  fi
  # The tampered copy: same SHA256SUMS, one byte more in the archive.
  cp "$www/good/SHA256SUMS" "$www/bad/"
  cp "$www/good/$archive" "$www/bad/"
  printf 'x' >> "$www/bad/$archive"

  # Port 0: the kernel picks a free port, which the server prints.
  python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$www" > "$work/http.log" 2>&1 &
  http_pid=$!
  local port="" _
  for _ in $(seq 1 50); do
    port=$(sed -n 's/.* port \([0-9][0-9]*\).*/\1/p' "$work/http.log" | head -n 1)
    [ -n "$port" ] && break
    sleep 0.1
  done
  if [ -z "$port" ]; then
    fail "serving the archive on 127.0.0.1"
    sed 's/^/      /' "$work/http.log"
    return
  fi
  local base="http://127.0.0.1:$port" root="$work/root"

  if run_install --base-url "$base/good" --version "$TEST_VERSION" --root "$root" > "$work/install.out" 2>&1 \
    && [ "$(reported_version "$root/opt/sub2api/sub2api")" = "$TEST_VERSION" ]; then
    pass "install.sh --base-url $base/good --version $TEST_VERSION: the installed binary reports $TEST_VERSION"
  else
    fail "install.sh --base-url $base/good --version $TEST_VERSION"
    sed 's/^/      /' "$work/install.out"
    return
  fi
  local problems=() f
  for f in opt/sub2api/site opt/sub2api/data etc/sub2api/config.yaml etc/sub2api/sub2api.env \
    etc/systemd/system/sub2api.service; do
    [ -e "$root/$f" ] || problems+=("no /$f")
  done
  if [ ${#problems[@]} -eq 0 ]; then
    pass "install.sh laid out binary, site, data, config, env file and unit"
  else
    fail "install.sh layout: ${problems[*]}"
  fi

  # A second install is an upgrade: it must keep an edited config and the data.
  echo '# edited by the operator' >> "$root/etc/sub2api/config.yaml"
  echo 'precious' > "$root/opt/sub2api/data/keep"
  if run_install --base-url "$base/good" --version "$TEST_VERSION" --root "$root" > "$work/install.out" 2>&1 \
    && grep -q '^# edited by the operator$' "$root/etc/sub2api/config.yaml" \
    && [ -f "$root/opt/sub2api/data/keep" ]; then
    pass "install.sh again keeps the existing config and data"
  else
    fail "install.sh again overwrote the config or data"
    sed 's/^/      /' "$work/install.out"
  fi

  if run_install --base-url "$base/bad" --version "$TEST_VERSION" --root "$work/root-bad" > "$work/install.out" 2>&1; then
    fail "install.sh accepted a tampered archive"
  elif grep -q 'checksum mismatch' "$work/install.out" && [ ! -e "$work/root-bad/opt/sub2api/sub2api" ]; then
    pass "install.sh refuses a tampered archive (checksum mismatch, nothing installed)"
  else
    fail "install.sh failed on the tampered archive, but not on its checksum"
    sed 's/^/      /' "$work/install.out"
  fi

  if run_install --from-file "$www/good/$archive" --root "$work/root-file" > "$work/install.out" 2>&1 \
    && [ "$(reported_version "$work/root-file/opt/sub2api/sub2api")" = "$TEST_VERSION" ]; then
    pass "install.sh --from-file installs the local archive"
  else
    fail "install.sh --from-file"
    sed 's/^/      /' "$work/install.out"
  fi

  if run_install uninstall --root "$root" > "$work/install.out" 2>&1 \
    && [ ! -e "$root/opt/sub2api/sub2api" ] && [ ! -e "$root/opt/sub2api/site" ] \
    && [ ! -e "$root/etc/systemd/system/sub2api.service" ] \
    && [ -f "$root/opt/sub2api/data/keep" ] && [ -f "$root/etc/sub2api/config.yaml" ]; then
    pass "install.sh uninstall removes binary, site and unit, keeps data and config"
  else
    fail "install.sh uninstall"
    sed 's/^/      /' "$work/install.out"
  fi
  if run_install uninstall --purge --root "$root" > "$work/install.out" 2>&1 \
    && [ ! -e "$root/opt/sub2api" ] && [ ! -e "$root/etc/sub2api" ]; then
    pass "install.sh uninstall --purge removes data and config too"
  else
    fail "install.sh uninstall --purge"
    sed 's/^/      /' "$work/install.out"
  fi
}

stop_server() {
  if [ -n "$http_pid" ]; then
    kill "$http_pid" 2>/dev/null || true
    wait "$http_pid" 2>/dev/null || true
    http_pid=""
  fi
}

# Rebuilds the debug binary without the test version, so the shared target/debug/sub2api
# reports the Cargo version again.
restore_build() {
  [ "$stamped_build" -eq 1 ] || return 0
  stamped_build=0
  if env -u SUB2API_VERSION "$CARGO" build -q -p server --bin sub2api > "$work/cargo.log" 2>&1 \
    && [ "$(reported_version target/debug/sub2api)" != "$TEST_VERSION" ]; then
    pass "debug build restored (reports $(reported_version target/debug/sub2api))"
  else
    fail "debug build restored without SUB2API_VERSION"
    tail -n 30 "$work/cargo.log" | sed 's/^/      /'
  fi
}

# ------------------------------------------------------------------ run

if find_python; then
  compose_checks || failures=$((failures + $?))
else
  fail "python3 with PyYAML (apt python3-yaml or pip pyyaml) for the YAML checks"
fi
if find_shellcheck; then
  shell_checks
else
  fail "shellcheck is not installed and apt could not install it"
fi
unit_checks
docker_deploy_checks
install_checks
stop_server
restore_build

if [ "$failures" -gt 0 ]; then
  echo "deploy-check: $failures check(s) failed"
  exit 1
fi
echo "deploy-check: all passed"
