#!/usr/bin/env bash
# Result streaming: rows/s fetching a ROWS-row result from `amoeba serve` (release) against
# PostgreSQL 15 serving the same rows, with the same clients, RUNS times each (after one warm-up
# run); prints min / median / max rows/s per server and client, the ratio of the medians, and the
# Amoeba server's peak RSS during each fetch (VmHWM, reset before every run through
# /proc/<pid>/clear_refs; sampled VmRSS where that cannot be written), then a markdown table.
# The point: the server's memory must not grow with the row count (run with 1000000 and 4000000);
# a control query that sorts the same rows in the server shows that the RSS can see them. The
# server runs with GLIBC_TUNABLES=$MALLOC_TUNABLES (default: a fixed 64 KiB mmap threshold, see
# below; MALLOC_TUNABLES= for glibc's defaults).
#
#   benches/stream.sh [rows] [scale] [seed]      defaults: 1000000 1 42
#
# The rows: `SELECT * FROM pnl_ledger LIMIT ROWS` (scale 1: ~6M ledger rows) in an Amoeba session
# with `SET datafusion.execution.target_partitions = 1`, which makes the scan one partition reading
# the files and row groups in order, so the same rows every time without an ORDER BY (a sort would
# hold the rows in the server: not what is measured). They are exported from Amoeba (psql --csv)
# and copied into a table `t` of a PostgreSQL 15 server this script initdb's in a temporary
# directory (as `nobody` when run as root) and stops at exit. Fetched: that same query from Amoeba
# (the same session setting), `SELECT * FROM t` from PostgreSQL; the checksums of both are printed
# and must agree.
#
# RUNS: fetches per server and client (default 5). Clients (METHODS, default all):
#   psql           psql -At, the whole result buffered by libpq, then printed (to wc -l)
#   psql-fetch     psql -At with FETCH_COUNT=10000 (a cursor: DECLARE … FETCH FORWARD 10000)
#   copy           psql \copy (query) to /dev/null (COPY … TO STDOUT)
#   psycopg        psycopg 3 (Python) cursor.stream(): extended protocol, text results, 10,000-row
#                  chunks, every value converted to a Python object
#   psycopg-binary the same with binary results
#
# Needs PostgreSQL 15's server (apt: postgresql-15) and a venv with psycopg 3 under
# target/bench/venv (made here). The warehouse is generated once under
# target/bench/warehouse-<scale>-<seed>; AMOEBA_BIN: an already built binary (default: build
# the release one).
set -euo pipefail
cd "$(dirname "$0")/.."
rows="${1:-1000000}"
scale="${2:-1}"
seed="${3:-42}"
runs="${RUNS:-5}"
methods="${METHODS:-psql psql-fetch copy psycopg psycopg-binary}"

scripts/setup >/dev/null
pgbin=/usr/lib/postgresql/15/bin
sudo=""; [ "$(id -u)" != "0" ] && command -v sudo >/dev/null && sudo="sudo"
if [ ! -x "$pgbin/postgres" ]; then
  echo "stream: apt-get install postgresql-15"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql-15 >/dev/null
fi
venv=target/bench/venv
if ! "$venv/bin/python" -c 'import psycopg' 2>/dev/null; then
  echo "stream: python venv with psycopg 3 in $venv"
  mkdir -p target/bench
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'psycopg[binary]>=3.2,<4'
fi
. benches/common.sh
bench_setup "$scale" "$seed"
wh="$src"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
aport=$(free_port)
log=target/bench/stream-serve.log
# glibc malloc keeps what the start-up refresh freed (GiBs at scale 1) and reuses it before the RSS
# grows, which would hide a result held in the server: with a fixed mmap threshold, blocks from
# 64 KiB (Arrow buffers) are mapped and unmapped one by one, so the RSS follows what is live.
GLIBC_TUNABLES="${MALLOC_TUNABLES-glibc.malloc.mmap_threshold=65536:glibc.malloc.trim_threshold=1048576}" \
  "$bin" serve --warehouse "$wh" --listen "127.0.0.1:$aport" --poll-seconds 0 --auth trust > "$log" 2>&1 &
