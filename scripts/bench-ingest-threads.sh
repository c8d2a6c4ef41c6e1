#!/usr/bin/env bash
# Ingest into a fresh server and show where its CPU went, thread by thread.
#
#   scripts/bench-ingest-threads.sh [SIGNINS] [BATCH] [CONNECTIONS]     (defaults 1000000 10000 4)
#
# Prints `signet bench ingest`'s lines (events/s; the server's CPU per event and its 503 count
# while sending; ack -> visible), then the server's CPU seconds per thread group over the whole
# run (HTTP = tokio workers, parse included; projector; writer; duckdb = DuckDB's own workers;
# exited = threads gone by the end, tokio's blocking ones), read from /proc/PID/task/*/stat,
# and its peak resident memory, between two lines of the host probe (how fast the host is this
# hour: scripts/lib/host-probe.py). Runs the binary in BENCH_BIN when set, otherwise builds it as
# scripts/bench.sh does. Linux only (/proc).
set -euo pipefail
cd "$(dirname "$0")/.."
signins="${1:-1000000}"
batch="${2:-10000}"
connections="${3:-4}"
source scripts/lib/bench-server.sh
bench_binary
host_probe
start_bench_server signet-threads "${BENCH_PORT:-18090}"
SIGNET_API_KEY="$ingest_key" SIGNET_READ_KEY="$read_key" "$bin" bench ingest --server "http://127.0.0.1:$port" \
  --signins "$signins" --batch "$batch" --connections "$connections" | grep '^|'
ticks=$(getconf CLK_TCK)
# DuckDB's workers keep the process's name (the main thread too, idle during ingest).
process=$(basename "$bin" | cut -c1-15)
# Field 2 of stat is the thread's name in parentheses; utime and stime are fields 14 and 15.
# The process's own line also counts threads that have exited (tokio's blocking threads, which
# parse request bodies, end after 10 s idle): shown as "exited".
total=$(sed -E 's/^.*\) //' "/proc/$server/stat" | awk '{print $12 + $13}')
for task in /proc/$server/task/*; do
  name=$(cat "$task/comm")
  cpu=$(sed -E 's/^.*\) //' "$task/stat" | awk '{print $12 + $13}')
  case "$name" in
    "$process") group=duckdb ;;
    tokio*|signet-http*) group=http ;;
    signet-projecto*) group=projector ;;
    signet-writer*) group=writer ;;
    *) group=other ;;
  esac
  echo "$group $cpu"
done | awk -v t="$ticks" -v total="$total" '{c[$1] += $2; sum += $2}
  END {c["exited"] = total - sum; for (g in c) printf "%s %.1f s  ", g, c[g] / t; print ""}' \
  | sed 's/^/server CPU per thread group (whole run): /'
echo "peak resident memory: $(awk '/VmHWM/ {printf "%.0f MiB", $2 / 1024}' /proc/$server/status)"
host_probe
