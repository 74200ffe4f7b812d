#!/usr/bin/env bash
# Dashboard load over pgwire: `amoeba serve` (release) on a generated warehouse, pgbench
# (PostgreSQL's client) with CLIENTS connections (2 threads) for SECONDS, each transaction one
# dashboard query picked at random by weight (one pgbench script file per query, `-f file@weight`),
# on a random month of the last 12 with sales (`\set`, so the month is a bind parameter in the
# extended protocol and a literal in the simple one). One run in the extended protocol (what
# drivers and BI tools use), one in the simple one (psql). Prints, per run and per query:
# transactions, errors, tps, and latency p50 / p90 / p99 / max (from pgbench's per-transaction
# logs), the server's peak RSS during each run, then a markdown table of everything.
#
#   benches/load.sh [scale] [seed] [clients] [seconds]      defaults: 1 42 64 60
#
# Errors: pgbench's failed transactions plus aborted clients (a query error aborts the client
# in pgbench 15); the script exits 1 when there is any. PROTOCOLS="extended simple" (default)
# may also name `prepared`. The warehouse is generated once under
# target/bench/warehouse-<scale>-<seed>; AMOEBA_BIN: an already built binary (default: build the
# release one).
set -euo pipefail
cd "$(dirname "$0")/.."
scale="${1:-1}"
seed="${2:-42}"
clients="${3:-64}"
seconds="${4:-60}"
protocols="${PROTOCOLS:-extended simple}"
threads=2
[ "$clients" -lt "$threads" ] && threads="$clients"

scripts/setup >/dev/null
# pgbench: Debian's /usr/bin/pgbench is a wrapper (postgresql-client-common); the program is in
# postgresql-15 (the server package).
if ! pgbench --version >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" != "0" ] && command -v sudo >/dev/null && sudo="sudo"
  echo "load: apt-get install postgresql-15 (pgbench)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql-15 >/dev/null
fi
. benches/common.sh
bench_setup "$scale" "$seed"
wh="$src"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=target/bench/load-serve.log
max_conn=100
[ "$clients" -gt 90 ] && max_conn=$((clients + 10))
"$bin" serve --warehouse "$wh" --listen "127.0.0.1:$port" --poll-seconds 0 --auth trust \
  --max-connections "$max_conn" > "$log" 2>&1 &
server=$!
dir=$(mktemp -d)
trap 'kill $server 2>/dev/null || true; rm -rf "$dir"' EXIT
psql_() { psql -h 127.0.0.1 -p "$port" -U amoeba -d amoeba -v ON_ERROR_STOP=1 -Atc "$1"; }
for _ in $(seq 1 900); do
  psql_ 'select 1' >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { cat "$log"; exit 1; }
  sleep 1
done

