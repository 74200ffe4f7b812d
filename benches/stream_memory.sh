#!/usr/bin/env bash
# Server memory while a large result streams: ROWS rows (default 10,000,000) of
#   SELECT value, value * 2 AS doubled, 'row ' || value AS label FROM generate_series(1, ROWS)
# fetched from `amoeba serve` by each client, with the server's RSS before and its peak during
# the fetch (VmHWM, reset through /proc/<pid>/clear_refs before each). The rows are made as
# they are sent, so what the server holds is what is in flight: the peak must not grow with
# ROWS. A control query sorts the same rows in the server (`ORDER BY value DESC`), which must
# hold them all: it shows the RSS does see a result held in memory.
#
#   benches/stream_memory.sh [rows]
#
# Clients: psql (simple protocol; libpq buffers the result in the client, not the server),
# psql with FETCH_COUNT=10000 (a cursor), COPY … TO STDOUT, psycopg 3 cursor.stream() in text
# and in binary (extended protocol). A small generated warehouse (scale 0.01) is served: the
# rows do not come from it. AMOEBA_BIN: an already built binary (default: build the release
# one). The server runs with the fixed mmap threshold of benches/stream.sh, so that freed
# buffers leave the RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
rows="${1:-10000000}"

scripts/setup >/dev/null
venv=target/bench/venv
if ! "$venv/bin/python" -c 'import psycopg' 2>/dev/null; then
  mkdir -p target/bench
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'psycopg[binary]>=3.2,<4'
fi
. benches/common.sh
bench_setup 0.01 1

trap 'kill ${server:-} 2>/dev/null || true' EXIT
SERVE_ENV="GLIBC_TUNABLES=glibc.malloc.mmap_threshold=65536:glibc.malloc.trim_threshold=1048576" \
  bench_serve "$src" target/bench/stream-memory-serve.log

query="SELECT value, value * 2 AS doubled, 'row ' || value AS label FROM generate_series(1, $rows)"
control="$query ORDER BY value DESC"
conn="host=127.0.0.1 port=$port user=amoeba dbname=amoeba"
kib() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$server/status"; }

fetch() {
  case "$1" in
    psql) psql "$conn" -XAt -c "$2" | wc -l ;;
    psql-fetch) psql "$conn" -XAt -v FETCH_COUNT=10000 -c "$2" | wc -l ;;
    copy) psql "$conn" -XAt -c "COPY ($2) TO STDOUT" | wc -l ;;
    psycopg | psycopg-binary)
      "$venv/bin/python" - "$conn" "$2" "$1" <<'EOF'
import sys, psycopg
conn, sql, method = sys.argv[1:]
with psycopg.connect(conn) as c:
    print(sum(1 for _ in c.cursor().stream(sql, binary=method.endswith("binary"))))
EOF
      ;;
  esac
}

echo "| client | rows | seconds | server RSS before | peak during the fetch | growth |"
echo "|---|--:|--:|--:|--:|--:|"
for method in psql psql-fetch copy psycopg psycopg-binary control; do
  sql="$query"; client="$method"
  if [ "$method" = control ]; then sql="$control"; client=copy; fi
  echo 5 > "/proc/$server/clear_refs"
  before=$(kib VmRSS)
  start=$(date +%s.%N)
  got=$(fetch "$client" "$sql")
  end=$(date +%s.%N)
  peak=$(kib VmHWM)
  [ "$got" = "$rows" ] || { echo "$method: $got rows, expected $rows"; exit 1; }
  printf '| %s | %s | %.1f | %d MiB | %d MiB | %+d MiB |\n' \
    "$([ "$method" = control ] && echo "control: sorted in the server (COPY)" || echo "$method")" \
    "$got" "$(echo "$end - $start" | bc)" $((before / 1024)) $((peak / 1024)) $(((peak - before) / 1024))
done
