#!/bin/bash
# How many fsync, pwrite and pread calls a bridge process makes over one e2e
# stage, counted by the kernel's tracepoints (`perf stat`), which, unlike
# strace, do not slow the SQLite writer and so leave its commit grouping as
# it is. Divide by the stage's transfers: under FULL sync each commit is one
# fsync (checkpoints and a restarted WAL add a few).
#   benches/tools/syscalls.sh [stage] [bridge binary]
# stage: signalled (default), burst or polling. Needs `perf` (Debian
# linux-perf), the e2e bench built (`cargo bench --bench e2e --no-run`),
# RabbitMQ and PostgreSQL as the tests do.
set -euo pipefail
stage=${1:-signalled}
cd "$(dirname "$0")/../.."
out=$(mktemp)
counts=$(mktemp)
source benches/tools/stage.sh
begin_stage "$out" "${2:-}" E2E_ONLY="$stage"
events=syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync
events=$events,syscalls:sys_enter_pwrite64,syscalls:sys_enter_pread64
# perf stat ends with the process it follows.
perf stat -x, -o "$counts" -e "$events" -p "$pid"
wait "$runner"
grep -E "^$stage" "$out"
awk -F, '/syscalls:/ {sub("syscalls:sys_enter_", "", $3); print $3 ": " $1}' "$counts"
rm -f "$out" "$counts"
