#!/usr/bin/env bash
# Prepares a folder from which `docker compose up -d` runs sub2api: one compose file, a .env
# with freshly generated secrets (mode 600) and, for the bind-mount variant, the data folders.
# It never touches an existing folder and never starts containers.
#
#   docker-deploy.sh [--dir DIR] [--variant named|local|standalone] [--image IMAGE]
#
#   --dir DIR        folder to create (default ./sub2api-deploy, or $SUB2API_DEPLOY_DIR)
#   --variant        named:      sub2api + PostgreSQL + Redis, data in Docker volumes (default)
#                    local:      the same, data in ./data, ./postgres_data, ./redis_data
#                    standalone: sub2api only; set DATABASE_URL / REDIS_URL in .env
#   --image IMAGE    sub2api image (default: the release this script came with, else
#                    sub2api:latest built locally with `docker build -t sub2api .`)
#
# The compose files and .env.example are taken from the folder this script sits in (deploy/
# in the source tree, or an unpacked release archive).
set -euo pipefail

# Filled in by scripts/package.sh in the copy shipped with a release, so the default image is
# that release's; empty in the source tree.
RELEASE_REPO=""
RELEASE_VERSION=""

# The image runs as this uid; a bind-mounted ./data must belong to it.
IMAGE_UID=10001

say() { printf '==> %s\n' "$*"; }
die() { printf 'docker-deploy.sh: %s\n' "$*" >&2; exit 1; }

here=$(cd "$(dirname "$0")" && pwd)
dir=${SUB2API_DEPLOY_DIR:-./sub2api-deploy}
variant=named
image=""

while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=${2:?--dir needs a folder}; shift ;;
    --dir=*) dir=${1#*=} ;;
    --variant) variant=${2:?--variant needs named, local or standalone}; shift ;;
    --variant=*) variant=${1#*=} ;;
    --image) image=${2:?--image needs an image reference}; shift ;;
    --image=*) image=${1#*=} ;;
    -h | --help) sed -n '2,17s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done

case "$variant" in
  named) compose=docker-compose.yml ;;
  local) compose=docker-compose.local.yml ;;
  standalone) compose=docker-compose.standalone.yml ;;
  *) die "--variant must be named, local or standalone, not $variant" ;;
esac
for f in "$compose" .env.example; do
  [ -f "$here/$f" ] || die "$here/$f is missing: run this script from deploy/ or an unpacked release"
done

if [ -z "$image" ]; then
  if [ -n "$RELEASE_REPO" ]; then
    owner=${RELEASE_REPO%%/*}
    # Registry paths must be lower case; GitHub owners may not be.
    image="ghcr.io/$(printf '%s' "$owner" | tr '[:upper:]' '[:lower:]')/sub2api:${RELEASE_VERSION:-latest}"
  else
    image=sub2api:latest
  fi
fi
case "$image" in
  *'|'* | *' '*) die "--image $image is not an image reference" ;;
esac

# Hex only: safe inside the database and Redis URLs and in sed replacements below.
rand_hex() { # bytes
  if command -v openssl >/dev/null; then
    openssl rand -hex "$1"
  else
    od -An -tx1 -N "$1" /dev/urandom | tr -d ' \n'
  fi
}

# Creating the folder with plain mkdir is the no-clobber check: it fails when it exists.
mkdir -p "$(dirname "$dir")"
mkdir "$dir" 2>/dev/null || die "$dir already exists; not touching it (choose another --dir)"
dir=$(cd "$dir" && pwd)

cp "$here/$compose" "$dir/$compose"
cp "$here/.env.example" "$dir/.env.example"

encryption_key=$(rand_hex 32)
postgres_password=$(rand_hex 24)
redis_password=$(rand_hex 24)
admin_password=$(rand_hex 12)
(
  umask 077
  sed -e "s|^SUB2API_IMAGE=.*|SUB2API_IMAGE=$image|" \
    -e "s|^SUB2API__SECURITY__ENCRYPTION_KEY=.*|SUB2API__SECURITY__ENCRYPTION_KEY=$encryption_key|" \
    -e "s|^POSTGRES_PASSWORD=.*|POSTGRES_PASSWORD=$postgres_password|" \
    -e "s|^REDIS_PASSWORD=.*|REDIS_PASSWORD=$redis_password|" \
    -e "s|^SUB2API_ADMIN_PASSWORD=.*|SUB2API_ADMIN_PASSWORD=$admin_password|" \
    "$here/.env.example" > "$dir/.env"
  printf '\n# Written by docker-deploy.sh: the compose file a plain "docker compose" here uses.\nCOMPOSE_FILE=%s\n' \
    "$compose" >> "$dir/.env"
)

if [ "$variant" = local ]; then
  mkdir "$dir/data" "$dir/postgres_data" "$dir/redis_data"
  if [ "$(id -u)" -eq 0 ]; then
    chown "$IMAGE_UID:$IMAGE_UID" "$dir/data"
  else
    say "run: sudo chown $IMAGE_UID:$IMAGE_UID $dir/data   (the container writes there as uid $IMAGE_UID)"
  fi
fi

say "prepared $dir ($compose, image $image)"
say "secrets were generated into $dir/.env (admin password: SUB2API_ADMIN_PASSWORD there);"
say "back up SUB2API__SECURITY__ENCRYPTION_KEY with the database"
if [ "$variant" = standalone ]; then
  say "set DATABASE_URL (and REDIS_URL for several instances) in .env; empty means SQLite"
fi
say "start it: cd $dir && docker compose up -d"
