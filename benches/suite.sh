#!/usr/bin/env bash
# The P&L query suite side by side with DuckDB: `amoeba serve` on a generated warehouse, then
# benches/suite.py runs every benches/queries/NN_name.sql once to warm up and RUNS times on each
# engine — Amoeba over pgwire (psycopg), DuckDB in-process over the same Parquet (the ledger
# version Amoeba serves and the exports it reads; `SET threads=2`) — checks the two results are
# equal and prints a Markdown table: median (min–max) ms per engine, the ratio of the medians,
# their geometric mean and the peak RSS of the DuckDB process and of the Amoeba server.
#
#   benches/suite.sh <scale> [seed]      seed default 42
#
# ROUTING=off (default): `SET amoeba.cube_routing = false`, every query computed from the ledger
# (the ad hoc numbers); ROUTING=on lets Amoeba answer from its cubes (the table then says which).
# RUNS (default 5), THREADS (DuckDB's, default 2), ONLY="07_ 19_" (a subset of the queries).
# The table is also written to target/bench/suite-<scale>-<seed>-routing-<off|on>.md and DuckDB's
# views to target/bench/suite-duckdb-views.sql. Exit 1 when a query fails or the results differ.
# The warehouse is generated once under target/bench/warehouse-<scale>-<seed>; AMOEBA_BIN: an
# already built binary (default: build the release one).
set -euo pipefail
cd "$(dirname "$0")/.."
scale="${1:?usage: benches/suite.sh <scale> [seed]}"
seed="${2:-42}"
routing="${ROUTING:-off}"
runs="${RUNS:-5}"
threads="${THREADS:-2}"

scripts/setup >/dev/null
. benches/common.sh
bench_setup "$scale" "$seed"
wh="$src"
python=.venv/bin/python
log=target/bench/suite-serve.log
trap 'kill ${server:-} 2>/dev/null || true' EXIT
bench_serve "$wh" "$log"
echo "serving $wh on :$port (pid $server; $(grep -m1 "^ledger:" "$log" || true))"

out="target/bench/suite-${scale}-${seed}-routing-${routing}.md"
status=0
# shellcheck disable=SC2086
"$python" benches/suite.py --warehouse "$wh" --port "$port" --server-pid "$server" \
  --routing "$routing" --runs "$runs" --threads "$threads" --out "$out" \
  --views-out target/bench/suite-duckdb-views.sql ${ONLY:+--only $ONLY} || status=$?
if ! kill -0 $server 2>/dev/null; then echo "the amoeba server died:"; tail -20 "$log"; exit 1; fi
kill $server
wait $server 2>/dev/null || true
trap - EXIT
echo
echo "(table: $out)"
exit "$status"
