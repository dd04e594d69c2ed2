#!/bin/bash
# End-to-end check of bin/netsvc.elf under QEMU (run as root).
# Creates a network namespace with a tap device (host side 10.77.0.1/24), boots
# netsvc in QEMU inside that namespace, then checks ARP, ping (incl. 1472-byte
# payloads), UDP echo (port 7) and the counter service (port 7000).
# Everything it creates is removed on exit.
#   usage: qemu-net-check.sh [path/to/netsvc.elf]
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ELF=${1:-$HERE/bin/netsvc.elf}
NS=ftbox-gtest-$$
TAP=tapg$$
TAP=${TAP:0:15}
HOSTIP=10.77.0.1
GUESTIP=10.77.0.20          # set via bootargs (-append) to exercise the override
MAC=52:54:00:12:34:56
LOG=$(mktemp)
QPID=

cleanup() {
	if [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; then
		kill "$QPID" 2>/dev/null
		wait "$QPID" 2>/dev/null
	fi
	ip netns del "$NS" 2>/dev/null
	rm -f "$LOG"
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; echo "--- guest console ---"; cat "$LOG"; exit 1; }

[ "$(id -u)" = 0 ] || { echo "must run as root"; exit 2; }
[ -f "$ELF" ] || { echo "no $ELF"; exit 2; }

ip netns add "$NS" || exit 1
ip netns exec "$NS" ip link set lo up
ip netns exec "$NS" ip tuntap add "$TAP" mode tap || fail "tuntap"
ip netns exec "$NS" ip addr add "$HOSTIP/24" dev "$TAP"
ip netns exec "$NS" ip link set "$TAP" up

ip netns exec "$NS" qemu-system-riscv64 -machine virt -bios none -nographic -monitor none -serial "file:$LOG" \
	-global virtio-mmio.force-legacy=false \
	-netdev tap,id=n0,ifname="$TAP",script=no,downscript=no \
	-device virtio-net-device,netdev=n0,mac=$MAC \
	-append "ip=$GUESTIP" -kernel "$ELF" </dev/null >/dev/null 2>&1 &
QPID=$!

for i in $(seq 50); do
	grep -q "up" "$LOG" 2>/dev/null && break
	sleep 0.1
done
grep -q "netsvc: $GUESTIP mac $MAC up" "$LOG" || fail "no start line"
echo "guest: $(tr -d '\r' < "$LOG" | head -1)"

ip netns exec "$NS" ping -c 3 -i 0.2 -W 2 "$GUESTIP" >/dev/null || fail "ping"
echo "ok: ping"
ip netns exec "$NS" ping -c 3 -i 0.2 -W 2 -s 1472 -M do "$GUESTIP" >/dev/null || fail "ping -s 1472"
echo "ok: ping -s 1472"
ip netns exec "$NS" ping -c 2 -i 0.2 -W 2 -s 0 "$GUESTIP" >/dev/null || fail "ping -s 0"
echo "ok: ping -s 0"
ip netns exec "$NS" ip neigh show "$GUESTIP" dev "$TAP" | grep -qi "$MAC" || fail "arp entry"
echo "ok: arp ($MAC)"

ip netns exec "$NS" python3 - "$GUESTIP" "$TAP" "$MAC" <<'PY' || fail "udp"
import socket, sys
ip = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
def rt(port, data):
    s.sendto(data, (ip, port))
    d, a = s.recvfrom(4096)
    assert a == (ip, port), a
    return d
for data in [b"x", b"hello ftbox", bytes(range(256)) * 5, b"A" * 1472]:
    got = rt(7, data)
    assert got == data, (len(got), len(data))
print("ok: udp echo (1..1472 bytes)")
exp = [
    (b"GET foo 1", b"1 0"),
    (b"INCR foo 2", b"2 1"),
    (b"INCR foo 3", b"3 2"),
    (b"INCR bar r4\n", b"r4 1"),
    (b"GET foo 5\r\n", b"5 2"),
    (b"INCR  foo\t6", b"6 3"),
    (b"GET bar 7", b"7 1"),
    (b"PUT foo 8", b"ERR malformed"),
    (b"INCR foo", b"ERR malformed"),
    (b"INCR foo 9 extra", b"ERR malformed"),
    (b"INCR " + b"n" * 64 + b" 10", b"ERR malformed"),
    (b"INCR " + b"n" * 63 + b" 11", b"11 1"),
]
for req, want in exp:
    got = rt(7000, req)
    assert got == want, (req, got, want)
for i in range(1, 201):
    assert rt(7000, b"INCR many %d" % i) == b"%d %d" % (i, i)
print("ok: counter service (%d requests)" % (len(exp) + 200))
# fill the 4096-entry table (4 names exist: foo, bar, n*63, many)
for i in range(4096 - 4):
    assert rt(7000, b"INCR fill%d q%d" % (i, i)) == b"q%d 1" % i
assert rt(7000, b"INCR onemore x") == b"ERR full"
assert rt(7000, b"GET onemore y") == b"y 0"
assert rt(7000, b"INCR foo z") == b"z 4"
assert rt(7000, b"GET fill4091 w") == b"w 1"
print("ok: counter table full -> ERR full, existing names still work")

# things that must be ignored: bad UDP checksum, IP fragments, bad IP header checksum
import struct
def csum(b):
    if len(b) % 2: b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16: t = (t & 0xffff) + (t >> 16)
    return (~t) & 0xffff
src = socket.inet_aton("10.77.0.1")
dst = socket.inet_aton(ip)
sport = s.getsockname()[1]
def udp_pkt(payload, bad_udp=False, frag=0, bad_ip=False):
    ulen = 8 + len(payload)
    u = struct.pack("!HHHH", sport, 7, ulen, 0) + payload
    c = csum(src + dst + struct.pack("!BBH", 0, 17, ulen) + u) or 0xffff
    if bad_udp: c ^= 0x5a5a
    u = u[:6] + struct.pack("!H", c) + u[8:]
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, 1, frag, 64, 17, 0, src, dst)
    hc = csum(h)
    if bad_ip: hc ^= 0x1111
    return h[:10] + struct.pack("!H", hc) + h[12:] + u
r = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
r.bind((sys.argv[2], 0))
eth = bytes.fromhex(sys.argv[3].replace(":", "")) + r.getsockname()[4][:6] + b"\x08\x00"
s.settimeout(0.5)
for name, pkt in [("bad udp checksum", udp_pkt(b"bad", bad_udp=True)),
                  ("fragment (MF)", udp_pkt(b"frag", frag=0x2000)),
                  ("bad ip checksum", udp_pkt(b"badip", bad_ip=True))]:
    r.send(eth + pkt)
    try:
        d = s.recv(4096)
        raise SystemExit("reply to %s: %r" % (name, d))
    except socket.timeout:
        pass
r.send(eth + udp_pkt(b"good"))
s.settimeout(2)
assert s.recv(4096) == b"good"
print("ok: ignored bad UDP checksum, IP fragment, bad IP checksum; raw good packet echoed")
PY
kill -0 "$QPID" 2>/dev/null || fail "qemu exited"
echo "PASS"
