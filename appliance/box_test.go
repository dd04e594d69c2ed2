package appliance

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ftbox/bpf"
	"ftbox/ftcore"
	"ftbox/tap"
	"ftbox/tools/guests"
	"ftbox/tools/pkt"
)

// fakeGate stands in for the eBPF gate on a Pipe "TAP": it counts what the
// real gate would pass or drop.
type fakeGate struct {
	mu   sync.Mutex
	pass bool
	st   bpf.GateStats
}

func (g *fakeGate) SetPass(p bool) error { g.mu.Lock(); g.pass = p; g.mu.Unlock(); return nil }
func (g *fakeGate) Stats() (bpf.GateStats, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.st, nil
}
func (g *fakeGate) Hook() string { return "fake" }
func (g *fakeGate) Close() error { return nil }

// gatedPort is the TAP side of a Pipe with the gate applied to writes.
type gatedPort struct {
	tap.Port
	g *fakeGate
}

func (p gatedPort) WriteFrame(f []byte) error {
	p.g.mu.Lock()
	pass := p.g.pass
	if pass {
		p.g.st.PassedFrames++
	} else {
		p.g.st.DroppedFrames++
	}
	p.g.mu.Unlock()
	if !pass {
		return nil
	}
	return p.Port.WriteFrame(f)
}

func testConfig(t *testing.T, name, role, peerMAC, key string) *Config {
	t.Helper()
	return testConfigLAN(t, name, role, peerMAC, key, "")
}

// testConfigLAN is testConfig with extra lines in [lan].
func testConfigLAN(t *testing.T, name, role, peerMAC, key, lan string) *Config {
	t.Helper()
	c, err := ParseConfig(fmt.Appendf(nil, `
[box]
name = %q
preferred_role = %q
control_socket = %q
[lan]
tap = "tap0"
%s
[log_link]
interface = "log0"
peer_mac = %q
key_file = %q
[guest]
image = "netsvc"
mac = "52:54:00:12:34:56"
memory = "4M"
[heartbeat]
interval = "10ms"
timeout = %q
`, name, role, filepath.Join(t.TempDir(), "ftbox.sock"), lan, peerMAC, key, testHeartbeatTimeout)) // generous: -race and a busy CI slow the loops
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var (
	testClient = pkt.Host{MAC: net.HardwareAddr{0x02, 0, 0, 0, 0, 0x64}, IP: net.IPv4(10, 77, 0, 100)}
	testGuest  = pkt.Host{MAC: net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}, IP: net.IPv4(10, 77, 0, 10)}
)

type pipePair struct {
	a, b         *Box
	lanA, lanB   tap.Port // the LAN's ends of the boxes' TAPs
	gateA, gateB *fakeGate
	arb          *ftcore.MemArbiter
	logCut       *atomic.Bool // the logging link's cable pulled (both ways)
	logBRaw      tap.Port     // B's end of the logging link, uncut: writes reach A
	lanPathCut   *atomic.Bool // the second path pulled (both ways)
}

// cuttablePort drops every frame written while cut is set: a pulled cable
// when both ends are wrapped.
type cuttablePort struct {
	tap.Port
	cut *atomic.Bool
}

func (p cuttablePort) WriteFrame(f []byte) error {
	if p.cut.Load() {
		return nil
	}
	return p.Port.WriteFrame(f)
}

func newPipePair(t *testing.T, arbiter bool) *pipePair {
	t.Helper()
	return newPipePairOpts(t, arbiter, false)
}

