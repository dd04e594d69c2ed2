#!/usr/bin/env bash
# tools/verify/verify.sh — check a running lab (tools/lab up) with tcpdump captures.
#
#   tools/verify/verify.sh [--failover] [--out DIR]
#
# Captures (tcpdump -U -w, kept in DIR, default $FTBOX_LAB_STATE/captures):
#   lan.pcap         ftlan, lan-cl: the client's port on the LAN bridge — every request and every reply it gets
#   a_out.pcap       ftboxa, lan0 egress (-Q out): what box A puts on the LAN
#   b_out.pcap       ftboxb, lan0 egress: what box B puts on the LAN
#   backup_tap.pcap  the backup's tap0, frames from the guest (-Q in): the replica's outputs, dropped by the gate
#   log.pcap         the primary's log0: the logging link, decoded with `ftbox dump`; and a copy of the lab's own
#                    capture of log0 from before the pair formed (it holds the handshake, so entries decrypt)
# Checks (each prints PASS or FAIL; the script exits 1 if any failed):
#   1. the backup's tap0 shows the replica's replies, as many as the gate counted dropped over the same span;
#   2. the logging-link captures decode with `ftbox dump FILE --key pair.key`, entries and all;
#   3. on the LAN every request got exactly one reply (outside the failover window, with --failover);
#   4. the guest's MAC is never sourced by two boxes interleaved (at most one switch, at the failover).
# With --failover the primary is killed with SIGKILL in the middle of phase 2's traffic; the lab is left with
# the survivor as primary (tools/lab up rebuilds it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
STATE=${FTBOX_LAB_STATE:-/run/ftbox-lab}
LAB=$repo/tools/lab
GUEST_IP=10.77.0.10 GUEST_MAC=52:54:00:12:34:56
failover=0 out=$STATE/captures
while [ $# -gt 0 ]; do
	case $1 in
	--failover) failover=1; shift ;;
	--out) out=${2:?}; shift 2 ;;
	*) echo "usage: $0 [--failover] [--out DIR]" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" -eq 0 ] || { echo "verify: run as root" >&2; exit 2; }
FTBOX=$(cat "$STATE/ftbox" 2>/dev/null) || { echo "verify: the lab is not up (tools/lab up)" >&2; exit 2; }
export PATH=/usr/local/go/bin:$PATH
mkdir -p "$STATE/bin" "$out"
(cd "$repo" && go build -o "$STATE/bin/" ./tools/verify/cmd/ftverify ./tools/client/cmd/ftcount)
FTVERIFY=$STATE/bin/ftverify FTCOUNT=$STATE/bin/ftcount

failed=0
pass() { printf 'PASS  %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; failed=1; }
now() { echo "$EPOCHREALTIME"; }

status_json() { "$FTBOX" status --json --socket "$STATE/$1/ftbox.sock" 2>/dev/null || true; }
# Fields of `ftbox status --json` (schema_version 1): role PRIMARY, BACKUP, GOING_LIVE, UNPROTECTED (live
# alone) or HALTED; gate.dropped_frames counts the replica's outputs the gate dropped.
role_of() { status_json "$1" | jq -r '.role // empty' 2>/dev/null; }
gate_dropped() { status_json "$1" | jq -r '.gate.dropped_frames // empty' 2>/dev/null; }
is_live() { case $(role_of "$1") in PRIMARY | UNPROTECTED) return 0 ;; *) return 1 ;; esac; }
ns_of() { case $1 in a) echo ftboxa ;; b) echo ftboxb ;; esac; }

primary='' backup=''
for box in a b; do
	case $(role_of $box) in
	PRIMARY) primary=$box ;;
	BACKUP) backup=$box ;;
	esac
done
[ -n "$primary" ] && [ -n "$backup" ] || { echo "verify: need a primary and a backup (tools/lab status)" >&2; exit 2; }
echo "primary: box ${primary^^}   backup: box ${backup^^}   captures: $out"

