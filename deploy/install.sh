#!/usr/bin/env bash
# Installs sub2api from a release archive as a systemd service, upgrades it, or removes it.
#
#   install.sh [install] [--version 1.2.3] [--repo OWNER/NAME] [--base-url URL]
#              [--from-file ARCHIVE] [--root DIR] [--no-start]
#   install.sh uninstall [--root DIR] [--purge]
#
# What goes where (below DIR with --root DIR):
#   /opt/sub2api/sub2api, /opt/sub2api/site/   binary and web UI, replaced on every install
#   /opt/sub2api/data/                         database and encryption key, never touched
#                                              (uninstall keeps it unless --purge)
#   /etc/sub2api/config.yaml, sub2api.env      configuration, written only when absent
#   /etc/systemd/system/sub2api.service        the unit
#
# The only network access is the release download: sub2api-<version>-linux-<arch>.tar.gz
# and SHA256SUMS from --base-url (or $SUB2API_RELEASE_BASE_URL), by default
# https://github.com/<repo>/releases/download/v<version>. The archive must match its line
# in SHA256SUMS or nothing is installed. --from-file ARCHIVE uses a local archive and the
# SHA256SUMS beside it instead.
#
# --root DIR (or $DESTDIR) installs into a folder instead of the system, for tests and image
# builds: no user is created, nothing is chowned and systemctl is not called.
set -euo pipefail

# Filled in by scripts/package.sh in the copy shipped with a release, so that copy knows
# where it came from; empty in the source tree.
RELEASE_REPO=""
RELEASE_VERSION=""

APP=sub2api
SERVICE_USER=sub2api

say() { printf '==> %s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

usage() {
  cat <<'EOF'
usage: install.sh [install] [--version X.Y.Z] [--repo OWNER/NAME] [--base-url URL]
                  [--from-file ARCHIVE] [--root DIR] [--no-start]
       install.sh uninstall [--root DIR] [--purge]

  --version X.Y.Z     release to install (default: the one this script came with, else latest)
  --repo OWNER/NAME   GitHub repository publishing the releases ($SUB2API_REPO)
  --base-url URL      folder holding the archive and SHA256SUMS ($SUB2API_RELEASE_BASE_URL)
  --from-file FILE    install a local archive, verified against the SHA256SUMS beside it
  --root DIR          install below DIR instead of / ($DESTDIR); no user, no systemctl
  --no-start          do not start the service after a first install
  --purge             uninstall: also delete /opt/sub2api/data and /etc/sub2api
EOF
  exit "${1:-0}"
}

action=install
version=${SUB2API_VERSION:-}
repo=${SUB2API_REPO:-$RELEASE_REPO}
base_url=${SUB2API_RELEASE_BASE_URL:-}
from_file=""
root=${DESTDIR:-}
start=1
purge=0

while [ $# -gt 0 ]; do
  case "$1" in
    install | uninstall) action=$1 ;;
    --version) version=${2:?--version needs a value}; shift ;;
    --version=*) version=${1#*=} ;;
    --repo) repo=${2:?--repo needs OWNER/NAME}; shift ;;
    --repo=*) repo=${1#*=} ;;
    --base-url) base_url=${2:?--base-url needs a URL}; shift ;;
    --base-url=*) base_url=${1#*=} ;;
    --from-file) from_file=${2:?--from-file needs an archive}; shift ;;
    --from-file=*) from_file=${1#*=} ;;
    --root) root=${2:?--root needs a folder}; shift ;;
    --root=*) root=${1#*=} ;;
    --no-start) start=0 ;;
    --purge) purge=1 ;;
    -h | --help) usage 0 ;;
    *) printf 'install.sh: unknown argument %s\n\n' "$1" >&2; usage 2 >&2 ;;
  esac
  shift
done
# Tags are v1.2.3; archives and `sub2api version` say 1.2.3. An explicit version wins over
# the one stamped into a release copy of this script.
wanted=${version#v}
version=${wanted:-$RELEASE_VERSION}

# "/" or nothing means the real system; anything else is a folder we own completely.
if [ "$root" = "/" ]; then root=""; fi
if [ -n "$root" ]; then
  mkdir -p "$root"
  root=$(cd "$root" && pwd)
  system=0
else
  system=1
fi
opt="$root/opt/$APP"
etc="$root/etc/$APP"
unit="$root/etc/systemd/system/$APP.service"

# systemctl only when this is the real system and systemd is the running init (not in a
# container or chroot).
have_systemd() { [ "$system" -eq 1 ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; }

need_root() {
  if [ "$system" -eq 1 ] && [ "$(id -u)" -ne 0 ]; then
    die "installing into the system needs root: run it with sudo (or use --root DIR)"
  fi
}

machine_arch() {
  [ "$(uname -s)" = Linux ] || die "release archives are for Linux only (this is $(uname -s))"
  case "$(uname -m)" in
    x86_64 | amd64) echo amd64 ;;
    aarch64 | arm64) echo arm64 ;;
    *) die "no release archive for $(uname -m) (only amd64 and arm64)" ;;
  esac
}

