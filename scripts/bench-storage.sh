#!/usr/bin/env bash
# Storage cost per sign-in, hot and archived (issue 6): N demo sign-ins over a year into a fresh
# data directory, then everything before today moved to the archive with `signet archive`.
#   scripts/bench-storage.sh [SIGNINS]        (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/signet-target}"
signins="${1:-1000000}"
cargo build --locked --bin signet
bin="$CARGO_TARGET_DIR/debug/signet"
data="$(mktemp -d /tmp/signet-storage.XXXXXX)"
trap 'rm -rf "$data"' EXIT
bytes() { du -sb "$@" 2>/dev/null | awk '{s += $1} END {print s + 0}'; }
per() { echo "scale=1; $1 / $signins" | bc; }
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r)"
started=$(date +%s.%N)
"$bin" demo --data "$data" --signins "$signins" --days 365 --seed 7 > /dev/null
echo "loaded $signins sign-ins over 365 days in $(echo "$(date +%s.%N) - $started" | bc) s"
log=$(bytes "$data/log"); duck=$(bytes "$data"/signet.duckdb*); trust=$(bytes "$data/trust")
echo "hot: log $log B ($(per "$log") B/sign-in), duckdb $duck B ($(per "$duck") B/sign-in), trust $trust B ($(per "$trust") B/sign-in)"
today=$(date -u +%Y-%m-%dT00:00:00Z)
started=$(date +%s.%N)
"$bin" archive --data "$data" --before "$today" --kind signins > "$data.report.json"
moved=$(python3 -c "import json,sys; r=json.load(open('$data.report.json')); print(sum(p['removed'] for p in r['partitions']), len(r['partitions']))")
rm -f "$data.report.json"
echo "archive --before $today: moved (events, partitions) = $moved in $(echo "$(date +%s.%N) - $started" | bc) s"
archive=$(bytes "$data/archive"); parquet=$(find "$data/archive" -name '*.parquet' -printf '%s\n' | awk '{s += $1} END {print s + 0}')
echo "archive: $archive B in total ($(per "$archive") B/sign-in), Parquet alone $parquet B ($(per "$parquet") B/sign-in)"
duck_after=$(bytes "$data"/signet.duckdb*)
echo "after expiry: duckdb $duck_after B, log $(bytes "$data/log") B (the event log is not cut by retention yet)"
started=$(date +%s.%N)
"$bin" report summary --data "$data" --days 400 > /dev/null
echo "summary over 400 days (hot + every archived part): $(echo "$(date +%s.%N) - $started" | bc) s wall, CLI start included"
started=$(date +%s.%N)
"$bin" verify --data "$data" | head -3
echo "verify (log, trees, heads, archive): $(echo "$(date +%s.%N) - $started" | bc) s wall"