pids=()
declare -A cap_pid
# capture NAME NS IFACE [tcpdump args...]: start tcpdump, wait until it listens.
capture() {
	local name=$1 ns=$2 dev=$3
	shift 3
	rm -f "$out/$name.pcap" "$out/$name.err"
	ip netns exec "$ns" tcpdump -i "$dev" --immediate-mode -U -n -s 0 -w "$out/$name.pcap" "$@" 2>"$out/$name.err" &
	pids+=("$!")
	cap_pid[$name]=$!
	for _ in $(seq 100); do grep -q "listening on" "$out/$name.err" 2>/dev/null && return 0; sleep 0.02; done
	echo "verify: tcpdump on $ns/$dev did not start: $(cat "$out/$name.err")" >&2
	exit 2
}
# stop_pid PID: SIGTERM (tcpdump writes out and exits; SIGINT would be ignored in a background job), wait up
# to 3 s, then SIGKILL.
stop_pid() {
	local p=$1
	kill -TERM "$p" 2>/dev/null || return 0
	for _ in $(seq 60); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
	kill -KILL "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
}
stop_capture() { stop_pid "${cap_pid[$1]}"; } # stop_capture NAME
cleanup() {
	local p
	for p in "${pids[@]}"; do stop_pid "$p"; done
}
trap cleanup EXIT

capture lan ftlan lan-cl
capture a_out ftboxa lan0 -Q out
capture b_out ftboxb lan0 -Q out
capture backup_tap "$(ns_of $backup)" tap0 -Q in ether src "$GUEST_MAC"
capture log "$(ns_of $primary)" log0

# Phase 1: steady traffic, both boxes up.
g0=$(gate_dropped $backup)
ip netns exec ftclient ping -c 50 -i 0.02 -q "$GUEST_IP" >"$out/ping1.txt" 2>&1 || true
ip netns exec ftclient "$FTCOUNT" -q --name verify1 --duration 1s >"$out/count1.txt" 2>&1 || true
sleep 0.5 # let the replica finish and the gate count
g1=$(gate_dropped $backup)
stop_capture backup_tap
stop_capture log
echo "--- phase 1: ping and the UDP counter with both boxes up"
grep -E "packets transmitted" "$out/ping1.txt" || true
grep -E "^(requests|acknowledged|lost_acked_increments):" "$out/count1.txt" | tr '\n' ' '; echo

n=$("$FTVERIFY" count --src-mac "$GUEST_MAC" "$out/backup_tap.pcap")
if [ -z "$g0" ] || [ -z "$g1" ]; then
	fail "backup tap0: $n replica frames captured; the gate's drop counter is not in ftbox status --json"
elif [ "$n" -gt 0 ] && [ "$n" -eq $((g1 - g0)) ]; then
	pass "backup tap0: $n replica frames captured = $((g1 - g0)) dropped by the gate over the same span"
else
	fail "backup tap0: $n replica frames captured, the gate counted $((g1 - g0)) dropped ($g0 → $g1)"
fi

# The logging link. Our own capture (phase 1) decodes frame by frame, but its entries stay encrypted: the
# session's handshake happened before it started. tools/lab up captures log0 from before the pair forms
# ($STATE/log0.pcap), so that one decrypts: the inputs the primary logged, the client's requests among them.
dumpout=$out/log-dump.txt
if "$FTBOX" dump "$out/log.pcap" --key "$STATE/pair.key" >"$dumpout" 2>&1 && grep -q "type 0x88b5" "$dumpout"; then
	pass "logging link (phase 1 capture): $(grep -c "type 0x88b5" "$dumpout") frames decoded by ftbox dump ($dumpout)"
else
	fail "logging link: ftbox dump $out/log.pcap failed: $(tail -3 "$dumpout")"
