#!/usr/bin/env bash
# The whole benchmark, one command (BENCHMARKS.md): for each scale, generate the warehouse
# (once), then
#   1. the refresh: full against incremental after one day of exports (benches/refresh.sh),
#   2. the P&L query suite ad hoc on the ledger, side by side with DuckDB (benches/suite.sh,
#      ROUTING=off),
#   3. the same suite with cube routing on (what a BI tool gets over pgwire),
#   4. the kernels (cargo bench -p amoeba-udfs: KPIs, exact allocation, costing),
# and writes everything they print into target/bench/report-<date>.md.
#
#   benches/run.sh [scale ...]          default: 1 10
#
# RUNS (suite runs per query, default 5), REFRESH_RUNS (default 3), SEED (default 42).
# Each step's exit status is recorded in the report; the script exits 1 if any step failed,
# after running the others.
set -uo pipefail
cd "$(dirname "$0")/.."
scales=("$@")
[ ${#scales[@]} -eq 0 ] && scales=(1 10)
seed="${SEED:-42}"
refresh_runs="${REFRESH_RUNS:-3}"

scripts/setup >/dev/null || exit 1
cargo build --release --locked --bin amoeba || exit 1
export AMOEBA_BIN=target/release/amoeba
mkdir -p target/bench
report="target/bench/report-$(date -u +%Y%m%d-%H%M).md"
failed=0

# step <title> <command…>: runs a step, appends its output to the report under a heading.
step() {
  local title="$1"; shift
  echo "== $title"
  {
    echo "## $title"
    echo
    echo '```text'
    echo "\$ $*"
  } >> "$report"
  "$@" 2>&1 | tee -a "$report"
  local status=${PIPESTATUS[0]}
  {
    echo '```'
    echo
    [ "$status" -ne 0 ] && echo "**exit status $status**" && echo
  } >> "$report"
  [ "$status" -ne 0 ] && failed=1
  return 0
}

{
  echo "# Amoeba benchmark report, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); load at start $(cut -d' ' -f1-3 /proc/loadavg); commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)."
  echo
} > "$report"

for scale in "${scales[@]}"; do
  step "Refresh, scale $scale" benches/refresh.sh "$scale" "$seed" "$refresh_runs"
  step "Query suite ad hoc on the ledger, scale $scale" env ROUTING=off benches/suite.sh "$scale" "$seed"
  step "Query suite with cube routing, scale $scale" env ROUTING=on benches/suite.sh "$scale" "$seed"
done
step "Kernels: KPI functions, exact allocation, costing" cargo bench --locked -p amoeba-udfs

echo
echo "report: $report"
exit "$failed"
