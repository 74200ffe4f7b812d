#!/usr/bin/env bash
# The refresh benchmark: a full refresh (`amoeba refresh --full`: catalog, ledger, every month
# of every cube) against an incremental one after one day of platform exports lands
# (`amoeba refresh`: catalog, ledger, only the cube months whose ledger rows changed), in
# release, RUNS times each; prints every run's wall time, peak RSS and what was rebuilt, then
# min / median / max and the ratio of the medians.
#
#   benches/refresh.sh [scale] [seed] [runs] [day|month]      defaults: 1 42 3 day
#
# What lands is every export file under dt=<the last order day> (all platforms, all kinds):
# - day (the default): one day of exports. The warehouse is generated with that day's rows
#   delivered on their own (`amoeba gen --day-apart 2025-12-31`), as a platform exporting
#   daily delivers them: the day's orders, refunds, fees, ads and settlements.
# - month: the generator's own layout, one file per shop, kind and month under
#   dt=<the month's last day>, so what lands is the whole of December at once.
# The warehouse is generated once under target/bench/warehouse-<scale>-<seed>[-day-<day>] and
# copied to target/bench/refresh-<scale>-<seed>-<what>, where the files are taken out and put
# back.
set -euo pipefail
cd "$(dirname "$0")/.."
scale="${1:-1}"
seed="${2:-42}"
runs="${3:-3}"
what="${4:-day}"
# The last day with orders: the generator simulates 2025 (exports pulled on 2026-01-04).
last_order_day=2025-12-31

. benches/common.sh
case "$what" in
  day) bench_setup "$scale" "$seed" "$last_order_day" ;;
  month) bench_setup "$scale" "$seed" ;;
  *) echo "what lands: day or month, not '$what'"; exit 2 ;;
esac
bench_cgroup "$scale"
wh="target/bench/refresh-${scale}-${seed}-${what}"
held="target/bench/refresh-${scale}-${seed}-${what}-held"
rm -rf "$wh" "$held"
mkdir -p "$wh" "$held"
for d in "$src"/*; do
  case "$(basename "$d")" in ledger|cubes|truth) ;; *) cp -r "$d" "$wh/" ;; esac
done
day=$(find "$wh/exports" -type d -path '*/orders/*' -name 'dt=*' | sed 's|.*dt=||' | sort | tail -1)
days_files=$(cd "$wh" && find exports -type f -path "*/dt=${day}/*" | sort)
echo "what lands ($what): dt=${day}, $(echo "$days_files" | wc -l) files, $(cd "$wh" && echo "$days_files" | xargs du -cb | tail -1 | cut -f1) bytes"

take_out() { (cd "$wh" && echo "$days_files" | while read -r f; do mkdir -p "../$(basename "$held")/$(dirname "$f")"; mv "$f" "../$(basename "$held")/$f"; done); }
put_back() { (cd "$held" && echo "$days_files" | while read -r f; do mkdir -p "../$(basename "$wh")/$(dirname "$f")"; mv "$f" "../$(basename "$wh")/$f"; done); }

# run <label> <args…>: one timed `amoeba refresh`; prints a line, appends the seconds to $label.times
run() {
  local label="$1"; shift
  local log="target/bench/refresh-${label}.log"
  local out
  out=$( { /usr/bin/time -f "TIME %e %M" "${limited[@]}" "$bin" refresh --warehouse "$wh" "$@" > "$log"; } 2>&1 | grep '^TIME' )
  local secs rss
  secs=$(echo "$out" | cut -d' ' -f2)
  rss=$(( $(echo "$out" | cut -d' ' -f3) / 1024 ))
  echo "$label: ${secs}s, peak RSS ${rss} MiB; $(grep -E '^ledger:' "$log" | head -1)"
  grep -E '^(inputs|closure)' "$log" | sed 's/^/    /' || true
  grep -E '^cube ' "$log" | sed 's/^/    /' || true
  echo "$secs" >> "target/bench/refresh-${label}.times"
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
rm -f target/bench/refresh-full.times target/bench/refresh-incremental.times
for i in $(seq 1 "$runs"); do
  # The state before the day: published, every cube built.
  take_out
  "${limited[@]}" "$bin" refresh --warehouse "$wh" > target/bench/refresh-before.log 2>&1
  put_back
  run incremental
  run full --full
done
stats() { sort -n "target/bench/refresh-$1.times" | awk -v l="$1" '{a[NR]=$1} END {printf "%s: min %.2fs, median %.2fs, max %.2fs over %d runs\n", l, a[1], a[int((NR+1)/2)], a[NR], NR}'; }
median() { sort -n "target/bench/refresh-$1.times" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
stats full
stats incremental
f=$(median full)
i=$(median incremental)
awk -v f="$f" -v i="$i" 'BEGIN {printf "incremental / full (medians): %.3f\n", i / f}'
