#!/bin/bash
# CPU of a registration, then of an identical repeat (an IVR retrying:
# 200), one request at a time, in one script so both meet the same machine:
# N new registrations, then the same N again, against a bridge process on
# the default config (the registration rate limit lifted) and the project's
# simulator, in a temporary directory.
#   benches/tools/repeats.sh [bridge binary] [N, default 1000]
# Needs RabbitMQ on the default URL, and ports 18080 and 18090 free.
set -euo pipefail
bin=$(realpath "${1:-target/release/transfer-bridge}")
n=${2:-1000}
dir=$(mktemp -d)
cd "$dir"
"$bin" simulator --bind 127.0.0.1:18090 >sim.log 2>&1 &
sim=$!
BRIDGE_HTTP__REGISTER_RATE_PER_S=100000 BRIDGE_HTTP__REGISTER_BURST=100000 \
  BRIDGE_UPSTREAM__API_ID=bench BRIDGE_UPSTREAM__API_SECRET=bench \
  BRIDGE_UPSTREAM__BASE_URL=http://127.0.0.1:18090 BRIDGE_HTTP__BIND=127.0.0.1:18080 \
  "$bin" serve >bridge.log 2>&1 &
bridge=$!
trap 'kill $bridge $sim 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 50); do
  curl -sf http://127.0.0.1:18080/readyz >/dev/null && break
  sleep 0.2
done
python3 - "$n" "$bridge" <<'PY'
import http.client, json, sys, time
n, pid = int(sys.argv[1]), sys.argv[2]
tick = 100  # clock ticks per second (getconf CLK_TCK)

def cpu():
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick

conn = http.client.HTTPConnection("127.0.0.1", 18080)

def register(i):
    body = json.dumps({"callTransferId": f"rp{i:05d}", "returnSignal": True})
    conn.request("POST", "/v1/transfers", body, {"content-type": "application/json"})
    response = conn.getresponse()
    response.read()
    return response.status

out = {}
for phase, expect in (("registration", 201), ("repeat", 200)):
    time.sleep(1.5)  # the registrations' audit records go out first
    cpu0, t0 = cpu(), time.time()
    for i in range(n):
        status = register(i)
        assert status == expect, (phase, i, status)
    out[phase] = (1000 * (cpu() - cpu0) / n, 1000 * (time.time() - t0) / n)
    print(f"{phase}: {out[phase][0]:.3f} ms CPU, answered in {out[phase][1]:.2f} ms on average")
print(f"a repeat costs {out['repeat'][0] / out['registration'][0]:.2f}x a registration")
PY
