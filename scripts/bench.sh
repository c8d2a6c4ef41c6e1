#!/usr/bin/env bash
# Reproduces docs/benchmarks.md: starts a server on a fresh data directory, ingests N sign-ins
# over HTTP in NDJSON batches, then times every report, list pages, a Graph page and a CSV export.
#   [RUNS=21] [BENCH_CRASH=1] [BENCH_PROFILE=release|dev] scripts/bench.sh [SIGNINS]  (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
signins="${1:-1000000}"
source scripts/lib/bench-server.sh
bench_binary
start_bench_server signet-bench 18080
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r)"
host_probe
SIGNET_API_KEY="$ingest_key" SIGNET_READ_KEY="$read_key" "$bin" bench ingest --server "http://127.0.0.1:$port" --signins "$signins" --batch 10000 --connections 4
sleep 2
SIGNET_API_KEY="$read_key" "$bin" bench queries --server "http://127.0.0.1:$port" --runs "${RUNS:-21}"
host_probe
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
