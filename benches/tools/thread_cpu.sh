#!/bin/bash
# Where a bridge process's CPU goes, by thread kind, with no profiler attached:
# user and system ticks (1/100 s) and voluntary context switches, summed per
# thread name from /proc/<pid>/task/*, last read just before the process
# exits. A sampling profiler with call graphs inflates the cost of every
# context switch; this does not.
#   benches/tools/thread_cpu.sh [stage] [bridge binary]
# stage: an e2e stage that runs the bridge as a process (signalled, burst,
# polling); default signalled. Needs the e2e bench built
# (`cargo bench --bench e2e --no-run`), RabbitMQ and PostgreSQL as the tests do.
set -euo pipefail
stage=${1:-signalled}
cd "$(dirname "$0")/../.."
out=$(mktemp)
source benches/tools/stage.sh
begin_stage "$out" "${2:-}" E2E_ONLY="$stage"
# name|user|system|voluntary switches, one line per thread
snapshot() {
  for task in /proc/"$pid"/task/*; do
    name=$(cat "$task/comm" 2>/dev/null) || continue
    read -r -a stat <"$task/stat" 2>/dev/null || continue
    switches=$(awk '/^voluntary_ctxt/ {print $2}' "$task/status" 2>/dev/null) || continue
    echo "$name|${stat[13]}|${stat[14]}|$switches"
  done
}
last=""
while kill -0 "$pid" 2>/dev/null; do
  now=$(snapshot)
  [ -n "$now" ] && last=$now
  sleep 0.2
done
wait "$runner"
grep -E "^$stage" "$out"
echo "$last" | awk -F'|' '{u[$1]+=$2; s[$1]+=$3; v[$1]+=$4; n[$1]++}
  END {for (k in u) printf "%-16s threads %2d  user %5d  system %5d  voluntary switches %7d\n", k, n[k], u[k], s[k], v[k]}'
rm -f "$out"
