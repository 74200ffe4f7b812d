#!/usr/bin/env bash
# The ledger build benchmark: `amoeba ledger` (catalog open, ledger build, checks, Parquet
# publish) on a generated warehouse, in release, RUNS times; prints every run's wall time and
# peak RSS, then min / median / max.
#
#   benches/ledger.sh [scale] [seed] [runs]      defaults: 1 42 3
#
# The warehouse is generated once under target/bench/warehouse-<scale>-<seed>.
set -euo pipefail
cd "$(dirname "$0")/.."
scale="${1:-1}"
seed="${2:-42}"
runs="${3:-3}"

. benches/common.sh
bench_setup "$scale" "$seed"
wh="$src"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
times=()
for i in $(seq 1 "$runs"); do
  out=$( { /usr/bin/time -f "TIME %e %M" "$bin" ledger --warehouse "$wh" > "target/bench/ledger-run-$i.log"; } 2>&1 | grep '^TIME' )
  secs=$(echo "$out" | cut -d' ' -f2)
  rss_mib=$(( $(echo "$out" | cut -d' ' -f3) / 1024 ))
  echo "run $i: ${secs}s, peak RSS ${rss_mib} MiB; $(grep -E '^ledger:' "target/bench/ledger-run-$i.log"); $(tail -1 "target/bench/ledger-run-$i.log")"
  times+=("$secs")
done
printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "wall time: min %.2fs, median %.2fs, max %.2fs over %d runs\n", a[1], a[int((NR+1)/2)], a[NR], NR}'
