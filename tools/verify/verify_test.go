package verify

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"ftbox/tools/pkt"
)

var (
	client = pkt.Host{MAC: net.HardwareAddr{2, 0xf7, 0x0d, 0, 0, 0x10}, IP: net.IPv4(10, 77, 0, 100)}
	guest  = pkt.Host{MAC: net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}, IP: net.IPv4(10, 77, 0, 10)}
	t0     = time.Unix(1_700_000_000, 0)
)

func ms(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }

func writePcap(t *testing.T, frames []Frame) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(65536, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	for _, fr := range frames {
		ci := gopacket.CaptureInfo{Timestamp: fr.At, CaptureLength: len(fr.Data), Length: len(fr.Data)}
		if err := w.WritePacket(ci, fr.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// conversation: a request every 10 ms for 1 s, ping and counter alternating;
// replies 1 ms later, except that requests in [dropFrom, dropTo) get none and
// the ones in dup get two.
func conversation(dropFrom, dropTo int, dup map[int]bool) []Frame {
	var fs []Frame
	for i := 0; i < 100; i++ {
		at := i * 10
		var req, rep []byte
		if i%2 == 0 {
			req = pkt.Ping(client, guest, 7, uint16(i), []byte("x"))
			rep = pkt.Ping(guest, client, 7, uint16(i), []byte("x")) // same id/seq; type fixed below
			rep[14+20] = 0                                           // echo reply
		} else {
			req = pkt.UDP(client, guest, 40000, 7000, []byte(fmt.Sprintf("INCR c q%d", i)))
			rep = pkt.UDP(guest, client, 7000, 40000, []byte(fmt.Sprintf("q%d %d", i, i)))
		}
		fs = append(fs, Frame{ms(at), req})
		if at >= dropFrom && at < dropTo {
			continue
		}
		fs = append(fs, Frame{ms(at + 1), rep})
		if dup[i] {
			fs = append(fs, Frame{ms(at + 2), rep})
		}
	}
	return fs
}

func TestCheckLANClean(t *testing.T) {
	frames, err := ReadFile(writePcap(t, conversation(0, 0, nil)))
	if err != nil {
		t.Fatal(err)
	}
	r, err := CheckLAN(frames, LANOptions{GuestIP: guest.IP})
	if err != nil {
		t.Fatalf("%v\n%s", err, r)
	}
	if r.Requests < 80 || r.Answered != r.Requests {
		t.Fatalf("requests %d answered %d", r.Requests, r.Answered)
	}
}

func TestCheckLANFailoverWindow(t *testing.T) {
	frames := conversation(300, 400, map[int]bool{40: true, 41: true})
	// Anomalies confined to 300..410 ms: fine with a 200 ms budget, not with 50 ms.
	r, err := CheckLAN(frames, LANOptions{GuestIP: guest.IP, MaxWindow: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("%v\n%s", err, r)
	}
	if len(r.Unanswered) != 10 || len(r.Duplicated) != 2 {
		t.Fatalf("unanswered %d duplicated %d, want 10 and 2", len(r.Unanswered), len(r.Duplicated))
	}
	if _, err := CheckLAN(frames, LANOptions{GuestIP: guest.IP, MaxWindow: 50 * time.Millisecond}); err == nil {
		t.Fatal("a 110 ms window passed a 50 ms budget")
	}
	// An explicit window that does not cover a duplicate.
	_, err = CheckLAN(frames, LANOptions{GuestIP: guest.IP, Window: Window{ms(290), ms(405)}})
	if err == nil || !strings.Contains(err.Error(), "outside") {
		t.Fatalf("duplicate at 410 ms outside the window: err = %v", err)
	}
	if _, err := CheckLAN(frames, LANOptions{GuestIP: guest.IP, Window: Window{ms(290), ms(420)}}); err != nil {
		t.Fatal(err)
	}
}

func TestCheckLANNoAnomalyAllowedWithoutWindow(t *testing.T) {
	if _, err := CheckLAN(conversation(500, 510, nil), LANOptions{GuestIP: guest.IP}); err == nil {
		t.Fatal("an unanswered request passed with no failover allowed")
	}
}

func TestCheckSources(t *testing.T) {
	g := func(ms_ int) Frame { return Frame{ms(ms_), pkt.UDP(guest, client, 7000, 40000, []byte("q1 1"))} }
	other := Frame{ms(5), pkt.UDP(client, guest, 40000, 7000, []byte("INCR c q1"))}
	a := []Frame{g(1), g(2), other, g(3)}
	b := []Frame{g(10), g(11)}
	r, err := CheckSources([]string{"A", "B"}, [][]Frame{a, b}, guest.MAC, 1)
	if err != nil || r.Switches != 1 || r.Count[0] != 3 || r.Count[1] != 2 {
		t.Fatalf("clean failover: %v\n%s", err, r)
	}
	if _, err := CheckSources([]string{"A", "B"}, [][]Frame{a, b}, guest.MAC, 0); err == nil {
		t.Fatal("a failover passed with none allowed")
	}
	a = append(a, g(12)) // A still sourcing after B went live
	if _, err := CheckSources([]string{"A", "B"}, [][]Frame{a, b}, guest.MAC, 1); err == nil {
		t.Fatal("interleaved sources passed")
	}
	if n := CountFrom(a, guest.MAC); n != 4 {
		t.Fatalf("CountFrom = %d, want 4", n)
	}
}

func TestReadFileEmpty(t *testing.T) {
	p := filepath.Join(t.TempDir(), "empty.pcap")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(p); err == nil {
		t.Fatal("an empty file read as a capture")
	}
}
