# Shared set-up of the benchmark scripts (sourced): GNU time, the release binary, and the
# generated warehouse of a scale and seed.
#
#   bench_setup <scale> <seed>    sets $bin (AMOEBA_BIN, or the release build) and $src
#                                 (target/bench/warehouse-<scale>-<seed>, generated once)
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
}
