#!/usr/bin/env bash
# The refresh benchmark: a full refresh (`amoeba refresh --full`: catalog, ledger, every month
# of every cube) against an incremental one after one day of platform exports lands
# (`amoeba refresh`: catalog, ledger, only the cube months whose ledger rows changed), in
# release, RUNS times each; prints every run's wall time, peak RSS and what was rebuilt, then
# min / median / max and the ratio of the medians.
#
#   benches/refresh.sh [scale] [seed] [runs]      defaults: 1 42 3
#
# "One day" is every export file under dt=<the last order day> (all platforms, all kinds).
# The warehouse is generated once under target/bench/warehouse-<scale>-<seed> and copied to
# target/bench/refresh-<scale>-<seed>, where the day is taken out and put back.
set -euo pipefail
cd "$(dirname "$0")/.."
scale="${1:-1}"
seed="${2:-42}"
runs="${3:-3}"

. benches/common.sh
bench_setup "$scale" "$seed"
bench_cgroup "$scale"
wh="target/bench/refresh-${scale}-${seed}"
held="target/bench/refresh-${scale}-${seed}-held"
rm -rf "$wh" "$held"
mkdir -p "$wh" "$held"
for d in "$src"/*; do
  case "$(basename "$d")" in ledger|cubes|truth) ;; *) cp -r "$d" "$wh/" ;; esac
done
day=$(find "$wh/exports" -type d -path '*/orders/*' -name 'dt=*' | sed 's|.*dt=||' | sort | tail -1)
days_files=$(cd "$wh" && find exports -type f -path "*/dt=${day}/*" | sort)
echo "the day: dt=${day}, $(echo "$days_files" | wc -l) files"

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
