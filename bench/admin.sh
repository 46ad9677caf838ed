#!/usr/bin/env bash
# Times the server-side render of the Accounts, Usage and Dashboard pages with 1,000 accounts
# and 100,000 usage rows, on SQLite and, when a PostgreSQL URL is given (or TEST_DATABASE_URL
# is set), on PostgreSQL too. Extra arguments go to sub2api-admin-bench.
#   bench/admin.sh [postgres://postgres@127.0.0.1:5432/postgres] [--samples 30]
set -euo pipefail
cd "$(dirname "$0")/.."
pg=${TEST_DATABASE_URL:-}
if [[ ${1:-} == postgres* ]]; then pg=$1; shift; fi
cargo build --release -p server --bin sub2api
cargo build --release -p bench --bin sub2api-admin-bench
target/release/sub2api-admin-bench --gateway-bin target/release/sub2api "$@"
if [ -n "$pg" ]; then
  echo
  target/release/sub2api-admin-bench --gateway-bin target/release/sub2api --database-url "$pg" "$@"
fi
