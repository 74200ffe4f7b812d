# Shared set-up of the benchmark scripts (sourced): GNU time, the release binary, and the
# generated warehouse of a scale and seed.
#
#   bench_setup <scale> <seed>    sets $bin (AMOEBA_BIN, or the release build) and $src
#                                 (target/bench/warehouse-<scale>-<seed>, generated once)
#
# BUILD_MEMORY_MB: the ledger build's memory limit, written into the warehouse's model as
# `[ledger] memory_limit_mb` (working tables on disk, sorts and aggregations spilling beyond
# it); default 6144 from scale 10 up (the 8 GiB the benchmark allows, less the rest of the
# process), none below. BUILD_MEMORY_MB=none removes it.
bench_setup() {
  local scale="$1" seed="$2"
  command -v /usr/bin/time >/dev/null 2>&1 || {
    local sudo=""; [ "$(id -u)" != "0" ] && command -v sudo >/dev/null && sudo="sudo"
    $sudo apt-get install -y -qq time >/dev/null
  }
  bin="${AMOEBA_BIN:-}"
  if [ -z "$bin" ]; then
    cargo build --release --locked --bin amoeba
    bin=target/release/amoeba
  fi
  src="target/bench/warehouse-${scale}-${seed}"
  if [ ! -f "$src/.amoeba-gen" ]; then
    "$bin" gen --scale "$scale" --seed "$seed" --out "$src"
  fi
  local limit="${BUILD_MEMORY_MB:-}"
  if [ -z "$limit" ] && awk -v s="$scale" 'BEGIN {exit !(s >= 10)}'; then limit=6144; fi
  local model="$src/model/model.toml"
  sed -i '/^\[ledger\] # bench$/d; /^memory_limit_mb = .* # bench$/d' "$model"
  if [ -n "$limit" ] && [ "$limit" != none ]; then
    grep -q '^\[ledger\]' "$model" && { echo "$model has a [ledger] section: set BUILD_MEMORY_MB=none"; return 1; }
    printf '[ledger] # bench\nmemory_limit_mb = %s # bench\n' "$limit" >> "$model"
    echo "ledger build: memory_limit_mb = $limit"
  fi
}

# bench_serve <warehouse> <log>: starts `$bin serve` on a free loopback port (no passwords, no
# poller), waits until it answers a query, and sets $port and $server (its pid). SERVE_ENV:
# extra environment for the server (`GLIBC_TUNABLES=…`). Returns 1, with the server's log, if it
# exits first.
bench_serve() {
  local wh="$1" log="$2"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  # shellcheck disable=SC2086
  env ${SERVE_ENV:-} "$bin" serve --warehouse "$wh" --listen "127.0.0.1:$port" --poll-seconds 0 \
    --auth trust > "$log" 2>&1 &
  server=$!
  for _ in $(seq 1 1800); do
    psql -h 127.0.0.1 -p "$port" -U amoeba -d amoeba -Atc 'select 1' >/dev/null 2>&1 && return 0
    kill -0 "$server" 2>/dev/null || { echo "amoeba serve exited:"; cat "$log"; return 1; }
    sleep 1
  done
  echo "amoeba serve did not answer within 30 minutes (log: $log)"
  return 1
}
