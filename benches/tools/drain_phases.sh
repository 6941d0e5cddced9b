#!/bin/bash
# The burst's drain as a timeline: every 100 ms, the CPU ticks (1/100 s) of
# the bridge's async thread, SQLite's threads and lapin's I/O thread, of the
# broker and of the bench (with its simulator), the machine's idle ticks
# (both CPUs), and the endings the bridge committed in that slice (its
# "transfer finished" log lines). Time 0 is the first ending. It shows what
# the totals of the burst's `machine:` line hide: whether the broker works
# while the bridge takes the signals in, or only after.
#   benches/tools/drain_phases.sh [bridge binary] [VAR=VALUE...]
# Needs the e2e bench built (`cargo bench --bench e2e --no-run`), RabbitMQ
# and PostgreSQL as the tests do. Reads /proc only: no profiler attached.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(mktemp -d)
source benches/tools/stage.sh
bin=${1:-}
shift || true
begin_stage "$out/bench.log" "$bin" E2E_ONLY=burst "$@"
# The bench runs the bridge in a directory of its own and logs to bridge.log there.
tail -n +1 -F "/proc/$pid/cwd/bridge.log" >"$out/bridge.log" 2>/dev/null &
tail_pid=$!
broker=$(pgrep -f beam.smp | head -1 || true)
python3 - "$pid" "${broker:-0}" "$runner" >"$out/ticks" <<'PY'
import glob, os, sys, time
bridge, broker, bench = sys.argv[1:4]
def ticks(pid):
    """Ticks per thread name (first 15 characters) of a process."""
    per = {}
    for stat in glob.glob(f"/proc/{pid}/task/*/stat"):
        try:
            text = open(stat).read()
        except OSError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text[text.rindex(")") + 2:].split()
        per[name] = per.get(name, 0) + int(fields[11]) + int(fields[12])
    return per
def idle():
    fields = open("/proc/stat").readline().split()
    return int(fields[4]) + int(fields[5])
before = None
while os.path.exists(f"/proc/{bridge}"):
    now = (time.time(), ticks(bridge), sum(ticks(broker).values()), sum(ticks(bench).values()), idle())
    if before:
        threads = {k: v - before[1].get(k, 0) for k, v in now[1].items()}
        sqlite = sum(v for k, v in threads.items() if k.startswith("sqlx"))
        lapin = sum(v for k, v in threads.items() if k.startswith("lapin"))
        rest = sum(threads.values()) - sqlite - lapin
        print(now[0], rest, sqlite, lapin, now[2] - before[2], now[3] - before[3], now[4] - before[4], flush=True)
    before = now
    time.sleep(0.1)
PY
wait "$runner"
kill "$tail_pid" 2>/dev/null || true
grep -E "^burst" "$out/bench.log" | cut -c1-400
python3 - "$out/ticks" "$out/bridge.log" <<'PY'
import collections, datetime, json, sys
endings = []
for line in open(sys.argv[2]):
    try:
        entry = json.loads(line)
    except ValueError:
        continue
    if entry.get("message") == "transfer finished":
        at = entry["timestamp"].replace("Z", "+00:00")
        endings.append(datetime.datetime.fromisoformat(at).timestamp())
if not endings:
    sys.exit("no endings in the bridge's log (is telemetry.format json?)")
start = endings[0]
per_slice = collections.Counter(int((t - start) * 10) for t in endings)
print("   t(s)  async sqlite  lapin broker  bench   idle endings")
for line in open(sys.argv[1]):
    at, *cols = line.split()
    slice_ = int((float(at) - start) * 10)
    if -5 <= slice_ <= max(per_slice) + 40:
        cells = "".join(f"{int(c):7d}" for c in cols)
        print(f"{slice_ / 10:7.1f}{cells}{per_slice.get(slice_ - 1, 0):8d}")
PY
rm -rf "$out"