fi
if [ -s "$STATE/log0.pcap" ]; then
	cp "$STATE/log0.pcap" "$out/log-from-start.pcap"
	dumpout=$out/log-from-start-dump.txt
	if "$FTBOX" dump "$out/log-from-start.pcap" --key "$STATE/pair.key" >"$dumpout" 2>&1 &&
		grep -q "input_frame.*10.77.0.100 > $GUEST_IP" "$dumpout"; then
		pass "logging link (from the pair's start): ftbox dump --key decrypts $(grep -c "input_frame" "$dumpout") logged input frames ($dumpout), e.g."
		grep -m 3 "input_frame.*10.77.0.100 > $GUEST_IP" "$dumpout" | sed 's/^ */      /'
	else
		fail "logging link: no decrypted input entries in ftbox dump $out/log-from-start.pcap: $(tail -3 "$dumpout")"
	fi
else
	fail "logging link: no capture from the pair's start ($STATE/log0.pcap; tools/lab up takes it)"
fi

# Phase 2: with --failover, kill the primary in the middle of the traffic.
switches=0 window=()
if [ "$failover" = 1 ]; then
	echo "--- phase 2: kill -9 the primary (box ${primary^^}) under traffic"
	ip netns exec ftclient ping -i 0.01 -w 4 -q "$GUEST_IP" >"$out/ping2.txt" 2>&1 &
	ping_pid=$!
	ip netns exec ftclient "$FTCOUNT" -q --name verify2 --duration 4s >"$out/count2.txt" 2>&1 &
	count_pid=$!
	sleep 1
	kill_at=$(now)
	"$LAB" kill "$primary" KILL >/dev/null
	live_at=''
	for _ in $(seq 200); do
		if is_live "$backup"; then live_at=$(now); break; fi
		sleep 0.02
	done
	wait "$ping_pid" || true
	wait "$count_pid" || true
	if [ -z "$live_at" ]; then
		fail "box ${backup^^} did not go live within 4 s of the kill"
		live_at=$(now)
	else
		pass "box ${backup^^} is live ($(role_of "$backup")) $(awk -v a="$kill_at" -v b="$live_at" 'BEGIN{printf "%.0f", (b-a)*1000}') ms after the kill (as polled)"
	fi
	grep -E "packets transmitted" "$out/ping2.txt" || true
	grep -E "^(requests|acknowledged|lost_acked_increments|client_gap):" "$out/count2.txt" | tr '\n' ' '; echo
	if grep -q "^lost_acked_increments: 0$" "$out/count2.txt"; then
		pass "UDP counter: no acknowledged increment lost across the failover"
	else
		fail "UDP counter: $(grep lost_acked "$out/count2.txt")"
	fi
	switches=1
	# Requests in flight at the kill may be lost; outputs in flight may be sent twice until shortly after go-live.
	window=(--window "$(awk -v a="$kill_at" 'BEGIN{printf "%.6f", a-0.2}'),$(awk -v b="$live_at" 'BEGIN{printf "%.6f", b+0.5}')")
else
	ip netns exec ftclient ping -c 50 -i 0.02 -q "$GUEST_IP" >"$out/ping2.txt" 2>&1 || true
fi
sleep 0.5
stop_capture lan
stop_capture a_out
stop_capture b_out

if "$FTVERIFY" lan --guest-ip "$GUEST_IP" "${window[@]}" "$out/lan.pcap" >"$out/lan-check.txt"; then
	pass "LAN: $(grep -E '^(requests|answered_once)' "$out/lan-check.txt" | tr '\n' ' ')— one reply per request$([ $failover = 1 ] && echo " outside the failover window")"
else
	fail "LAN: $(tr '\n' ' ' <"$out/lan-check.txt")"
fi
if "$FTVERIFY" sources --guest-mac "$GUEST_MAC" --max-switches "$switches" A="$out/a_out.pcap" B="$out/b_out.pcap" >"$out/sources-check.txt"; then
	pass "guest MAC sources: $(grep -v PASS "$out/sources-check.txt" | tr '\n' ' ')"
else
	fail "guest MAC sources: $(tr '\n' ' ' <"$out/sources-check.txt")"
fi
trap - EXIT
cleanup
if [ "$failed" = 0 ]; then echo "verify: all checks passed"; else echo "verify: some checks FAILED (captures in $out)"; fi
exit "$failed"