server=$!
tmp=$(mktemp -d)
pgdata="$tmp/pgdata"
# PostgreSQL refuses to run as root: run it as nobody then.
as_pg=()
if [ "$(id -u)" = "0" ]; then chown nobody "$tmp"; as_pg=(runuser -u nobody --); fi
cleanup() {
  [ -f "$pgdata/postmaster.pid" ] && "${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null 2>&1 || true
  kill $server 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

pport=$(free_port)
"${as_pg[@]}" "$pgbin/initdb" -D "$pgdata" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$tmp/initdb.log" 2>&1 \
  || { cat "$tmp/initdb.log"; exit 1; }
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdata" -l "$tmp/pg.log" -w \
  -o "-p $pport -k $tmp -c listen_addresses=127.0.0.1 -c fsync=off -c shared_buffers=1GB" start >/dev/null \
  || { cat "$tmp/pg.log"; exit 1; }

apsql() { psql -h 127.0.0.1 -p "$aport" -U amoeba -d amoeba -v ON_ERROR_STOP=1 "$@"; }
ppsql() { psql -h 127.0.0.1 -p "$pport" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
for _ in $(seq 1 900); do
  apsql -Atc 'select 1' >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { cat "$log"; exit 1; }
  sleep 1
done
total=$(apsql -Atc 'select count(*) from pnl_ledger')
[ "$total" -ge "$rows" ] || { echo "pnl_ledger has $total rows (< $rows): take a larger scale"; exit 1; }
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "amoeba: $wh ($total ledger rows) on :$aport; $("$pgbin/postgres" --version) on :$pport"

# The same rows into PostgreSQL.
cols="date, platform, shop_id, sku, campaign, unit_id, account, amount, qty, source, month"
start=$(date +%s.%N)
aset="SET datafusion.execution.target_partitions = 1"
aq="SELECT $cols FROM pnl_ledger LIMIT $rows"
pq="SELECT $cols FROM t"
apsql --csv -t -q -v FETCH_COUNT=100000 -c "$aset" -c "$aq" > "$tmp/t.csv"
ppsql -q -c "CREATE TABLE t (date date, platform text, shop_id text, sku text, campaign text, unit_id text,
  account text, amount numeric(38, 2), qty bigint, source text, month text)" \
  -c "\\copy t from '$tmp/t.csv' csv" -c "VACUUM (ANALYZE, FREEZE) t"
echo "loaded $(ppsql -Atc 'select count(*) from t') rows ($(du -h "$tmp/t.csv" | cut -f1) of CSV; table $(ppsql -Atc "select pg_size_pretty(pg_table_size('t'))")) in $(echo "$(date +%s.%N) - $start" | bc | xargs printf '%.1f')s"
rm -f "$tmp/t.csv"

sums="count(*), sum(amount), sum(qty), count(campaign), count(distinct sku), min(date), max(date)"
asum=$(apsql -Atq -c "$aset" -c "SELECT $sums FROM ($aq) s")
psum=$(ppsql -Atc "SELECT $sums FROM ($pq) s")
echo "checksum amoeba:     $asum"
echo "checksum postgresql: $psum"
[ "$asum" = "$psum" ] || { echo "the two servers do not hold the same rows"; exit 1; }

# fetch <server> <method>: one fetch; prints "<rows> <seconds>".
fetch() {
  local p q u d setup
  if [ "$1" = amoeba ]; then p=$aport q="$aq" u=amoeba d=amoeba setup="$aset"; else p=$pport q="$pq" u=postgres d=postgres setup="SET application_name = 'stream'"; fi
  local conn=(-h 127.0.0.1 -p "$p" -U "$u" -d "$d" -v ON_ERROR_STOP=1 -c "$setup")
  local s e n
  s=$(date +%s%N)
  case "$2" in
    psql) n=$(psql "${conn[@]}" -Atq -c "$q" | wc -l) || return 1 ;;
    psql-fetch) n=$(psql "${conn[@]}" -Atq -v FETCH_COUNT=10000 -c "$q" | wc -l) || return 1 ;;
    copy) n=$(psql "${conn[@]}" -c "\\copy ($q) to /dev/null" | awk '/^COPY/ {print $2}') || return 1 ;;
    psycopg|psycopg-binary)
      local mode=stream; [ "$2" = psycopg-binary ] && mode=stream-binary
      "$venv/bin/python" benches/stream_fetch.py "host=127.0.0.1 port=$p user=$u dbname=$d" "$mode" "$q" "$setup"
      return ;;
  esac
  e=$(date +%s%N)
  echo "$n $(awk -v s="$s" -v e="$e" 'BEGIN {printf "%.3f", (e - s) / 1e9}')"
}