# The months: the last 12 (at most) with sales, taken as contiguous from the first of them.
months=$(psql_ "select distinct month from pnl_ledger where account = 'gross_sales' order by month" | tail -12)
nmonths=$(echo "$months" | wc -l)
first=$(echo "$months" | head -1)
last=$(echo "$months" | tail -1)
y0=${first%-*}; m0=$((10#${first#*-}))
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); serving $wh; months $first..$last ($nmonths)"
echo "pgbench: -c $clients -j $threads -T $seconds, protocols: $protocols"

# One pgbench script per dashboard query; the month is :y-:mm (`\set` has no strings, the server
# folds the concatenation into the month literal the cube router matches).
month_sql="CAST(:y AS TEXT) || '-' || lpad(CAST(:mm AS TEXT), 2, '0')"
month_set="\\set k random(0, $((nmonths - 1)))
\\set y $y0 + ($((m0 - 1)) + :k) / 12
\\set mm ($((m0 - 1)) + :k) % 12 + 1"
names=(unit_pnl daily_platform sku_top20 year_by_month cube_direct)
declare -A weight=([unit_pnl]=30 [daily_platform]=25 [sku_top20]=20 [year_by_month]=15 [cube_direct]=10)
declare -A queries=(
  [unit_pnl]="SELECT unit_id, SUM(net_sales), SUM(gross_profit), SUM(cm3), SUM(net_profit) FROM pnl WHERE month = @M@ GROUP BY unit_id ORDER BY unit_id"
  [daily_platform]="SELECT date, platform, SUM(net_sales), SUM(net_profit) FROM pnl WHERE month = @M@ GROUP BY date, platform ORDER BY date, platform"
  [sku_top20]="SELECT sku, SUM(net_sales) AS s, SUM(net_profit) FROM pnl WHERE month = @M@ GROUP BY sku ORDER BY s DESC LIMIT 20"
  [year_by_month]="SELECT month, SUM(net_sales), SUM(net_profit) FROM pnl GROUP BY month ORDER BY month"
  [cube_direct]="SELECT unit_id, net_sales, net_profit, net_margin FROM cubes.unit_monthly WHERE _set = 'month,quarter,year,unit_id,parent_unit_id' AND month = @M@ ORDER BY unit_id"
)
files=()
for name in "${names[@]}"; do
  sql="${queries[$name]}"
  if [[ "$sql" == *"@M@"* ]]; then printf '%s\n%s;\n' "$month_set" "${sql//@M@/$month_sql}"; else printf '%s;\n' "$sql"; fi > "$dir/$name.sql"
  files+=(-f "$dir/$name.sql@${weight[$name]}")
  # What answers it (on the last month): a cube, or the ledger.
  plan=$(psql_ "EXPLAIN ${sql//@M@/\'$last\'}" | grep -o 'TableScan: [a-z_.]*' | head -1 | sed 's/TableScan: //')
  echo "  $name (weight ${weight[$name]}): ${plan:-the cube itself}"
done

# The server's peak RSS per run: VmHWM reset before it (/proc/<pid>/clear_refs), where allowed.
rss_mib() { awk -v k="$1:" '$1 == k {printf "%.0f", $2 / 1024}' /proc/$server/status; }
echo "server RSS after start-up: $(rss_mib VmRSS) MiB (peak so far $(rss_mib VmHWM) MiB)"
table="$dir/table.md"
failed_total=0
for protocol in $protocols; do
  rm -f "$dir"/log.*
  echo 5 > /proc/$server/clear_refs 2>/dev/null || true
  out="target/bench/load-$protocol.out"
  status=0
  (cd "$dir" && pgbench -h 127.0.0.1 -p "$port" -U amoeba -n -c "$clients" -j "$threads" -T "$seconds" \
      -M "$protocol" --failures-detailed -l --log-prefix=log "${files[@]}" amoeba) > "$out" 2>&1 || status=$?
  tps=$(grep -o 'tps = [0-9.]*' "$out" | head -1 | cut -d' ' -f3)
  txs=$(grep -o '^number of transactions actually processed: [0-9]*' "$out" | grep -o '[0-9]*$' || echo 0)
  failed=$(grep -o '^number of failed transactions: [0-9]*' "$out" | grep -o '[0-9]*$' || echo 0)
  aborted=$(grep -cE 'client [0-9]+ .*aborted' "$out" || true)
  errors=$((failed + aborted))
  echo
  echo "== $protocol: $txs transactions, $errors errors (failed $failed, aborted clients $aborted, exit $status), tps ${tps:-?}; server peak RSS $(rss_mib VmHWM) MiB"
  if [ "$errors" -gt 0 ] || [ "$status" -ne 0 ]; then
    grep -iE 'error|abort' "$out" | sort | uniq -c | sort -rn | head -10
    failed_total=$((failed_total + errors + (status != 0)))
  fi
  printf '%-15s %8s %7s %8s %8s %8s %8s %9s\n' query txs errors tps p50_ms p90_ms p99_ms max_ms
  # pgbench's log: client, transaction, latency (µs) or "failed", script number, epoch s, µs.
  for i in "${!names[@]}"; do
    name="${names[$i]}"
    n_failed=$(cat "$dir"/log.* | awk -v s="$i" '$4 == s && $3 !~ /^[0-9]+$/' | wc -l)
    cat "$dir"/log.* | awk -v s="$i" '$4 == s && $3 ~ /^[0-9]+$/ {print $3}' | sort -n | \
      awk -v q="$name" -v f="$n_failed" -v t="$seconds" -v p="$protocol" -v md="$table" '
        function at(x) { i = int(NR * x); if (i < NR * x) i++; if (i < 1) i = 1; return a[i] / 1000 }
        {a[NR] = $1}
        END {
          if (NR == 0) { printf "%-15s %8d %7d\n", q, 0, f; exit }
          printf "%-15s %8d %7d %8.1f %8.2f %8.2f %8.2f %9.2f\n", q, NR, f, NR / t, at(0.5), at(0.9), at(0.99), a[NR] / 1000
          printf "| %s | %s | %d | %d | %.1f | %.2f | %.2f | %.2f | %.2f |\n", p, q, NR, f, NR / t, at(0.5), at(0.9), at(0.99), a[NR] / 1000 >> md
        }'
  done
  cat "$dir"/log.* | awk '$3 ~ /^[0-9]+$/ {print $3}' | sort -n | \
    awk -v n="$txs" -v e="$errors" -v tps="${tps:-0}" -v p="$protocol" -v md="$table" '
      function at(x) { i = int(NR * x); if (i < NR * x) i++; if (i < 1) i = 1; return a[i] / 1000 }
      {a[NR] = $1}
      END {
        if (NR == 0) exit
        printf "%-15s %8d %7d %8.1f %8.2f %8.2f %8.2f %9.2f\n", "all", n, e, tps, at(0.5), at(0.9), at(0.99), a[NR] / 1000
        printf "| %s | **all** | %d | %d | %.1f | %.2f | %.2f | %.2f | %.2f |\n", p, n, e, tps, at(0.5), at(0.9), at(0.99), a[NR] / 1000 >> md
      }'
done

echo
echo "Scale $scale, seed $seed; pgbench -c $clients -j $threads -T $seconds; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) at the end"
echo
echo "| protocol | query | transactions | errors | tps | p50 ms | p90 ms | p99 ms | max ms |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
cat "$table"
if ! kill -0 $server 2>/dev/null; then echo "the server died:"; tail -20 "$log"; exit 1; fi
[ "$failed_total" -eq 0 ] || { echo "errors: see target/bench/load-<protocol>.out"; exit 1; }