// newPipePairOpts builds a pair on pipes; with lanPath, a second pipe
// carries the second heartbeat path (lan.heartbeat_interface).
func newPipePairOpts(t *testing.T, arbiter, lanPath bool) *pipePair {
	t.Helper()
	img, err := guests.Image("netsvc")
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(t.TempDir(), "pair.key")
	if err := GenerateKey(key); err != nil {
		t.Fatal(err)
	}
	macA, macB := net.HardwareAddr{2, 0, 0, 0, 0, 0xa}, net.HardwareAddr{2, 0, 0, 0, 0, 0xb}
	logA, logB := tap.Pipe(4096)
	tapA, lanA := tap.Pipe(1024)
	tapB, lanB := tap.Pipe(1024)
	pathA, pathB := tap.Pipe(256)
	pp := &pipePair{logBRaw: logB, lanA: lanA, lanB: lanB, gateA: &fakeGate{}, gateB: &fakeGate{}, logCut: new(atomic.Bool), lanPathCut: new(atomic.Bool)}
	var arb Arbiter
	if arbiter {
		pp.arb = &ftcore.MemArbiter{}
		arb = CoreArbiter{pp.arb}
	}
	// The boxes' MACs on the LAN (the second path's addresses).
	lanMACA, lanMACB := net.HardwareAddr{2, 0, 0, 0, 1, 0xa}, net.HardwareAddr{2, 0, 0, 0, 1, 0xb}
	mk := func(name, role string, peer, mine, lanPeer, lanMine net.HardwareAddr, tp, lp, path tap.Port, g *fakeGate) *Box {
		opts := BoxOptions{
			Image: img, Arbiter: arb, TAP: gatedPort{tp, g}, LogPort: cuttablePort{lp, pp.logCut}, LogMAC: mine, Gate: g,
			Notify: func(string) error { return nil }, Log: testLog(t),
		}
		extra := ""
		if lanPath {
			extra = fmt.Sprintf("heartbeat_interface = \"br0\"\nheartbeat_peer_mac = %q", lanPeer)
			opts.LANPath, opts.LANPathMAC = cuttablePort{path, pp.lanPathCut}, lanMine
		}
		b, err := NewBox(testConfigLAN(t, name, role, peer.String(), key, extra), opts)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pp.a = mk("A", "primary", macB, macA, lanMACB, lanMACA, tapA, logA, pathA, pp.gateA)
	pp.b = mk("B", "backup", macA, macB, lanMACA, lanMACB, tapB, logB, pathB, pp.gateB)
	for _, b := range []*Box{pp.a, pp.b} {
		go func() {
			if err := b.Run(context.Background()); err != nil {
				t.Error(err)
			}
		}()
		t.Cleanup(func() { b.Close() })
	}
	return pp
}

func waitStatus(t *testing.T, b *Box, what string, ok func(*Status) bool) *Status {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, err := b.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			var sb strings.Builder
			s.WriteText(&sb)
			t.Fatalf("%s: not %s after 30s:\n%s", s.Box, what, sb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// exchange sends a frame into the LAN end and waits for a reply matching ok.
func exchange(t *testing.T, lan tap.Port, req []byte, ok func(pkt.Decoded) bool) (pkt.Decoded, bool) {
	t.Helper()
	got := make(chan pkt.Decoded, 16)
	done := make(chan struct{})
	defer close(done)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, err := lan.ReadFrame(buf)
			if err != nil {
				return
			}
			d := pkt.Decode(append([]byte(nil), buf[:n]...))
			select {
			case got <- d:
			case <-done:
				return
			}
			select {
			case <-done:
				return
			default:
			}
		}
	}()
	if err := lan.WriteFrame(req); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(2 * time.Second)
	for {
		select {
		case d := <-got:
			if ok(d) {
				return d, true
			}
		case <-timeout:
			return pkt.Decoded{}, false
		}
	}
}

func TestBoxPipesProtectedAndServes(t *testing.T) {
	pp := newPipePair(t, true)
	waitStatus(t, pp.a, "PROTECTED", func(s *Status) bool { return s.Protection == Protected })
	waitStatus(t, pp.b, "PROTECTED", func(s *Status) bool { return s.Protection == Protected })
	d, ok := exchange(t, pp.lanA, pkt.UDP(testClient, testGuest, 4000, 7000, []byte("INCR c r1")), func(d pkt.Decoded) bool {
		return d.UDP != nil && d.UDP.SrcPort == 7000
	})
	if !ok || string(d.Payload) != "r1 1" {
		t.Fatalf("INCR through the primary: ok=%v reply %q", ok, d.Payload)
	}
	sa := waitStatus(t, pp.a, "released", func(s *Status) bool { return s.Counters.LANFramesOut >= 1 })
	sb := waitStatus(t, pp.b, "replica dropped", func(s *Status) bool { return s.Gate.DroppedFrames >= 1 })
	var txt strings.Builder
	sa.WriteText(&txt)
	sb.WriteText(&txt)
	t.Log("\n" + txt.String())
	if sa.ExitCode != ExitOK || sb.ExitCode != ExitOK {
		t.Fatalf("exit codes %d %d", sa.ExitCode, sb.ExitCode)
	}
}

// TestBoxReportsProtocolMismatch: frames of another logging-link protocol
// version (one box upgraded, the other not) are refused and status says why.
func TestBoxReportsProtocolMismatch(t *testing.T) {
	pp := newPipePair(t, true)
	waitStatus(t, pp.a, "PROTECTED", func(s *Status) bool { return s.Protection == Protected })
	f := make([]byte, 14+64)
	copy(f, net.HardwareAddr{2, 0, 0, 0, 0, 0xa})
	copy(f[6:], net.HardwareAddr{2, 0, 0, 0, 0, 0xb})
	f[12], f[13] = 0x88, 0xb5
	f[14], f[15], f[16] = 0x46, 0x54, 9 // magic "FT", version 9
	stop := make(chan struct{})
	defer close(stop)
	go func() { // a peer that keeps talking v9
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
				pp.logBRaw.WriteFrame(f)
			}
		}
	}()
	s := waitStatus(t, pp.a, "protocol mismatch", func(s *Status) bool {
		return len(s.Problems) > 0 && strings.Contains(s.Problems[0], "PROTOCOL MISMATCH: the peer speaks logging-link protocol v9")
	})
	if s.ExitCode != ExitCritical || s.Counters.LogFramesRejected["unknown_version"] == 0 {
		t.Fatalf("exit %d, rejected %v", s.ExitCode, s.Counters.LogFramesRejected)
	}
}

