# Sourced by the tools here (run from the repository root): one e2e stage in
# the background against a bridge binary, and the bridge process it starts.
#   begin_stage OUT [BIN] [VAR=VALUE...]
# As start_stage, with the tools' defaults: this build's bridge unless BIN
# names one, and the broker and database the tests use unless AMQP_URL and
# DATABASE_URL say otherwise.
begin_stage() {
  local out=$1 bin
  bin=$(realpath "${2:-target/release/transfer-bridge}")
  shift 2
  export AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
  export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
  start_stage "$out" "$bin" "$@"
}

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
