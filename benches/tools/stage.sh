# Sourced by the tools here (run from the repository root): one e2e stage in
# the background against a bridge binary, and the bridge process it starts.
#   start_stage OUT BIN [VAR=VALUE...]
# Runs the newest e2e bench executable with the variables given and
# E2E_BRIDGE_BIN=BIN, output to OUT; sets `runner` (the bench's pid) and
# `pid` (the bridge's), or prints the bench's output and exits when no
# bridge starts.
start_stage() {
  local out=$1 bin=$2 bench
  shift 2
  bench=$(ls -t target/release/deps/e2e-* | grep -v '\.d$' | head -1)
  env "$@" E2E_BRIDGE_BIN="$bin" "$bench" >"$out" 2>&1 &
  runner=$!
  pid=""
  for _ in $(seq 1 400); do
    pid=$(pgrep -f "^$bin serve" | head -1 || true)
    [ -n "$pid" ] && return 0
    sleep 0.05
  done
  echo "the bridge did not start"
  cat "$out"
  exit 1
}
