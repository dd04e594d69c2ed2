package guestvm_test

import (
	"encoding/binary"
	"strings"
	"testing"

	"ftbox/guestvm"
	"ftbox/tools/guests"
)

func runGuest(t *testing.T, name string, cfg guestvm.Config, limit uint64) guestvm.Result {
	t.Helper()
	img, err := guests.Image(name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := guestvm.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Load(img); err != nil {
		t.Fatal(err)
	}
	res, err := m.RunOffline(limit)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestHelloWithBootargs(t *testing.T) {
	res := runGuest(t, "hello", guestvm.Config{Bootargs: "ip=10.77.0.20 quiet"}, 50_000_000)
	if res.Exit != guestvm.ExitPass {
		t.Fatalf("exit %v code %d: %s", res.Exit, res.Code, res.Console)
	}
	want := "hello from ftbox guest\r\nbootargs: ip=10.77.0.20 quiet\r\n" // picolibc maps \n to \r\n on the UART
	if string(res.Console) != want {
		t.Fatalf("console %q, want %q", res.Console, want)
	}
}

func TestSelftestPasses(t *testing.T) {
	res := runGuest(t, "selftest", guestvm.Config{}, 500_000_000)
	if res.Exit != guestvm.ExitPass || !strings.Contains(string(res.Console), "selftest: PASS") {
		t.Fatalf("exit %v code %d:\n%s", res.Exit, res.Code, res.Console)
	}
}

func TestRunStopsExactlyAtBound(t *testing.T) {
	img, _ := guests.Image("bench")
	m, err := guestvm.New(guestvm.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Load(img); err != nil {
		t.Fatal(err)
	}
	for _, b := range []uint64{1, 2, 3, 1000, 12345, 1_000_000} {
		if why := m.Run(b); why != guestvm.StopBound || m.ICount() != b {
			t.Fatalf("Run(%d) stopped with %v at %d", b, why, m.ICount())
		}
	}
}

func TestInjectRefusesWrongCountAndBadEvents(t *testing.T) {
	img, _ := guests.Image("netsvc")
	m, _ := guestvm.New(guestvm.Config{MemSize: 4 << 20})
	if err := m.Load(img); err != nil {
		t.Fatal(err)
	}
	m.Run(1000)
	before := m.Digest()
	bad := []guestvm.Event{
		{Kind: guestvm.EvFrame, ICount: 999, Data: make([]byte, 60)},
		{Kind: guestvm.EvFrame, ICount: 1000, Data: make([]byte, 13)},
		{Kind: guestvm.EvFrame, ICount: 1000, Data: make([]byte, 1519)},
		{Kind: guestvm.EvClock, ICount: 1000, RateNum: 1 << 40, RateDen: 1},
		{Kind: guestvm.EvConsole, ICount: 1000},
		{Kind: 99, ICount: 1000},
	}
	for _, ev := range bad {
		if _, err := m.Inject(ev); err == nil {
			t.Errorf("accepted bad event %+v", ev)
		}
	}
	if m.Digest() != before {
		t.Fatal("a refused event changed the machine")
	}
}

func TestLoadRejectsBadImages(t *testing.T) {
	m, _ := guestvm.New(guestvm.Config{})
	for _, img := range [][]byte{nil, []byte("MZ\x90\x00 not elf"), []byte("\x7fELF\x02\x01\x01")} {
		if err := m.Load(img); err == nil {
			t.Errorf("loaded %q", img)
		}
	}
	if _, err := guestvm.New(guestvm.Config{MemSize: 12345}); err == nil {
		t.Error("accepted an odd memory size")
	}
	if _, err := guestvm.New(guestvm.Config{MAC: [6]byte{1, 2, 3, 4, 5, 6}}); err == nil {
		t.Error("accepted a multicast MAC")
	}
}

func TestRestoreRejectsCorruptSnapshots(t *testing.T) {
	img, _ := guests.Image("hello")
	m, _ := guestvm.New(guestvm.Config{MemSize: 4 << 20})
	m.Load(img)
	m.Run(5000)
	s := m.Save()
	other, _ := guestvm.New(guestvm.Config{MemSize: 8 << 20})
	if err := other.Restore(s); err == nil {
		t.Error("restored into a machine of another size")
	}
	for _, cut := range []int{0, 10, len(s) / 2, len(s) - 1} {
		n, _ := guestvm.New(guestvm.Config{MemSize: 4 << 20})
		if err := n.Restore(s[:cut]); err == nil {
			t.Errorf("restored a snapshot truncated to %d bytes", cut)
		}
	}
	// A snapshot of an older format (version 1: no f registers) is refused
	// by name. The version follows the length-prefixed "ftbox-guestvm" tag.
	old := append([]byte(nil), s...)
	vo := 8 + len("ftbox-guestvm")
	binary.LittleEndian.PutUint32(old[vo:], 1)
	n, _ := guestvm.New(guestvm.Config{MemSize: 4 << 20})
	if err := n.Restore(old); err == nil || !strings.Contains(err.Error(), "snapshot format version 1") {
		t.Errorf("restore of a version 1 snapshot: %v", err)
	}
	n, _ = guestvm.New(guestvm.Config{MemSize: 4 << 20})
	if err := n.Restore(s); err != nil || n.Digest() != m.Digest() {
		t.Fatalf("good snapshot: %v", err)
	}
}

func BenchmarkBenchGuest(b *testing.B) {
	img, _ := guests.Image("bench")
	const slice = 50_000_000
	for b.Loop() {
		m, _ := guestvm.New(guestvm.Config{})
		if err := m.Load(img); err != nil {
			b.Fatal(err)
		}
		m.Run(slice)
	}
	b.ReportMetric(float64(slice)*float64(b.N)/b.Elapsed().Seconds()/1e6, "MIPS")
}
