#!/bin/bash
# Who wakes the bridge's threads, and from where: every sched_wakeup of a
# bridge thread during a stage, counted by the woken thread, the waking
# thread and the waker's first frames. On this VM a wake-up across vCPUs is
# dear, so this is the count behind most of a signalled transfer's CPU.
#   benches/tools/wakeups.sh [stage] [bridge binary] [transfers]
# stage: signalled (default), burst or polling; transfers: the stage's count
# (E2E_SIGNALLED or E2E_BURST; default the stage's own), which the counts are
# divided by. Needs perf (Debian linux-perf) with the sched tracepoints, the
# e2e bench built (`cargo bench --bench e2e --no-run`) and RabbitMQ, as the
# tests do. A frame-pointer build names more frames:
#   CARGO_TARGET_DIR=/tmp/prof RUSTFLAGS="-C force-frame-pointers=yes" \
#     cargo build --release --bin transfer-bridge
set -euo pipefail
stage=${1:-signalled}
cd "$(dirname "$0")/../.."
n=${3:-$([ "$stage" = burst ] && echo 10000 || echo 2000)}
work=$(mktemp -d)
source benches/tools/stage.sh
begin_stage "$work/out" "${2:-}" E2E_ONLY="$stage" E2E_SIGNALLED="$n" E2E_BURST="$n"
perf record -q -e sched:sched_wakeup -g -a -o "$work/perf.data" -- \
  bash -c "while kill -0 $pid 2>/dev/null; do ls /proc/$pid/task >>'$work/tids' 2>/dev/null; sleep 0.5; done"
wait "$runner" || { echo "the bench failed:"; cat "$work/out"; exit 1; }
grep -E "^$stage" "$work/out"
perf script -i "$work/perf.data" -F comm,tid,trace,ip,sym 2>/dev/null |
  python3 -c '
import collections, re, sys
tids = {int(t) for t in open(sys.argv[1]).read().split()}
n = int(sys.argv[2])
skip = re.compile(r"\[unknown\]|^syscall|^__GI|^write|^__libc|^pthread|futex|std::sys|std::thread"
                  r"|core::ptr|^tokio::runtime::(park|driver|io|scheduler|task|context)|^mio::"
                  r"|^<tokio::runtime|^tokio::util|event_listener|flume|futures_channel"
                  r"|^tokio::sync::|rendezvous|waker")
counts = collections.Counter()
def flush(head, frames):
    m = re.search(r"comm=(\S+) pid=(\d+)", head or "")
    if not m or int(m.group(2)) not in tids:
        return
    user = [f.split(None, 1)[-1] for f in frames if not f.startswith("ffffffff")]
    user = [f for f in user if not skip.search(f)][:2]
    kern = [f.split(None, 1)[-1] for f in frames if f.startswith("ffffffff")][2:4]
    where = " < ".join(s[:60] for s in user) if user else "kernel: " + " < ".join(kern)
    counts[(m.group(1), head.split()[0], where)] += 1
head, frames = None, []
for line in sys.stdin:
    if not line.strip():
        flush(head, frames); head, frames = None, []
    elif line[0] in " \t":
        frames.append(re.sub(r"\+0x[0-9a-f]+$", "", line.strip()))
    else:
        head = line
flush(head, frames)
woken = collections.Counter()
for (thread, _, _), c in counts.items():
    woken[thread] += c
for thread, total in woken.most_common():
    print(f"{thread}: {total / n:.2f} wake-ups per transfer")
    rows = [(c, k) for k, c in counts.items() if k[0] == thread]
    for c, (_, waker, where) in sorted(rows, reverse=True)[:6]:
        print(f"  {c / n:6.2f}  by {waker:<16} {where}")
' "$work/tids" "$n"
rm -rf "$work"
