#!/usr/bin/env bash
# The quick-start demo (for now: the guest machine on its own).
#
#   ftdemo (network namespace)
#   ┌─────────────────────────────────────────────┐
#   │  10.77.0.1 ── ftdemo0 (TAP) ══ ftbox emu run │
#   │                                netsvc guest │
#   │                                10.77.0.10   │
#   └─────────────────────────────────────────────┘
#
# Boots the netsvc guest on a TAP inside a network namespace, pings it and
# talks to its UDP echo and counter services, then removes everything.
set -euo pipefail
cd "$(dirname "$0")/.."
NS=ftdemo
TAP=ftdemo0
FTBOX=${FTBOX:-bin/ftbox}
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (it creates a network namespace)"; exit 1; }
[ -x "$FTBOX" ] || { echo "demo: build first (make build)"; exit 1; }

log=$(mktemp)
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -f "$log"
}
trap cleanup EXIT
ip netns del "$NS" 2>/dev/null || true
ip netns add "$NS"
ip -n "$NS" link set lo up

echo "== booting the netsvc guest on $TAP in namespace $NS"
ip netns exec "$NS" "$FTBOX" emu run netsvc --tap "$TAP" >"$log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  grep -q "netsvc:" "$log" && ip -n "$NS" link show "$TAP" >/dev/null 2>&1 && break
  sleep 0.1
done
cat "$log"
ip -n "$NS" addr add 10.77.0.1/24 dev "$TAP"

echo "== ping 10.77.0.10"
ip netns exec "$NS" ping -c 3 -i 0.3 10.77.0.10

udp() { # udp PORT MESSAGE: one datagram, print the reply
  ip netns exec "$NS" bash -c '
    exec 3<>/dev/udp/10.77.0.10/'"$1"'
    printf "%s" "$0" >&3
    IFS= read -r -t 2 -u 3 reply; printf "%s\n" "$reply"' "$2"
}
echo "== UDP echo (port 7)"
echo "sent: hello ftbox   got: $(udp 7 'hello ftbox')"
echo "== UDP counter (port 7000)"
for i in 1 2 3; do echo "INCR demo r$i  ->  $(udp 7000 "INCR demo r$i")"; done
echo "GET demo g1    ->  $(udp 7000 'GET demo g1')"
echo "== done; tearing down"
