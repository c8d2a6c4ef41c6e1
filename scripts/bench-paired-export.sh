#!/usr/bin/env bash
# Paired export measurement: two builds of signet on the same boot, A B A B, each serving
# `--demo SIGNINS` on a fresh data directory and timing RUNS full CSV exports with curl.
# Use it to tell a code change from this machine's day-to-day spread (docs/benchmarks.md, run 10).
#   scripts/bench-paired-export.sh BIN_A BIN_B SIGNINS RUNS
# A build without API keys (before access control) is called without a credential.
set -euo pipefail
run_one() { # bin port label
  local bin=$1 port=$2 label=$3 data key=""
  data=$(mktemp -d /tmp/paired.XXXXXX)
  if "$bin" api-key --help >/dev/null 2>&1; then
    key=$("$bin" api-key create --data "$data" --name bench-read --type read --role GlobalReader 2>/dev/null)
  fi
  SIGNET_LOG=warn "$bin" serve --demo "$SIGNINS" --data "$data" --listen 127.0.0.1:$port >"$data.log" 2>&1 &
  local pid=$!
  for _ in $(seq 1 600); do curl -sf http://127.0.0.1:$port/healthz >/dev/null && break; sleep 0.5; done
  sleep 5
  local auth=()
  [ -n "$key" ] && auth=(-H "Authorization: Bearer $key")
  for i in $(seq 1 "$RUNS"); do
    out=$(curl -s "${auth[@]}" -o /tmp/paired.csv -w '%{time_total} %{size_download}' "http://127.0.0.1:$port/api/v1/signins/export?format=csv&range=1y")
    rows=$(($(wc -l < /tmp/paired.csv) - 1))
    echo "$label run $i: $out bytes, $rows rows"
  done
  kill -INT $pid; wait $pid 2>/dev/null || true
  rm -rf "$data" "$data.log"
}
A=$1; B=$2; SIGNINS=$3; RUNS=$4
run_one "$A" 18181 A
run_one "$B" 18182 B
run_one "$A" 18183 A
run_one "$B" 18184 B