rss_kb() { awk -v k="$1:" '$1 == k {print $2}' /proc/$server/status; }
can_reset=0
echo 5 > /proc/$server/clear_refs 2>/dev/null && can_reset=1
base_rss=$(( $(rss_kb VmRSS) / 1024 ))
echo "amoeba RSS before the fetches: ${base_rss} MiB; peak measured by $([ $can_reset = 1 ] && echo 'VmHWM reset per run' || echo 'VmRSS sampled every 50 ms')"
echo
table="$tmp/table.md"
declare -A median_of
printf '%-10s %-15s %5s %12s %12s %12s %15s\n' server client runs min_rows/s median_rows/s max_rows/s amoeba_peak_MiB
for method in $methods; do
  for srv in amoeba postgresql; do
    # warm-up (and: does this server take this client at all?)
    if ! out=$(fetch "$srv" "$method" 2>&1); then
      echo "$srv $method: fails: $(echo "$out" | grep -m1 -iE 'error|fatal' || echo "$out" | tail -1)"
      printf '| %s | %s | unsupported: %s | | | | |\n' "$srv" "$method" "$(echo "$out" | grep -m1 -iE 'error|fatal' | sed 's/|/\\|/g')" >> "$table"
      continue
    fi
    : > "$tmp/rates"; : > "$tmp/peaks"
    for _ in $(seq 1 "$runs"); do
      sampler=""
      if [ "$srv" = amoeba ]; then
        if [ $can_reset = 1 ]; then
          echo 5 > /proc/$server/clear_refs
        else
          ( peak=0; while kill -0 $server 2>/dev/null; do r=$(rss_kb VmRSS); [ "$r" -gt "$peak" ] && peak=$r && echo "$peak" > "$tmp/sampled"; sleep 0.05; done ) &
          sampler=$!
        fi
      fi
      read -r n secs < <(fetch "$srv" "$method")
      [ "$n" = "$rows" ] || { echo "$srv $method: fetched $n rows, not $rows"; exit 1; }
      awk -v n="$n" -v s="$secs" 'BEGIN {printf "%.0f\n", n / s}' >> "$tmp/rates"
      if [ "$srv" = amoeba ]; then
        if [ $can_reset = 1 ]; then
          echo $(( $(rss_kb VmHWM) / 1024 )) >> "$tmp/peaks"
        else
          kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
          echo $(( $(cat "$tmp/sampled") / 1024 )) >> "$tmp/peaks"
        fi
      fi
    done
    peak=$(sort -n "$tmp/peaks" | tail -1)
    read -r mn md mx < <(sort -n "$tmp/rates" | awk '{a[NR]=$1} END {print a[1], a[int((NR+1)/2)], a[NR]}')
    median_of[$srv.$method]=$md
    printf '%-10s %-15s %5d %12d %12d %12d %15s\n' "$srv" "$method" "$runs" "$mn" "$md" "$mx" "${peak:--}"
    printf '| %s | %s | %d | %d | %d | %s |' "$srv" "$method" "$mn" "$md" "$mx" "${peak:--}" >> "$table"
    if [ "$srv" = postgresql ] && [ -n "${median_of[amoeba.$method]:-}" ]; then
      awk -v a="${median_of[amoeba.$method]}" -v p="$md" 'BEGIN {printf " %.2f |\n", a / p}' >> "$table"
    else
      echo " |" >> "$table"
    fi
  done
  if [ -n "${median_of[amoeba.$method]:-}" ] && [ -n "${median_of[postgresql.$method]:-}" ]; then
    awk -v m="$method" -v a="${median_of[amoeba.$method]}" -v p="${median_of[postgresql.$method]}" \
      'BEGIN {printf "%-26s amoeba / postgresql (medians): %.2f\n", m, a / p}'
  fi
done

# Control: a query that must hold the rows in the server (a sort of ROWS rows), to show that the
# peak RSS sees a result's size.
control=""
if [ $can_reset = 1 ]; then
  echo 5 > /proc/$server/clear_refs
  s=$(date +%s%N)
  n=$(psql -h 127.0.0.1 -p "$aport" -U amoeba -d amoeba -v ON_ERROR_STOP=1 -q -c "$aset" -At \
        -c "SELECT $cols FROM ($aq) s ORDER BY amount, sku, date" | wc -l)
  e=$(date +%s%N)
  control="control (the same rows ORDER BY amount, sku, date: sorted in the server): $n rows in $(awk -v s="$s" -v e="$e" 'BEGIN {printf "%.1f", (e - s) / 1e9}')s, amoeba peak RSS $(( $(rss_kb VmHWM) / 1024 )) MiB"
  echo "$control"
fi

echo
echo "$rows rows (pnl_ledger, scale $scale, seed $seed), $runs runs after a warm-up; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) at the end; amoeba RSS before the fetches ${base_rss} MiB"
echo
echo "| server | client | min rows/s | median rows/s | max rows/s | amoeba peak RSS MiB | amoeba / postgresql (medians) |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
cat "$table"
[ -z "$control" ] || { echo; echo "$control"; }
kill -0 $server 2>/dev/null || { echo "the amoeba server died:"; tail -20 "$log"; exit 1; }
