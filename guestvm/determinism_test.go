package guestvm_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"ftbox/guestvm"
	"ftbox/tools/guests"
	"ftbox/tools/pkt"
	"ftbox/tools/testenv"
)

var (
	client = pkt.Host{MAC: net.HardwareAddr{0x02, 0, 0, 0, 0, 0x64}, IP: net.IPv4(10, 77, 0, 100)}
	guest  = pkt.Host{MAC: net.HardwareAddr(guestvm.DefaultMAC[:]), IP: net.IPv4(10, 77, 0, 10)}
)

// step is one move of the scenario: run this many instructions (or to idle),
// then inject these events at the count reached.
type step struct {
	run    uint64 // 0: run until idle
	events []guestvm.Event
}

func frame(b []byte) guestvm.Event { return guestvm.Event{Kind: guestvm.EvFrame, Data: b} }

// scenario drives netsvc through boot, ARP, ping, the UDP services and a
// frame landing while the guest is busy, with clock syncs in between.
func scenario() []step {
	s := []step{{run: 0}}
	add := func(run uint64, evs ...guestvm.Event) { s = append(s, step{run: run, events: evs}) }
	add(0, frame(pkt.ARPRequest(client, guest.IP)))
	add(0, frame(pkt.Ping(client, guest, 1, 1, bytes.Repeat([]byte("ftbox"), 200))))
	add(0, guestvm.Event{Kind: guestvm.EvClock, Time: 5_000_000, RateNum: 3, RateDen: 7})
	for i := range 4 {
		add(0, frame(pkt.UDP(client, guest, 4000, 7000, fmt.Appendf(nil, "INCR apples r%d", i))))
		// A second request lands 250 instructions later, mid-processing.
		add(250, frame(pkt.UDP(client, guest, 4000, 7, fmt.Appendf(nil, "echo %d", i))))
	}
	add(0, guestvm.Event{Kind: guestvm.EvClock, Time: 9_000_000})
	add(0, frame(pkt.UDP(client, guest, 4000, 7000, []byte("GET apples g"))))
	add(0)
	return s
}

