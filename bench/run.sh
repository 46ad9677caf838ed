#!/usr/bin/env bash
# Builds the release gateway and fake upstream, then runs the benchmark (see bench/README.md).
# Extra arguments go to sub2api-bench, e.g. `bench/run.sh --rate 300 --streams 500`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p server --bin sub2api
cargo build --release -p proxy --features testing --bin fake-upstream
cargo build --release -p bench
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
exec target/release/sub2api-bench --gateway-bin target/release/sub2api --fake-bin target/release/fake-upstream "$@"
