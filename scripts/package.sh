#!/usr/bin/env bash
# Packs an existing build into a release archive; builds nothing itself.
#
#   scripts/package.sh [--bin FILE] [--site DIR] [--version X.Y.Z] [--arch amd64|arm64]
#                      [--repo OWNER/NAME] [--out DIR]
#
# Writes to --out (default target/dist/):
#   sub2api-<version>-linux-<arch>.tar.gz   sub2api-<version>-linux-<arch>/ holding the binary,
#                                          site/, and the deploy/ files (install.sh, unit,
#                                          compose files, .env.example, config.example.yaml)
#   install.sh                             the installer on its own, for a one-line install
#   SHA256SUMS                             rewritten over every archive and install.sh there
#
# The version defaults to what the binary reports (`sub2api version`); a given --version must
# match it, so an archive can never carry a binary of another version. --repo (the release
# workflow passes $GITHUB_REPOSITORY) is stamped into install.sh and docker-deploy.sh so the
# shipped copies download from, and deploy images of, the repository that built them.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=target/release/sub2api
site=target/site
version=""
arch=""
repo=""
out=target/dist

say() { printf '==> %s\n' "$*"; }
die() { printf 'package.sh: %s\n' "$*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=${2:?}; shift ;;
    --site) site=${2:?}; shift ;;
    --version) version=${2:?}; shift ;;
    --arch) arch=${2:?}; shift ;;
    --repo) repo=${2:?}; shift ;;
    --out) out=${2:?}; shift ;;
    -h | --help) sed -n '2,19s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done

[ -x "$bin" ] || die "no binary at $bin (build first: cargo leptos build --release)"
[ -d "$site" ] || die "no site folder at $site (build first: cargo leptos build --release)"

reported=$("$bin" version) || die "$bin version failed (built for another machine?)"
reported=${reported#sub2api }
version=${version#v}
if [ -z "$version" ]; then
  version=$reported
elif [ "$version" != "$reported" ]; then
  die "$bin reports version $reported, not $version (build with SUB2API_VERSION=v$version)"
fi
# Versions and repository names end up in file names and sed replacements: keep them plain.
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$ ]] || die "odd version: $version"
if [ -n "$repo" ] && ! [[ "$repo" =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ ]]; then
  die "--repo must be OWNER/NAME, not $repo"
fi

if [ -z "$arch" ]; then
  case "$(uname -m)" in
    x86_64 | amd64) arch=amd64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) die "unknown machine $(uname -m); pass --arch" ;;
  esac
fi
case "$arch" in amd64 | arm64) ;; *) die "--arch must be amd64 or arm64" ;; esac

stem="sub2api-$version-linux-$arch"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage="$work/$stem"
mkdir -p "$stage" "$out"

# Copies a script and fills in RELEASE_REPO / RELEASE_VERSION when a repository is given.
stamp() { # source destination
  if [ -n "$repo" ]; then
    sed -e "s|^RELEASE_REPO=\"\"$|RELEASE_REPO=\"$repo\"|" \
      -e "s|^RELEASE_VERSION=\"\"$|RELEASE_VERSION=\"$version\"|" "$1" > "$2"
    grep -q "^RELEASE_REPO=\"$repo\"$" "$2" || die "could not stamp $1"
  else
    cp "$1" "$2"
  fi
  chmod 0755 "$2"
}

install -m 0755 "$bin" "$stage/sub2api"
cp -R "$site" "$stage/site"
stamp deploy/install.sh "$stage/install.sh"
stamp deploy/docker-deploy.sh "$stage/docker-deploy.sh"
for f in README.md config.example.yaml sub2api.service .env.example \
  docker-compose.yml docker-compose.local.yml docker-compose.standalone.yml; do
  install -m 0644 "deploy/$f" "$stage/$f"
done

# Owner root and sorted names: the archive does not depend on who built it, and a root
# extracting it does not get files owned by the build machine's uid.
tar --sort=name --owner=0 --group=0 --numeric-owner -C "$work" -cf - "$stem" | gzip -n > "$out/$stem.tar.gz"
stamp deploy/install.sh "$out/install.sh"

(
  cd "$out"
  shopt -s nullglob
  files=(sub2api-*-linux-*.tar.gz install.sh)
  sha256sum -- "${files[@]}" > SHA256SUMS
)
say "packed $out/$stem.tar.gz ($(du -h "$out/$stem.tar.gz" | cut -f1)) and $out/SHA256SUMS"