type tlogWriter struct{ t *testing.T }

func (w tlogWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestBoxPipesFailover(t *testing.T) {
	pp := newPipePair(t, true)
	waitStatus(t, pp.a, "PROTECTED", func(s *Status) bool { return s.Protection == Protected })
	waitStatus(t, pp.b, "PROTECTED", func(s *Status) bool { return s.Protection == Protected })
	incr := func(lan tap.Port, id string) string {
		d, ok := exchange(t, lan, pkt.UDP(testClient, testGuest, 4000, 7000, []byte("INCR c "+id)), func(d pkt.Decoded) bool {
			return d.UDP != nil && d.UDP.SrcPort == 7000 && strings.HasPrefix(string(d.Payload), id+" ")
		})
		if !ok {
			t.Fatalf("no reply to %s", id)
		}
		return string(d.Payload)
	}
	if got := incr(pp.lanA, "r1"); got != "r1 1" {
		t.Fatalf("got %q", got)
	}
	pp.a.Close()
	s := waitStatus(t, pp.b, "live", func(s *Status) bool { return s.Role == "UNPROTECTED" && s.Counters.Announcements >= 5 })
	if !s.Gate.Pass || s.LastFailover == nil || s.LastFailover.Result != "went live" || s.Epoch != 2 {
		t.Fatalf("after failover: %+v %+v", s.Gate, s.LastFailover)
	}
	if got := incr(pp.lanB, "r2"); got != "r2 2" {
		t.Fatalf("after failover got %q, want r2 2", got)
	}
	var sb strings.Builder
	s.WriteText(&sb)
	t.Log("\n" + sb.String())
	if s.ExitCode != ExitWarning {
		t.Fatalf("exit code %d", s.ExitCode)
	}
}

func TestBoxPipesNoArbiter(t *testing.T) {
	pp := newPipePair(t, false)
	s := waitStatus(t, pp.a, "PROTECTED", func(s *Status) bool { return s.Protection == Protected })
	if s.ExitCode != ExitWarning || !strings.Contains(strings.Join(s.Problems, "\n"), "no arbiter configured") {
		t.Fatalf("protected without an arbiter: %d %q", s.ExitCode, s.Problems)
	}
	waitStatus(t, pp.b, "PROTECTED", func(s *Status) bool { return s.Protection == Protected })
	pp.a.Close()
	s = waitStatus(t, pp.b, "stuck", func(s *Status) bool { return s.Role == "GOING_LIVE" && s.ExitCode == ExitCritical })
	if s.Gate.Pass || !strings.Contains(strings.Join(s.Problems, "\n"), "NO ARBITER") || s.LastFailover == nil {
		t.Fatalf("peer lost without an arbiter:\n%s", statusText(s))
	}
	t.Log("\n" + statusText(s))
}

// TestColdStartWaitsForPeer: by default a box that has never heard its peer
// does not go on alone (its fresh guest could otherwise win an epoch from a
// peer holding the real state); it waits, says so, and claims nothing.
func TestColdStartWaitsForPeer(t *testing.T) {
	img, err := guests.Image("netsvc")
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(t.TempDir(), "pair.key")
	if err := GenerateKey(key); err != nil {
		t.Fatal(err)
	}
	logA, _ := tap.Pipe(64) // the peer's end is never served
	tapA, _ := tap.Pipe(64)
	arb := &ftcore.MemArbiter{}
	g := &fakeGate{}
	b, err := NewBox(testConfig(t, "A", "primary", "02:00:00:00:00:0b", key), BoxOptions{
		Image: img, Arbiter: CoreArbiter{arb}, TAP: gatedPort{tapA, g}, LogPort: logA,
		LogMAC: net.HardwareAddr{2, 0, 0, 0, 0, 0xa}, Gate: g, Notify: func(string) error { return nil }, Log: testLog(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	go b.Run(context.Background())
	t.Cleanup(func() { b.Close() })
	// Well past the heartbeat timeout (and the old 10 s default would not
	// matter here: the point is that nothing ever claims).
	time.Sleep(500 * time.Millisecond)
	s := waitStatus(t, b, "syncing", func(s *Status) bool { return s.Protection == Syncing })
	if len(s.Problems) == 0 || !strings.Contains(s.Problems[0], "waiting forever") {
		t.Fatalf("problems %q", s.Problems)
	}
	g.mu.Lock()
	pass := g.pass
	g.mu.Unlock()
	// The only claim is the new pair's epoch 1 (the primary wins its
	// epoch before it says hello); no failover claim.
	if g := arb.Grants(); s.Arbiter.Requests != 1 || len(g) != 1 || g[0].Epoch != 1 || pass {
		t.Fatalf("a cold-started box claimed (%d arbiter requests, grants %+v) or opened its gate (%v)", s.Arbiter.Requests, g, pass)
	}
}
