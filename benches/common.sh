# Shared set-up of the benchmark scripts (sourced): GNU time, the release binary, and the
# generated warehouse of a scale and seed.
#
#   bench_setup <scale> <seed> [day]
#                                 sets $bin (AMOEBA_BIN, or the release build) and $src
#                                 (target/bench/warehouse-<scale>-<seed>, generated once;
#                                 with a day, …-<seed>-day-<day>: `amoeba gen --day-apart`)
#
# BUILD_MEMORY_MB: the ledger build's memory limit, written into the warehouse's model as
# `[ledger] memory_limit_mb` (working tables on disk, sorts and aggregations spilling beyond
# it); default 4096 from scale 10 up, none below (BUILD_MEMORY_MB=none removes it). The
# pool bounds what DataFusion tracks, not the rest of the process (Parquet readers and
# writers, batches in flight, the allocator's slack): at scale 10 with 6144, one build peaked
# at 7.6 GiB and the next was killed at the 8 GiB limit while sorting and writing the ledger.
bench_setup() {
  local scale="$1" seed="$2" day="${3:-}"
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
  local apart=()
  if [ -n "$day" ]; then
    src="${src}-day-${day}"
    apart=(--day-apart "$day")
  fi
  if [ ! -f "$src/.amoeba-gen" ]; then
    "$bin" gen --scale "$scale" --seed "$seed" --out "$src" "${apart[@]}"
  fi
  local limit="${BUILD_MEMORY_MB:-}"
  if [ -z "$limit" ] && awk -v s="$scale" 'BEGIN {exit !(s >= 10)}'; then limit=4096; fi
  local model="$src/model/model.toml"
  sed -i '/^\[ledger\] # bench$/d; /^memory_limit_mb = .* # bench$/d' "$model"
  if [ -n "$limit" ] && [ "$limit" != none ]; then
    grep -q '^\[ledger\]' "$model" && { echo "$model has a [ledger] section: set BUILD_MEMORY_MB=none"; return 1; }
    printf '[ledger] # bench\nmemory_limit_mb = %s # bench\n' "$limit" >> "$model"
    echo "ledger build: memory_limit_mb = $limit"
  fi
}

# MEMORY_LIMIT_MB: the memory the timed refreshes may use, enforced by the kernel (a memory
# cgroup, v1 or v2, whichever this machine lets us create: going over kills the refresh, and
# the benchmark fails); default 8192 from scale 10 up, none below. `bench_cgroup <scale>` sets
# $cgroup (empty: no limit) and the array $limited, a prefix that runs a command inside it
# (`/usr/bin/time "${limited[@]}" "$bin" refresh …`).
bench_cgroup() {
  local scale="$1" limit="${MEMORY_LIMIT_MB:-}"
  cgroup=""
  limited=(sh -c 'if [ -n "$1" ]; then echo $$ > "$1/cgroup.procs"; fi; shift; exec "$@"' sh "")
  if [ -z "$limit" ] && awk -v s="$scale" 'BEGIN {exit !(s >= 10)}'; then limit=8192; fi
  [ -z "$limit" ] || [ "$limit" = none ] && return 0
  local bytes=$(( limit * 1024 * 1024 ))
  if mkdir -p "/sys/fs/cgroup/memory/amoeba-bench-$$" 2>/dev/null \
    && echo "$bytes" > "/sys/fs/cgroup/memory/amoeba-bench-$$/memory.limit_in_bytes" 2>/dev/null; then
    cgroup="/sys/fs/cgroup/memory/amoeba-bench-$$"
  elif grep -qw memory /sys/fs/cgroup/cgroup.controllers 2>/dev/null \
    && mkdir -p "/sys/fs/cgroup/amoeba-bench-$$" 2>/dev/null \
    && echo "$bytes" > "/sys/fs/cgroup/amoeba-bench-$$/memory.max" 2>/dev/null; then
    cgroup="/sys/fs/cgroup/amoeba-bench-$$"
  else
    echo "MEMORY_LIMIT_MB=$limit: no memory cgroup can be created here (not root, or no cgroup fs); set MEMORY_LIMIT_MB=none to run without one"
    return 1
  fi
  limited[4]="$cgroup"
  echo "refreshes run in memory cgroup $cgroup, limit $limit MiB (no swap: over it the kernel kills)"
  trap 'rmdir "$cgroup" 2>/dev/null || true' EXIT
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