fetch() { # url file
  if command -v curl >/dev/null; then
    curl -fsSL --retry 3 --proto '=https,http' -o "$2" "$1"
  elif command -v wget >/dev/null; then
    wget -q -O "$2" "$1"
  else
    die "need curl or wget to download $1"
  fi
}

sha256_of() {
  if command -v sha256sum >/dev/null; then sha256sum "$1" | cut -d' ' -f1
  elif command -v shasum >/dev/null; then shasum -a 256 "$1" | cut -d' ' -f1
  else die "need sha256sum or shasum to verify the download"; fi
}

# Asks GitHub which tag "latest" redirects to; only when no version was given or stamped.
latest_version() {
  [ -n "$repo" ] || die "no --version given and no repository known: pass --version X.Y.Z and --repo OWNER/NAME (or --base-url)"
  command -v curl >/dev/null || die "pass --version X.Y.Z (finding the latest release needs curl)"
  local url
  url=$(curl -fsSLI -o /dev/null -w '%{url_effective}' "https://github.com/$repo/releases/latest") \
    || die "cannot reach https://github.com/$repo/releases/latest"
  case "$url" in
    */tag/v*) echo "${url##*/tag/v}" ;;
    *) die "no release found at https://github.com/$repo/releases" ;;
  esac
}

# Checks $1 against the line for its name in the SHA256SUMS file $2.
verify() {
  local archive=$1 sums=$2 name expected actual
  name=$(basename "$archive")
  expected=$(awk -v f="$name" '$2 == f || $2 == "*" f { print $1; exit }' "$sums")
  [ -n "$expected" ] || die "$name is not listed in $(basename "$sums")"
  actual=$(sha256_of "$archive")
  [ "$actual" = "$expected" ] || die "checksum mismatch for $name (expected $expected, got $actual): not installing"
  say "checksum verified: $name"
}

