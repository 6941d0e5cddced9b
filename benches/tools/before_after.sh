#!/bin/bash
# The README's before/after table: one bench executable, two bridge binaries,
# one script, so both sides meet the same machine state.
#   benches/tools/before_after.sh /path/to/before/transfer-bridge
# Needs RabbitMQ (AMQP_URL) and PostgreSQL (DATABASE_URL), as the tests do.
set -euo pipefail
before=${1:?usage: before_after.sh /path/to/before/transfer-bridge}
cd "$(dirname "$0")/../.."
cargo build --release --bin transfer-bridge
after=$(mktemp -d)/transfer-bridge
cp target/release/transfer-bridge "$after"
bench=$(cargo bench --bench e2e --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m["target"]["name"]=="e2e" and m.get("executable"): print(m["executable"])')
export AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
for side in after before; do
  bin=$after; [ "$side" = before ] && bin=$before
  echo "== $side, SQLite"
  E2E_ONLY=burst,polling,signalled E2E_BRIDGE_BIN=$bin "$bench" | grep -E '^(burst|polling|signalled)'
  echo "== $side, PostgreSQL"
  E2E_STORE=postgres E2E_ONLY=burst E2E_BRIDGE_BIN=$bin "$bench" | grep -E '^burst'
done
echo "== memory (in process)"
E2E_ONLY=memory "$bench" | grep -E '^memory'
