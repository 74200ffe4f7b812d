#!/usr/bin/env bash
# Dashboard latency over pgwire: `amoeba serve` (release) on a generated warehouse, pgbench
# (PostgreSQL's client) sending each dashboard query N times on one connection; prints the
# median, p90, p99 and max latency per query, answered from a cube (routing on) and from the
# ledger (`SET amoeba.cube_routing = false`), in the extended protocol (what drivers and BI
# tools use) and the simple one (psql).
#
#   benches/cube_latency.sh [scale] [seed] [count] [count_off]    defaults: 1 42 500 20
#
# count: runs per query answered from a cube; count_off: per query on the ledger (slower).
#
# The warehouse is generated once under target/bench/warehouse-<scale>-<seed>.
set -euo pipefail
cd "$(dirname "$0")/.."
scale="${1:-1}"
seed="${2:-42}"
count="${3:-500}"
count_off="${4:-20}"

scripts/setup >/dev/null
command -v pgbench >/dev/null || { echo "pgbench not found (postgresql-client)"; exit 1; }
# AMOEBA_BIN: an already built binary (default: build the release one).
. benches/common.sh
bench_setup "$scale" "$seed"
wh="$src"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=target/bench/cube-latency-serve.log
"$bin" serve --warehouse "$wh" --listen "127.0.0.1:$port" --poll-seconds 0 --auth trust > "$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 900); do
  psql -h 127.0.0.1 -p "$port" -U amoeba -d amoeba -Atc 'select 1' >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { cat "$log"; exit 1; }
  sleep 1
done
month=$(psql -h 127.0.0.1 -p "$port" -U amoeba -d amoeba -Atc "select max(month) from pnl_ledger where account = 'gross_sales'")
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); serving $wh; month $month"

declare -A queries=(
  [unit_pnl]="SELECT unit_id, SUM(net_sales), SUM(gross_profit), SUM(cm3), SUM(net_profit) FROM pnl WHERE month = '$month' GROUP BY unit_id ORDER BY unit_id"
  [daily_platform]="SELECT date, platform, SUM(net_sales), SUM(net_profit) FROM pnl WHERE month = '$month' GROUP BY date, platform ORDER BY date, platform"
  [sku_top20]="SELECT sku, SUM(net_sales) AS s, SUM(net_profit) FROM pnl WHERE month = '$month' GROUP BY sku ORDER BY s DESC LIMIT 20"
  [year_by_month]="SELECT month, SUM(net_sales), SUM(net_profit) FROM pnl GROUP BY month ORDER BY month"
  [cube_direct]="SELECT unit_id, net_sales, net_profit, net_margin FROM cubes.unit_monthly WHERE _set = 'month,quarter,year,unit_id,parent_unit_id' AND month = '$month' ORDER BY unit_id"
)
dir=$(mktemp -d)
printf '%-15s %-9s %-8s %9s %9s %9s %9s %6s\n' query protocol routing median_ms p90_ms p99_ms max_ms plan
for name in unit_pnl daily_platform sku_top20 year_by_month cube_direct; do
  sql="${queries[$name]}"
  plan=$(psql -h 127.0.0.1 -p "$port" -U amoeba -d amoeba -Atc "EXPLAIN $sql" | grep -o 'TableScan: [a-z_.]*' | head -1 | sed 's/TableScan: //')
  for routing in on off; do
    [ "$name" = cube_direct ] && [ "$routing" = off ] && continue
    for protocol in extended simple; do
      if [ "$routing" = on ]; then
        printf '%s;\n' "$sql" > "$dir/q.sql"
      else
        printf 'SET amoeba.cube_routing = false;\n%s;\n' "$sql" > "$dir/q.sql"
      fi
      (cd "$dir" && rm -f pgbench_log.* && \
        pgbench -h 127.0.0.1 -p "$port" -U amoeba -n -c 1 -j 1 -t "$([ "$routing" = on ] && echo "$count" || echo "$count_off")" -M "$protocol" -f q.sql -l amoeba >/dev/null 2>"$dir/err" ) \
        || { cat "$dir/err"; exit 1; }
      # pgbench's log: client, transaction, latency (µs), …
      cat "$dir"/pgbench_log.* | awk '{print $3}' | sort -n | awk -v q="$name" -v p="$protocol" -v r="$routing" -v plan="$([ $routing = on ] && echo "$plan" || echo pnl_ledger)" \
        '{a[NR]=$1} END {printf "%-15s %-9s %-8s %9.2f %9.2f %9.2f %9.2f %s\n", q, p, r, a[int(NR*0.5)]/1000, a[int(NR*0.9)]/1000, a[int(NR*0.99)]/1000, a[NR]/1000, plan}'
    done
  done
done
rm -rf "$dir"