install_app() {
  need_root
  local arch work archive sums stem
  arch=$(machine_arch)
  work=$(mktemp -d)
  # shellcheck disable=SC2064 # expand now: $work is local and gone when the trap runs
  trap "rm -rf '$work'" EXIT

  if [ -n "$from_file" ]; then
    [ -f "$from_file" ] || die "no such archive: $from_file"
    archive=$from_file
    sums="$(dirname "$from_file")/SHA256SUMS"
    [ -f "$sums" ] || die "no SHA256SUMS beside $from_file: cannot verify it"
    stem=$(basename "$archive" .tar.gz)
    case "$stem" in
      "$APP"-*-linux-"$arch") ;;
      *) die "$(basename "$archive") is not a $APP release archive for linux-$arch" ;;
    esac
    local named=${stem#"$APP"-}
    named=${named%-linux-"$arch"}
    if [ -n "$wanted" ] && [ "$wanted" != "$named" ]; then
      die "$(basename "$archive") is version $named, not $wanted"
    fi
    version=$named
  else
    if [ -z "$version" ]; then
      [ -z "$base_url" ] || die "--base-url needs --version"
      version=$(latest_version)
    fi
    if [ -z "$base_url" ]; then
      [ -n "$repo" ] || die "which GitHub repository? pass --repo OWNER/NAME (or --base-url URL)"
      base_url="https://github.com/$repo/releases/download/v$version"
    fi
    stem="$APP-$version-linux-$arch"
    archive="$work/$stem.tar.gz"
    sums="$work/SHA256SUMS"
    say "downloading $stem.tar.gz from ${base_url%/}"
    fetch "${base_url%/}/$stem.tar.gz" "$archive" || die "download failed: ${base_url%/}/$stem.tar.gz"
    fetch "${base_url%/}/SHA256SUMS" "$sums" || die "download failed: ${base_url%/}/SHA256SUMS"
  fi
  verify "$archive" "$sums"

  tar -xzf "$archive" -C "$work"
  local src="$work/$stem"
  if [ ! -x "$src/$APP" ] || [ ! -d "$src/site" ]; then
    die "$(basename "$archive") lacks $stem/$APP or $stem/site"
  fi

  if [ "$system" -eq 1 ] && ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
    say "creating system user $SERVICE_USER"
    useradd --system --user-group --home-dir "/opt/$APP" --no-create-home \
      --shell /usr/sbin/nologin "$SERVICE_USER"
  fi

  say "installing $APP $version into ${root:-/}"
  mkdir -p "$opt" "$etc" "$(dirname "$unit")"
  # Replace by rename so a running service keeps its old files until it restarts.
  install -m 0755 "$src/$APP" "$opt/$APP.new"
  mv -f "$opt/$APP.new" "$opt/$APP"
  rm -rf "$opt/site.new" "$opt/site.old"
  cp -R "$src/site" "$opt/site.new"
  if [ -d "$opt/site" ]; then mv "$opt/site" "$opt/site.old"; fi
  mv "$opt/site.new" "$opt/site"
  rm -rf "$opt/site.old"
  install -m 0644 "$src/config.example.yaml" "$opt/config.example.yaml"
  install -m 0644 "$src/sub2api.service" "$unit"

  mkdir -p "$opt/data"
  chmod 0750 "$opt/data"
  if [ -e "$etc/config.yaml" ]; then
    say "kept the existing $etc/config.yaml"
  else
    install -m 0640 "$src/config.example.yaml" "$etc/config.yaml"
    say "wrote $etc/config.yaml (all defaults; edit it to change settings)"
  fi
  if [ ! -e "$etc/$APP.env" ]; then
    # Read by systemd as root before it drops to the service user, so root-only is enough.
    (umask 077 && write_env_file > "$etc/$APP.env")
  fi
  if [ "$system" -eq 1 ]; then
    chown -R "$SERVICE_USER:$SERVICE_USER" "$opt/data"
    chgrp "$SERVICE_USER" "$etc/config.yaml"
  fi

  local reported
  reported=$("$opt/$APP" version 2>/dev/null || true)
  say "installed: ${reported:-$opt/$APP (did not run here)}"

  if have_systemd; then
    systemctl daemon-reload
    systemctl enable "$APP" >/dev/null 2>&1
    if systemctl is-active --quiet "$APP"; then
      say "restarting the running service"
      systemctl restart "$APP"
    elif [ "$start" -eq 1 ]; then
      say "starting $APP (first start logs the admin sign-in: journalctl -u $APP | grep password)"
      systemctl start "$APP"
    fi
  elif [ "$system" -eq 1 ]; then
    say "systemd is not running here: start $opt/$APP from $opt yourself"
  fi
  say "done. Settings: $etc/config.yaml, secrets: $etc/$APP.env, data: $opt/data"
}

write_env_file() {
  cat <<'EOF'
# Environment for sub2api.service: KEY=value lines, read by systemd as root.
# Restart after a change: systemctl restart sub2api
#
# PostgreSQL instead of SQLite, and Redis when several instances share the load:
# DATABASE_URL=postgres://sub2api:PASSWORD@127.0.0.1:5432/sub2api
# REDIS_URL=redis://:PASSWORD@127.0.0.1:6379/0
#
# Key for upstream credentials at rest (openssl rand -hex 32); the same on every instance
# sharing a database. Unset: /opt/sub2api/data/encryption.key is generated on first start.
# SUB2API__SECURITY__ENCRYPTION_KEY=
#
# The first administrator (used only while none exists; otherwise a password is generated
# and logged once):
# SUB2API_ADMIN_EMAIL=admin@example.com
# SUB2API_ADMIN_PASSWORD=
EOF
}

uninstall_app() {
  need_root
  if have_systemd; then
    systemctl disable --now "$APP" >/dev/null 2>&1 || true
  fi
  say "removing $APP from ${root:-/}"
  rm -f "$unit" "$opt/$APP" "$opt/$APP.new" "$opt/config.example.yaml"
  rm -rf "$opt/site" "$opt/site.new" "$opt/site.old"
  if have_systemd; then systemctl daemon-reload; fi
  if [ "$purge" -eq 1 ]; then
    say "purging data and configuration"
    rm -rf "${opt:?}/data" "${etc:?}"
    if [ "$system" -eq 1 ] && id -u "$SERVICE_USER" >/dev/null 2>&1; then
      userdel "$SERVICE_USER" || true
    fi
  fi
  rmdir "$opt" 2>/dev/null || true # stays while data/ is kept
  if [ -d "$opt/data" ] || [ -d "$etc" ]; then
    say "kept $opt/data and $etc (remove them with: install.sh uninstall --purge)"
  fi
  say "done"
}

case "$action" in
  install) install_app ;;
  uninstall) uninstall_app ;;
esac
