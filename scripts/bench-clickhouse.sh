#!/usr/bin/env bash
# The ClickHouse store (issue 7): starts a private clickhouse-server (Debian's package) on
# loopback ports and `signet serve` with storage = "clickhouse" on a fresh data directory, then
# ingests N sign-ins over HTTP and times every report, list pages, a Graph page and a CSV export
# (the same commands as scripts/bench.sh, whose figures are DuckDB's).
# With NODES=2, a second node (its own data directory and event log, `node = "node-2"`) shares
# the database, and the load generator's connections alternate between the two.
#   [NODES=1|2] [BENCH_PROFILE=release|dev] scripts/bench-clickhouse.sh [SIGNINS] [RUNS]     (defaults 1000000, 5)
set -euo pipefail
cd "$(dirname "$0")/.."
signins="${1:-1000000}"
runs="${2:-5}"
# The binary: BENCH_BIN, or built in BENCH_PROFILE (release by default; scripts/lib/bench-server.sh).
source scripts/lib/bench-server.sh
bench_binary
work="$(mktemp -d /tmp/signet-bench-ch.XXXXXX)"
data="$work/data"
port=18081
ch_http=18124
ch_tcp=19001
mkdir -p "$work/ch"
cat > "$work/ch/config.xml" <<XML
<yandex>
  <logger><level>warning</level><console>true</console></logger>
  <http_port>$ch_http</http_port><tcp_port>$ch_tcp</tcp_port><listen_host>127.0.0.1</listen_host>
  <path>$work/ch/data/</path><tmp_path>$work/ch/tmp/</tmp_path>
  <users_config>$work/ch/users.xml</users_config>
  <default_profile>default</default_profile><default_database>default</default_database>
  <mark_cache_size>1073741824</mark_cache_size>
</yandex>
XML
cat > "$work/ch/users.xml" <<XML
<yandex><profiles><default/></profiles>
  <users><default><password/><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default/></quotas></yandex>
XML
clickhouse-server --config-file="$work/ch/config.xml" > "$work/ch/server.log" 2>&1 &
clickhouse=$!
cat > "$work/signet.toml" <<TOML
storage = "clickhouse"
[clickhouse]
url = "http://127.0.0.1:$ch_http"
database = "signet_bench"
TOML
nodes="${NODES:-1}"
server=""
server2=""
trap 'kill $server $server2 $clickhouse 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$ch_http/?query=SELECT%201" > /dev/null && break; sleep 0.2; done
echo "clickhouse: $(curl -s "http://127.0.0.1:$ch_http/?query=SELECT%20version()")"
# Keys are shared by the nodes through ClickHouse (signet_documents): made once, with the
# node's config, they work on every node.
ingest_key="$("$bin" api-key create --config "$work/signet.toml" --data "$data" --name bench-ingest --type ingest 2>/dev/null)"
read_key="$("$bin" api-key create --config "$work/signet.toml" --data "$data" --name bench-read --type read --role GlobalReader 2>/dev/null)"
(cd "$work" && exec "$bin" serve --data "$data" --listen "127.0.0.1:$port" > "$work/server.log" 2>&1) &
server=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" > /dev/null && break; sleep 0.2; done
servers="http://127.0.0.1:$port"
keys="$ingest_key"
if [ "$nodes" = 2 ]; then
  mkdir -p "$work/node-2"
  sed 's/^database = .*/&\nnode = "node-2"/' "$work/signet.toml" > "$work/node-2/signet.toml"
  (cd "$work/node-2" && exec "$bin" serve --data "$work/node-2/data" --listen "127.0.0.1:$((port + 1))" > "$work/node-2/server.log" 2>&1) &
  server2=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$((port + 1))/healthz" > /dev/null && break; sleep 0.2; done
  servers="$servers,http://127.0.0.1:$((port + 1))"
fi
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r); nodes: $nodes"
SIGNET_API_KEY="$keys" SIGNET_READ_KEY="$read_key" "$bin" bench ingest --server "$servers" --signins "$signins" --batch 10000 --connections 4
sleep 2
SIGNET_API_KEY="$read_key" "$bin" bench queries --server "http://127.0.0.1:$port" --runs "$runs"
echo "clickhouse on disk: $(du -sh "$work/ch/data" | cut -f1); event log: $(du -sh "$data/log" | cut -f1)"
[ "$nodes" = 2 ] && echo "node-2 event log: $(du -sh "$work/node-2/data/log" | cut -f1)"
echo "rows per node: $(curl -s "http://127.0.0.1:$ch_http/" --data-binary "SELECT node, count() FROM signet_bench.signins GROUP BY node ORDER BY node FORMAT TSV" | tr '\n' ' ')"
