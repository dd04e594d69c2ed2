package pkt

import (
	"bytes"
	"net"
	"testing"
)

var (
	a = Host{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, IP: net.IPv4(10, 77, 0, 1)}
	b = Host{MAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, IP: net.IPv4(10, 77, 0, 2)}
)

func TestBuildAndDecode(t *testing.T) {
	d := Decode(UDP(a, b, 1234, 7000, []byte("INCR x 1")))
	if d.UDP == nil || d.UDP.DstPort != 7000 || string(d.Payload) != "INCR x 1" || !d.ChecksumsOK {
		t.Fatalf("udp: %+v", d)
	}
	d = Decode(Ping(a, b, 7, 9, bytes.Repeat([]byte{0xab}, 101)))
	if d.ICMP == nil || d.ICMP.Id != 7 || len(d.Payload) != 101 || !d.ChecksumsOK {
		t.Fatalf("icmp: %+v", d)
	}
	d = Decode(ARPRequest(a, b.IP))
	if d.ARP == nil || !net.IP(d.ARP.DstProtAddress).Equal(b.IP.To4()) {
		t.Fatalf("arp: %+v", d)
	}
}

func TestChecksumsDetectCorruption(t *testing.T) {
	for _, f := range [][]byte{UDP(a, b, 1, 2, []byte("hello")), Ping(a, b, 1, 1, []byte("hello"))} {
		f[14+20+8] ^= 0x40 // first payload byte (short frames are padded to 60)
		if Decode(f).ChecksumsOK {
			t.Fatal("corrupted payload passed the checksum")
		}
	}
}
