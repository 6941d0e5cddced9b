#!/bin/bash
# Two bridge binaries, N alternating runs each of the burst and signalled
# stages in one script, and a table of each pair: the drain, the ratio to
# bare lapin (and that run's bare rate), the bridge's CPU per completion,
# CPU per signalled transfer (and its bare loop), and B's CPU over A's.
# A change of a few per cent is below one hour's noise on this machine;
# pairs taken minutes apart meet the same machine, so their ratios are what
# a round reports (docs/perf-rounds.md).
#   benches/tools/pairs.sh A_BINARY B_BINARY [N, default 4] [stages, default burst,signalled]
# Needs the e2e bench built (`cargo bench --bench e2e --no-run`), RabbitMQ
# and PostgreSQL as the tests do. Prints the raw stage lines' file too.
set -euo pipefail
a=$(realpath "${1:?usage: pairs.sh A_BINARY B_BINARY [N] [stages]}")
b=$(realpath "${2:?usage: pairs.sh A_BINARY B_BINARY [N] [stages]}")
n=${3:-4}
stages=${4:-burst,signalled}
cd "$(dirname "$0")/../.."
export AMQP_URL=${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
bench=$(ls -t target/release/deps/e2e-* | grep -v '\.d$' | head -1)
out=$(mktemp)
for i in $(seq 1 "$n"); do
  for side in A B; do
    bin=$a; [ "$side" = B ] && bin=$b
    echo "== $i $side" >>"$out"
    E2E_ONLY=$stages E2E_BRIDGE_BIN=$bin "$bench" 2>&1 | grep -E '^(burst|signalled)' >>"$out"
  done
done
python3 - "$out" <<'PY'
import re, sys
runs = {}
key = None
for line in open(sys.argv[1]):
    if line.startswith("== "):
        _, i, side = line.split()
        key = (int(i), side)
        runs[key] = {}
        continue
    r = runs[key]
    m = re.search(r"drained in ([\d.]+) s.*?= ([\d.]+)x bare lapin to one transient queue \((\d+) msgs/s", line)
    if m:
        r.update(drain=float(m[1]), ratio=float(m[2]), bare=int(m[3]))
    m = re.search(r"bridge CPU ([\d.]+) ms per completion", line)
    if m:
        r["cpu"] = float(m[1])
    m = re.search(r"^signalled: .*?([\d.]+) ms CPU per transfer.*?\(([\d.]+) ms per transfer", line)
    if m:
        r.update(sig=float(m[1]), sigbare=float(m[2]))
def cell(r, k, fmt):
    return format(r[k], fmt) if k in r else "-"
def over(b, a, k):
    return f"{b[k] / a[k]:.3f}" if k in a and k in b and a[k] else "-"
print("pair | A: drain s, x bare (bare msgs/s), ms CPU/completion, signalled ms (bare loop)"
      " | B: the same | B/A: CPU per completion, signalled")
for i in sorted({i for i, _ in runs}):
    a, b = runs.get((i, "A"), {}), runs.get((i, "B"), {})
    side = lambda r: (f"{cell(r, 'drain', '.2f')}, {cell(r, 'ratio', '.2f')}x ({cell(r, 'bare', 'd')}),"
                      f" {cell(r, 'cpu', '.3f')}, {cell(r, 'sig', '.3f')} ({cell(r, 'sigbare', '.3f')})")
    print(f"{i:4d} | {side(a)} | {side(b)} | {over(b, a, 'cpu')}, {over(b, a, 'sig')}")
PY
echo "stage lines: $out"
