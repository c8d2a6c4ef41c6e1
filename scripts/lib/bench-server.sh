# Sourced by the bench scripts (from the repository root): the binary, and a fresh server.
#
# bench_binary: sets `bin` to $BENCH_BIN (a binary built before, e.g. a copy, so that builds
# meanwhile do not replace it), or builds it: BENCH_PROFILE=release (the default) is the build a
# deployment runs (`cargo build --release`; its first build compiles DuckDB's C++ once more, about
# 25 minutes here), BENCH_PROFILE=dev the tests' profile with Signet's own crates at opt-level 3
# (no second DuckDB build; debug assertions and overflow checks on, 256 codegen units).
bench_binary() {
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/signet-target}"
  if [ -n "${BENCH_BIN:-}" ]; then
    bin="$BENCH_BIN"
  elif [ "${BENCH_PROFILE:-release}" = dev ]; then
    CARGO_PROFILE_DEV_OPT_LEVEL=3 cargo build --locked --bin signet
    bin="$CARGO_TARGET_DIR/debug/signet"
  else
    cargo build --locked --release --bin signet
    bin="$CARGO_TARGET_DIR/release/signet"
  fi
}

# start_bench_server NAME PORT: a server on a fresh data directory (/tmp/NAME.XXXXXX) on
# 127.0.0.1:PORT, stopped and removed when the script exits. Sets `data`, `port`, `server`, and
# `ingest_key` and `read_key` (made before the server holds the directory).
start_bench_server() {
  data="$(mktemp -d "/tmp/$1.XXXXXX")"
  port="$2"
  ingest_key="$("$bin" api-key create --data "$data" --name bench-ingest --type ingest 2>/dev/null)"
  read_key="$("$bin" api-key create --data "$data" --name bench-read --type read --role GlobalReader 2>/dev/null)"
  "$bin" serve --data "$data" --listen "127.0.0.1:$port" > "$data.server.log" 2>&1 &
  server=$!
  trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$data" "$data.server.log"' EXIT
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" > /dev/null && break; sleep 0.2; done
}

# host_probe: one line timing fixed single-threaded work (scripts/lib/host-probe.py). This VM's
# host gives 20-30 % more CPU per sign-in in some hours than in others (docs/benchmarks.md runs
# 40-46); the probe, printed before and after a run, tells such an hour from a change in Signet.
host_probe() {
  if command -v python3 > /dev/null; then python3 scripts/lib/host-probe.py; fi
}
