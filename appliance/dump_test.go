package appliance

import (
	"bytes"
	"encoding/binary"
	"flag"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"ftbox/ftcore/logwire"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// Fixed key material, as in logwire's golden tests: the output depends on it.
var (
	dumpPSK = [KeySize]byte{
		0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
		0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
	}
	macP    = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	macB    = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0b}
	dumpT0  = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	guestHW = net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}
	cliHW   = net.HardwareAddr{0x52, 0x54, 0, 0xaa, 0xbb, 0xcc}
)

func dumpFill32(base byte) (a [32]byte) {
	for i := range a {
		a[i] = base + byte(i)
	}
	return a
}

func dumpSerialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// guestFrames returns an ICMP echo request, a UDP datagram of the given
// payload size and an ARP request, as a client would send them to the guest.
func guestFrames(t testing.TB, udpPayload int) (icmp, udp, arp []byte) {
	eth := func(et layers.EthernetType) *layers.Ethernet {
		return &layers.Ethernet{SrcMAC: cliHW, DstMAC: guestHW, EthernetType: et}
	}
	v4 := func(p layers.IPProtocol) *layers.IPv4 {
		return &layers.IPv4{Version: 4, TTL: 64, Protocol: p, SrcIP: net.IP{10, 77, 0, 100}, DstIP: net.IP{10, 77, 0, 10}}
	}
	ip := v4(layers.IPProtocolICMPv4)
	icmp = dumpSerialize(t, eth(layers.EthernetTypeIPv4), ip,
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 7, Seq: 1},
		gopacket.Payload(bytes.Repeat([]byte{0x5a}, 32)))
	ip = v4(layers.IPProtocolUDP)
	u := &layers.UDP{SrcPort: 40000, DstPort: 7777}
	u.SetNetworkLayerForChecksum(ip)
	udp = dumpSerialize(t, eth(layers.EthernetTypeIPv4), ip, u, gopacket.Payload(bytes.Repeat([]byte{'u'}, udpPayload)))
	e := eth(layers.EthernetTypeARP)
	e.DstMAC = layers.EthernetBroadcast
	arp = dumpSerialize(t, e, &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: layers.ARPRequest,
		SourceHwAddress: cliHW, SourceProtAddress: []byte{10, 77, 0, 100},
		DstHwAddress: make([]byte, 6), DstProtAddress: []byte{10, 77, 0, 10}})
	return icmp, udp, arp
}

type capFrame struct {
	src, dst net.HardwareAddr
	et       layers.EthernetType
	payload  []byte
	snap     int // >0: capture only this many bytes
}

