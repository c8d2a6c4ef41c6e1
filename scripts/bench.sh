#!/usr/bin/env bash
# Reproduces docs/benchmarks.md: starts a server on a fresh data directory, ingests N sign-ins
# over HTTP in NDJSON batches, then times every report, list pages, a Graph page and a CSV export.
#   [RUNS=21] [BENCH_CRASH=1] scripts/bench.sh [SIGNINS]        (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/signet-target}"
signins="${1:-1000000}"
# Same dev profile as the tests (dependencies at opt-level 3); Signet's own crates at opt-level 3.
export CARGO_PROFILE_DEV_OPT_LEVEL=3
# BENCH_BIN: a binary built before (e.g. a copy, so that builds meanwhile do not replace it).
if [ -n "${BENCH_BIN:-}" ]; then
  bin="$BENCH_BIN"
else
  cargo build --locked --bin signet
  bin="$CARGO_TARGET_DIR/debug/signet"
fi
data="$(mktemp -d /tmp/signet-bench.XXXXXX)"
port=18080
# Keys made before the server holds the directory: an ingest key to load, a read key to query.
ingest_key="$("$bin" api-key create --data "$data" --name bench-ingest --type ingest 2>/dev/null)"
read_key="$("$bin" api-key create --data "$data" --name bench-read --type read --role GlobalReader 2>/dev/null)"
"$bin" serve --data "$data" --listen "127.0.0.1:$port" > "$data.server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$data" "$data.server.log"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" > /dev/null && break; sleep 0.2; done
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r)"
SIGNET_API_KEY="$ingest_key" SIGNET_READ_KEY="$read_key" "$bin" bench ingest --server "http://127.0.0.1:$port" --signins "$signins" --batch 10000 --connections 4
sleep 2
SIGNET_API_KEY="$read_key" "$bin" bench queries --server "http://127.0.0.1:$port" --runs "${RUNS:-21}"
du -sh "$data"/log "$data"/signet.duckdb* 2>/dev/null || true
# Tamper evidence on this data: how long `signet verify` takes over everything ingested.
kill -INT $server; wait $server 2>/dev/null || true
started=$(date +%s.%N)
"$bin" verify --data "$data"
echo "verify: $(echo "$(date +%s.%N) - $started" | bc) s wall"
# The crash test at benchmark length (1,000 kill -9 cycles; CI runs 100).
if [ "${BENCH_CRASH:-1}" = 1 ]; then
  # Workspace-wide, in the tests' own profile (`cargo test -p` would compile DuckDB again).
  CARGO_PROFILE_DEV_OPT_LEVEL=1 CRASH_TEST_CYCLES=1000 ./scripts/test -- crash::kill --nocapture 2>&1 \
    | grep -E "cycles|test crash"
fi
