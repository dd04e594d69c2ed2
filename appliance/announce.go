package appliance

import (
	"bytes"
	"encoding/binary"
	"net"
	"strings"
	"time"
)

// AnnounceSchedule is when, after going live, the new primary announces the
// guest's MAC so the LAN's switches learn the guest's new port: at once
// (until a switch relearns, client traffic still goes to the dead box, so
// every millisecond counts), then QEMU's announce-self defaults (initial
// 50 ms, step 100 ms, 5 rounds) in case the first burst is lost.
var AnnounceSchedule = []time.Duration{
	0, 50 * time.Millisecond, 150 * time.Millisecond, 250 * time.Millisecond,
	350 * time.Millisecond, 450 * time.Millisecond,
}

const (
	etherTypeARP  = 0x0806
	etherTypeRARP = 0x8035
	etherTypeIPv4 = 0x0800
	minFrame      = 60 // Ethernet minimum without FCS
)

var broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// arpFrame builds an ARP-format frame (ARP or RARP) padded to 60 bytes.
func arpFrame(etherType, op uint16, sha net.HardwareAddr, spa net.IP, tha net.HardwareAddr, tpa net.IP) []byte {
	f := make([]byte, minFrame)
	copy(f[0:6], broadcastMAC)
	copy(f[6:12], sha)
	binary.BigEndian.PutUint16(f[12:14], etherType)
	a := f[14:]
	binary.BigEndian.PutUint16(a[0:2], 1) // Ethernet
	binary.BigEndian.PutUint16(a[2:4], etherTypeIPv4)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:8], op)
	copy(a[8:14], sha)
	if v4 := spa.To4(); v4 != nil {
		copy(a[14:18], v4)
	}
	copy(a[18:24], tha)
	if v4 := tpa.To4(); v4 != nil {
		copy(a[24:28], v4)
	}
	return f
}

// RARPAnnounce is the frame QEMU's announce-self sends: a broadcast RARP
// "reverse request" from mac for mac.
func RARPAnnounce(mac net.HardwareAddr) []byte {
	return arpFrame(etherTypeRARP, 3, mac, nil, mac, nil)
}

// GARP is a gratuitous ARP request from mac for its own address ip.
func GARP(mac net.HardwareAddr, ip net.IP) []byte {
	return arpFrame(etherTypeARP, 1, mac, ip, make(net.HardwareAddr, 6), ip)
}

// announceFrames is one round of announcements: RARP always, GARP if the
// guest's IPv4 address is known.
func announceFrames(mac net.HardwareAddr, ip net.IP) [][]byte {
	fs := [][]byte{RARPAnnounce(mac)}
	if ip.To4() != nil && !ip.IsUnspecified() {
		fs = append(fs, GARP(mac, ip))
	}
	return fs
}

// announcer schedules announcement rounds after a go-live.
type announcer struct {
	due []time.Duration // absolute times of the rounds still to send
}

func (a *announcer) start(now time.Duration, sched []time.Duration) {
	a.due = a.due[:0]
	for _, d := range sched {
		a.due = append(a.due, now+d)
	}
}

// take reports how many rounds are due at now and drops them.
func (a *announcer) take(now time.Duration) int {
	n := 0
	for n < len(a.due) && a.due[n] <= now {
		n++
	}
	a.due = a.due[n:]
	return n
}

// next is the time of the next round (0: none).
func (a *announcer) next() time.Duration {
	if len(a.due) == 0 {
		return 0
	}
	return a.due[0]
}

// learnGuestIP returns the IPv4 address a frame from the guest (source MAC
// mac) shows the guest using, or nil.
func learnGuestIP(f []byte, mac net.HardwareAddr) net.IP {
	if len(f) < 14 || !bytes.Equal(f[6:12], mac) {
		return nil
	}
	switch binary.BigEndian.Uint16(f[12:14]) {
	case etherTypeARP:
		a := f[14:]
		if len(a) >= 28 && binary.BigEndian.Uint16(a[2:4]) == etherTypeIPv4 && a[4] == 6 && a[5] == 4 && bytes.Equal(a[8:14], mac) {
			ip := net.IP(append([]byte(nil), a[14:18]...))
			if !ip.IsUnspecified() {
				return ip
			}
		}
	case etherTypeIPv4:
		h := f[14:]
		if len(h) >= 20 && h[0]>>4 == 4 {
			ip := net.IP(append([]byte(nil), h[12:16]...))
			if !ip.IsUnspecified() && !ip.IsMulticast() {
				return ip
			}
		}
	}
	return nil
}

// bootargsIP reads "ip=A.B.C.D…" from a guest command line.
func bootargsIP(s string) net.IP {
	for _, w := range strings.Fields(s) {
		v, ok := strings.CutPrefix(w, "ip=")
		if !ok {
			continue
		}
		if i := strings.IndexAny(v, "/:"); i >= 0 {
			v = v[:i]
		}
		if ip := net.ParseIP(v).To4(); ip != nil {
			return ip
		}
	}
	return nil
}