func newNetsvc(t testing.TB) *guestvm.Machine {
	t.Helper()
	img, err := guests.Image("netsvc")
	if err != nil {
		t.Fatal(err)
	}
	m, err := guestvm.New(guestvm.Config{MemSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Load(img); err != nil {
		t.Fatal(err)
	}
	return m
}

// play runs steps [from, len) and returns one trace line per step: the
// instruction count, the state digest and a hash of the frames emitted.
func play(t testing.TB, m *guestvm.Machine, steps []step, from int, frames *[][]byte) []string {
	t.Helper()
	var trace []string
	for i := from; i < len(steps); i++ {
		st := steps[i]
		if st.run > 0 {
			bound := m.ICount() + st.run
			for m.ICount() < bound {
				if why := m.Run(bound); why == guestvm.StopIdle || why == guestvm.StopExit {
					break
				}
				*frames = append(*frames, m.TakeFrames()...)
			}
		} else {
			runToIdle(t, m, frames)
		}
		*frames = append(*frames, m.TakeFrames()...)
		for _, ev := range st.events {
			ev.ICount = m.ICount()
			if _, err := m.Inject(ev); err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
		}
		h := sha256.New()
		for _, f := range *frames {
			h.Write(f)
		}
		trace = append(trace, fmt.Sprintf("%d %d %x %d %x", i, m.ICount(), m.Digest(), len(*frames), h.Sum(nil)))
	}
	return trace
}

func runToIdle(t testing.TB, m *guestvm.Machine, frames *[][]byte) {
	t.Helper()
	limit := m.ICount() + 200_000_000
	for {
		switch m.Run(limit) {
		case guestvm.StopIdle:
			return
		case guestvm.StopOutput:
			*frames = append(*frames, m.TakeFrames()...)
		case guestvm.StopExit:
			t.Fatalf("guest exited: %s", m.TakeConsole())
		case guestvm.StopBound:
			t.Fatalf("guest did not go idle within 200M instructions: %s", m.TakeConsole())
		}
	}
}

func TestDeterminism(t *testing.T) {
	steps := scenario()
	var fa, fb [][]byte
	a, b := newNetsvc(t), newNetsvc(t)
	ta := play(t, a, steps, 0, &fa)
	tb := play(t, b, steps, 0, &fb)
	if !equalTraces(t, ta, tb) {
		t.Fatal("two machines fed the same events diverged")
	}
	checkReplies(t, fa)

	// Snapshot half way, restore into a fresh machine, carry on.
	half := len(steps) / 2
	var fc [][]byte
	c := newNetsvc(t)
	prefix := play(t, c, steps[:half], 0, &fc)
	snap := c.Save()
	d := newNetsvc(t)
	if err := d.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if d.Digest() != c.Digest() {
		t.Fatal("restored machine's digest differs from the original's")
	}
	rest := play(t, d, steps, half, &fc)
	if !equalTraces(t, ta, append(prefix, rest...)) {
		t.Fatal("run through snapshot/restore diverged")
	}
}

func equalTraces(t testing.TB, a, b []string) bool {
	t.Helper()
	if len(a) != len(b) {
		t.Errorf("traces of %d and %d steps", len(a), len(b))
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			t.Errorf("first difference at step %d:\n  %s\n  %s", i, a[i], b[i])
			return false
		}
	}
	return true
}

// checkReplies makes sure the scenario exercised the guest for real.
func checkReplies(t *testing.T, frames [][]byte) {
	t.Helper()
	var arp, icmp, incr, echo, get int
	for _, f := range frames {
		d := pkt.Decode(f)
		switch {
		case d.ARP != nil:
			arp++
		case d.ICMP != nil && d.ChecksumsOK && len(d.Payload) == 1000:
			icmp++
		case d.UDP != nil && d.ChecksumsOK && d.UDP.SrcPort == 7000 && strings.HasPrefix(string(d.Payload), "g "):
			if string(d.Payload) != "g 4" {
				t.Errorf("GET replied %q, want \"g 4\"", d.Payload)
			}
			get++
		case d.UDP != nil && d.ChecksumsOK && d.UDP.SrcPort == 7000:
			incr++
		case d.UDP != nil && d.ChecksumsOK && d.UDP.SrcPort == 7:
			echo++
		}
	}
	if arp != 1 || icmp != 1 || incr != 4 || echo != 4 || get != 1 {
		t.Fatalf("replies: arp %d icmp %d incr %d echo %d get %d; want 1 1 4 4 1", arp, icmp, incr, echo, get)
	}
}

// TestDeterminismAcrossArch runs the same scenario in an arm64 build of this
// test under qemu-user and compares its trace with this host's.
func TestDeterminismAcrossArch(t *testing.T) {
	steps := scenario()
	var frames [][]byte
	trace := play(t, newNetsvc(t), steps, 0, &frames)
	if out := os.Getenv("FTBOX_TRACE_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(strings.Join(trace, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	testenv.Need(t, runtime.GOARCH == "amd64", "the cross-arch check runs from an amd64 host")
	qemu := testenv.Tool(t, "qemu-aarch64-static")
	dir := t.TempDir()
	bin := filepath.Join(dir, "guestvm.test")
	build := exec.Command("go", "test", "-c", "-o", bin, ".")
	build.Env = append(os.Environ(), "GOARCH=arm64", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("arm64 build: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "trace")
	run := exec.Command(qemu, bin, "-test.run", "^TestDeterminismAcrossArch$")
	run.Env = append(os.Environ(), "FTBOX_TRACE_OUT="+out)
	if o, err := run.CombinedOutput(); err != nil {
		t.Fatalf("arm64 run: %v\n%s", err, o)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !equalTraces(t, trace, strings.Split(string(got), "\n")) {
		t.Fatal("arm64 and amd64 runs diverged")
	}
	t.Logf("arm64 under qemu-user matched %d checkpoints", len(trace))
}
