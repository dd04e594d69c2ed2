#!/usr/bin/env bash
# The quick-start demo (`make demo`, as root): a fault-tolerant pair in network namespaces, a failover under load.
#
#   ftclient 10.77.0.100 ── LAN (ftlan) ──┬── box A (ftboxa): ftbox run, primary ══ log0 ══╗
#                                          ├── box B (ftboxb): ftbox run, backup  ══ log0 ══╝
#                                          └── arbiter (ftarb) 10.77.0.2
#   the guest (netsvc, 10.77.0.10) runs on both boxes; the primary's copy answers, the backup's is gated.
#   (tools/lab draws the whole topology.)
#
# 1. tools/lab up: the topology, the pair key, both configs, the arbiter, both daemons; waits for PROTECTED.
# 2. ftbox status on both boxes.
# 3. ping and the UDP counter from the client.
# 4. Under load (ping every 10 ms, a counter increment every 10 ms) box A is killed with SIGKILL; box B goes
#    live and the client carries on.
# 5. The figures: the client-visible gap, lost acknowledged increments (must be 0), detection and go-live
#    times from box B's `ftbox status --json`.
# 6. Box A's daemon is started again: it rejoins as the backup (state transfer), and everything is torn down.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
export PATH=/usr/local/go/bin:$PATH
export FTBOX=${FTBOX:-$repo/bin/ftbox}
STATE=${FTBOX_LAB_STATE:-/run/ftbox-lab}
LAB=tools/lab
GUEST_IP=10.77.0.10
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (it creates network namespaces)"; exit 1; }
[ -x "$FTBOX" ] || { echo "demo: build first (make build)"; exit 1; }

bold='' plain=''
if [ -t 1 ]; then bold=$(tput bold 2>/dev/null || true) plain=$(tput sgr0 2>/dev/null || true); fi
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
status() { "$FTBOX" status --socket "$STATE/$1/ftbox.sock" || true; }
# ftbox status exits 1 when UNPROTECTED (Nagios WARNING): the JSON is there all the same.
json() {
	local out
	out=$("$FTBOX" status --json --socket "$STATE/$1/ftbox.sock" 2>/dev/null) || true
	echo "${out:-"{}"}"
}

work=$(mktemp -d)
cleanup() {
	local rc=$?
	[ -n "${ping_pid:-}" ] && kill "$ping_pid" 2>/dev/null
	[ -n "${count_pid:-}" ] && kill "$count_pid" 2>/dev/null
	wait 2>/dev/null || true
	if [ "$rc" -ne 0 ] && [ -d "$STATE" ]; then
		echo "demo: failed; the daemons' last words:" >&2
		tail -n 15 "$STATE"/a/ftbox.log "$STATE"/b/ftbox.log "$STATE"/arb/arbiter.log 2>/dev/null >&2 || true
	fi
	step "tearing down"
	"$LAB" down || true
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT

step "1. the lab: two boxes, an arbiter and a client in network namespaces (tools/lab up)"
go build -o "$work/" ./tools/client/cmd/ftcount
"$LAB" up

step "2. ftbox status on both boxes"
for box in a b; do status "$box"; echo; done

# The primary is box A unless something already failed over (then the demo goes on with what it finds).
P=a S=b
if [ "$(json b | jq -r '.role // empty')" = PRIMARY ]; then P=b S=a; fi
PN=${P^^} SN=${S^^}

step "3. the client talks to the guest at $GUEST_IP (served by box $PN)"
ip netns exec ftclient ping -c 3 -i 0.2 "$GUEST_IP"
echo
echo "UDP counter (port 7000), one second of increments every 10 ms:"
ip netns exec ftclient "$work/ftcount" -q --name warmup --duration 1s | sed 's/^/  /'

step "4. failover: kill -9 box $PN's ftbox under load; box $SN takes over"
ip netns exec ftclient ping -D -O -i 0.01 -w 6 "$GUEST_IP" >"$work/ping.txt" 2>&1 &
ping_pid=$!
ip netns exec ftclient "$work/ftcount" --name demo --duration 6s >"$work/count.txt" 2>"$work/count.err" &
count_pid=$!
sleep 2
kill_at=$EPOCHREALTIME
"$LAB" kill "$P" KILL
live=''
for _ in $(seq 300); do
	case $(json "$S" | jq -r '.role // empty') in
	PRIMARY | UNPROTECTED) live=$EPOCHREALTIME; break ;;
	esac
	sleep 0.01
done
if [ -n "$live" ]; then
	awk -v a="$kill_at" -v b="$live" -v n="$SN" 'BEGIN { printf "box %s is live %.0f ms after the kill (as seen by polling ftbox status)\n", n, (b - a) * 1000 }'
else
	echo "box $SN did not go live within 3 s"
fi
status "$S"
echo
echo "the client carries on:"
wait "$count_pid" || true
count_pid=''
wait "$ping_pid" || true
ping_pid=''
sed 's/^/  /' "$work/count.err"

step "5. the figures"
ms1() { awk -v v="$1" 'BEGIN { if (v ~ /^[0-9.eE+-]+$/) printf "%.1f", v; else printf "%s", v }'; }
js=$(json "$S")
read -r sent recv < <(awk '/packets transmitted/ {print $1, $4}' "$work/ping.txt")
ping_gap=$(awk -F'[][]' '/bytes from/ { t = $2 + 0; if (last && t - last > gap) gap = t - last; last = t } END { printf "%.1f", gap * 1000 }' "$work/ping.txt")
cat <<EOF
  UDP counter (client in ftclient, increments every 10 ms):
$(grep -E '^(requests|acknowledged|unanswered|last_acked_value|final_value|lost_acked_increments|client_gap):' "$work/count.txt" | sed 's/^/    /')
  ping (every 10 ms): $recv of $sent answered, longest gap between replies $ping_gap ms
  box $SN (ftbox status --json, last_failover):
    detection: $(ms1 "$(jq -r '.last_failover.detection_ms // "?"' <<<"$js")") ms (last frame heard from $PN → $PN declared failed)
    go-live:   $(ms1 "$(jq -r '.last_failover.go_live_ms // "?"' <<<"$js")") ms (declared failed → gate open, outputs released)
    epoch:     $(jq -r '.last_failover.from_epoch // "?"' <<<"$js") → $(jq -r '.last_failover.to_epoch // "?"' <<<"$js"), $(jq -r '.last_failover.released // "?"' <<<"$js") buffered outputs released, role now $(jq -r '.role' <<<"$js")
EOF
if ! grep -q '^lost_acked_increments: 0$' "$work/count.txt"; then
	echo "demo: acknowledged increments were LOST" >&2
	exit 1
fi

step "6. box $PN comes back (tools/lab start $P): it rejoins as the backup, it never preempts"
"$LAB" start "$P"
if "$LAB" wait-protected 30 >/dev/null 2>&1; then
	echo "PROTECTED again:"
	for box in a b; do "$FTBOX" status --socket "$STATE/$box/ftbox.sock" | head -1; done
else
	echo "box $PN has not rejoined (yet):"
	status "$P" | head -3
fi
echo
echo "Next: tools/lab up; tools/verify/verify.sh --failover   (the same failover, checked with tcpdump captures)"
