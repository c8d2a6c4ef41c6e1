#!/usr/bin/env bash
# How long a read takes while ingest saturates the server: a Graph page every 0.3 s during a
# `signet bench ingest` send into a fresh server.
#
#   scripts/bench-reads-during-ingest.sh [SIGNINS]     (default 1000000; batches of 10,000, 4 connections)
#
# Prints the ingest's lines, then the Graph page's latency during the send (count, median, max)
# and once the send has ended. Runs the binary in BENCH_BIN when set, otherwise builds it as
# scripts/bench.sh does.
set -euo pipefail
cd "$(dirname "$0")/.."
signins="${1:-1000000}"
source scripts/lib/bench-server.sh
bench_binary
start_bench_server signet-reads "${BENCH_PORT:-18094}"
out="$data.ingest"
SIGNET_API_KEY="$ingest_key" SIGNET_READ_KEY="$read_key" "$bin" bench ingest --server "http://127.0.0.1:$port" \
  --signins "$signins" --batch 10000 --connections 4 > "$out" 2>&1 &
client=$!
until grep -q '^sending' "$out"; do
  kill -0 $client 2> /dev/null || { cat "$out"; rm -f "$out"; exit 1; }
  sleep 0.2
done
sleep 1
page() {
  curl -sf -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $read_key" \
    "http://127.0.0.1:$port/v1.0/auditLogs/signIns?\$top=50"
}
during=()
while kill -0 $client 2> /dev/null && ! grep -q 'events/s' "$out"; do
  during+=("$(page)")
  sleep 0.3
done
wait $client
grep '^|' "$out"
printf '%s\n' "${during[@]}" | sort -n | awk '{t[NR] = $1} END {
  if (NR == 0) { print "no read during the send"; exit }
  m = (NR % 2) ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2
  printf "| Graph page ($top=50) during the send | %d requests | median %.0f ms | max %.0f ms |\n", NR, m * 1000, t[NR] * 1000 }'
echo "| Graph page after the send | $(page | awk '{printf "%.0f ms", $1 * 1000}') |"
rm -f "$out"