// dumpCapture builds a logging-link capture: a handshake, data both ways,
// a fragmented input, and the kinds of bad frames a dump must survive.
func dumpCapture(t testing.TB) []capFrame {
	ep := func() *logwire.Endpoint {
		e, err := logwire.NewEndpoint(dumpPSK, logwire.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	epP, epB := ep(), ep()
	hp := logwire.Hello{Role: logwire.RolePrimary, Epoch: 7, Nonce: dumpFill32(0xa0)}
	hb := logwire.Hello{Role: logwire.RoleBackup, Epoch: 7, Nonce: dumpFill32(0xb0), Echo: hp.Nonce}
	helloP, err := epP.SealHello(nil, hp)
	if err != nil {
		t.Fatal(err)
	}
	helloB, err := epB.SealHello(nil, hb)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := epP.NewSession(hp, hb)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := epB.NewSession(hb, hp)
	if err != nil {
		t.Fatal(err)
	}
	seal := func(s *logwire.Session, ack, base uint64, es ...logwire.Entry) []byte {
		b := s.NewBatch(nil, ack, base)
		for _, e := range es {
			if err := b.Add(e); err != nil {
				t.Fatalf("add %T: %v", e, err)
			}
		}
		f, _, err := s.Seal(&b)
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Clone(f)
	}
	icmp, udp, arp := guestFrames(t, 1472)
	p2b := func(b []byte) capFrame { return capFrame{src: macP, dst: macB, et: logwire.EtherType, payload: b} }
	b2p := func(b []byte) capFrame { return capFrame{src: macB, dst: macP, et: logwire.EtherType, payload: b} }

	data1 := seal(sp, 0, 0,
		logwire.InputFrame{ICount: 1000, Frame: icmp},
		logwire.ClockSync{ICount: 1000, Time: 123456789, RateNum: 3, RateDen: 2},
		logwire.ConsoleInput{ICount: 2000, Data: []byte("ls -l\n")},
		logwire.Progress{ICount: 5000},
		logwire.ReleasedOutput{Watermark: 42},
		logwire.Digest{ICount: 4096, Sum: dumpFill32(0x40)},
		logwire.Heartbeat{Time: 99, ICount: 5000},
		logwire.InputFrame{ICount: 5100, Frame: arp},
	)
	ack := seal(sb, 8, 0,
		logwire.Ack{Seq: 8, ICount: 5000},
		logwire.Heartbeat{Time: 1 << 40, ICount: 4999},
		logwire.Digest{ICount: 4096, Sum: dumpFill32(0x40)},
	)
	frags, err := sp.Fragment(logwire.InputFrame{ICount: 6000, Frame: udp}, 8)
	if err != nil {
		t.Fatal(err)
	}
	if len(frags) != 2 {
		t.Fatalf("%d fragments", len(frags))
	}
	frag1 := seal(sp, 8, 8, frags[0])
	frag2 := seal(sp, 8, 8, frags[1])
	alarm := seal(sb, 9, 0, logwire.DivergenceAlarm{ICount: 6000, Local: dumpFill32(0x50), Remote: dumpFill32(0x60)})

	forged := bytes.Clone(data1)
	forged[logwire.HeaderLen+5] ^= 0x80
	binary.BigEndian.PutUint64(forged[20:], 100) // a fresh seq, so it is not refused as a replay first
	otherSess := bytes.Clone(ack)
	otherSess[8] ^= 0xff
	badVersion := bytes.Clone(ack)
	badVersion[2] = 9
	badHello := bytes.Clone(helloB)
	badHello[60] ^= 1
	return []capFrame{
		p2b(helloP),
		b2p(helloB),
		p2b(data1),
		b2p(ack),
		p2b(frag1),
		p2b(frag2),
		b2p(alarm),
		b2p(ack),                // replayed
		p2b(forged),             // tampered ciphertext
		b2p(otherSess),          // a session whose handshake is not in the capture
		b2p(badVersion),         // another protocol version
		b2p(badHello),           // a hello with a bad HMAC
		p2b([]byte("FT\x01")),   // too short
		p2b([]byte("garbage!")), // not logwire at all
		{src: cliHW, dst: layers.EthernetBroadcast, et: layers.EthernetTypeARP, payload: arp[14:]},                                               // stray ARP on the link
		{src: macP, dst: macB, et: logwire.EtherType, payload: seal(sp, 9, 9, logwire.Progress{ICount: 7000}), snap: 14 + logwire.HeaderLen + 4}, // snap length
	}
}

func dumpEthernet(f capFrame) []byte {
	b := append(append(append([]byte(nil), f.dst...), f.src...), byte(f.et>>8), byte(f.et))
	return append(b, f.payload...)
}

// captureBytes writes frames 1.25 ms apart, as pcapng (with directions:
// frames from the primary are outbound) or as classic pcap.
func captureBytes(t testing.TB, frames []capFrame, ng bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	var (
		nw  *pcapgo.NgWriter
		pw  *pcapgo.Writer
		err error
	)
	if ng {
		// Fixed section and interface options: the defaults name the host's
		// GOARCH, and the sample capture must not depend on the host.
		intf := pcapgo.NgInterface{Name: "log0", OS: "linux", LinkType: layers.LinkTypeEthernet, TimestampResolution: 9}
		opts := pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Application: "ftbox dump test"}}
		if nw, err = pcapgo.NewNgWriterInterface(&buf, intf, opts); err != nil {
			t.Fatal(err)
		}
	} else {
		pw = pcapgo.NewWriterNanos(&buf)
		if err := pw.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
			t.Fatal(err)
		}
	}
	for i, f := range frames {
		b := dumpEthernet(f)
		ci := gopacket.CaptureInfo{Timestamp: dumpT0.Add(time.Duration(i) * 1250 * time.Microsecond), Length: len(b), CaptureLength: len(b)}
		if f.snap > 0 {
			b = b[:f.snap]
			ci.CaptureLength = f.snap
		}
		if pw != nil {
			err = pw.WritePacket(ci, b)
		} else {
			dir := pcapgo.NgEpbFlagDirectionInbound
			if bytes.Equal(f.src, macP) {
				dir = pcapgo.NgEpbFlagDirectionOutbound
			}
			err = nw.WritePacketWithOptions(ci, b, pcapgo.NgPacketOptions{Flags: &pcapgo.NgEpbFlags{Direction: dir}})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if nw != nil {
		if err := nw.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func runDump(t *testing.T, capture []byte, psk *[KeySize]byte) (string, DumpStats) {
	t.Helper()
	var out bytes.Buffer
	st, err := Dump(&out, bytes.NewReader(capture), DumpOptions{PSK: psk})
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), st
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./appliance -run Dump -update to create)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test ./appliance -run Dump -update after checking):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestDumpGolden(t *testing.T) {
	frames := dumpCapture(t)
	ng := captureBytes(t, frames, true)
	psk := dumpPSK

	// The capture itself is kept too (for `ftbox dump` by hand and for the
	// lab's capture checks); it must match what the encoder makes today.
	capPath := filepath.Join("testdata", "dump_sample.pcapng")
	if *update {
		if err := os.WriteFile(capPath, ng, 0o644); err != nil {
			t.Fatal(err)
		}
	} else if b, err := os.ReadFile(capPath); err != nil || !bytes.Equal(b, ng) {
		t.Errorf("%s is stale or missing (%v): run with -update", capPath, err)
	}

	withKey, st := runDump(t, ng, &psk)
	golden(t, "dump_key", withKey)
	want := DumpStats{Frames: 16, Log: 15, Hellos: 3, Decrypted: 5, Encrypted: 2, Rejected: 3, Undecodable: 3, Other: 1}
	if st != want {
		t.Errorf("stats with key\n got %+v\nwant %+v", st, want)
	}
	noKey, st := runDump(t, ng, nil)
	golden(t, "dump_nokey", noKey)
	if st.Decrypted != 0 || st.Encrypted != 9 || st.Hellos != 3 {
		t.Errorf("stats without key %+v", st)
	}

	// The classic pcap format gives the same dump, without directions.
	classic, _ := runDump(t, captureBytes(t, frames, false), &psk)
	strip := func(s string) string {
		s = strings.Replace(s, "capture: pcapng", "capture: pcap", 1)
		return regexp.MustCompile(`(?m)^(#\d+ \S+) (in|out) `).ReplaceAllString(s, "$1 ")
	}
	if strip(withKey) != classic {
		t.Errorf("pcap and pcapng dumps differ:\n%s\n---\n%s", classic, strip(withKey))
	}

	// A wrong key decrypts nothing and says why.
	wrong := arbTestKey(0x77)
	out, st := runDump(t, ng, &wrong)
	if st.Decrypted != 0 || !strings.Contains(out, "REJECTED (bad_tag)") {
		t.Errorf("wrong key: %+v\n%s", st, out)
	}
}

func TestDumpTruncatedAndBad(t *testing.T) {
	psk := dumpPSK
	ng := captureBytes(t, dumpCapture(t), true)
	for cut := len(ng) - 1; cut > len(ng)-300; cut -= 37 {
		var out bytes.Buffer
		if _, err := Dump(&out, bytes.NewReader(ng[:cut]), DumpOptions{PSK: &psk}); err != nil && !strings.Contains(err.Error(), "read record") {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		if !strings.Contains(out.String(), "frames:") {
			t.Fatalf("cut at %d: no summary:\n%s", cut, out.String())
		}
	}
	for _, b := range [][]byte{nil, []byte("not a capture at all"), {0x0a, 0x0d, 0x0d, 0x0a, 1, 2}} {
		if _, err := Dump(&bytes.Buffer{}, bytes.NewReader(b), DumpOptions{}); err == nil {
			t.Errorf("%q: no error", b)
		}
	}
}

// FuzzDump feeds arbitrary logging-link payloads (after a genuine
// handshake, so the decrypting paths run) through Dump.
func FuzzDump(f *testing.F) {
	frames := dumpCapture(f)
	for _, fr := range frames {
		f.Add(fr.payload)
	}
	hs := frames[:2]
	psk := dumpPSK
	f.Fuzz(func(t *testing.T, payload []byte) {
		fs := append(append([]capFrame(nil), hs...), capFrame{src: macP, dst: macB, et: logwire.EtherType, payload: payload},
			capFrame{src: macB, dst: macP, et: logwire.EtherType, payload: payload})
		capture := captureBytes(t, fs, true)
		var out bytes.Buffer
		st, err := Dump(&out, bytes.NewReader(capture), DumpOptions{PSK: &psk})
		if err != nil || st.Frames != 4 {
			t.Fatalf("%v %+v", err, st)
		}
		summarizeFrame(payload, true)
	})
}
