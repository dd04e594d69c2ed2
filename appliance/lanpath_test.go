package appliance

import (
	"context"
	"strings"
	"testing"
	"time"

	"ftbox/ftcore"
	"ftbox/tap"
	"ftbox/tools/guests"
	"ftbox/tools/pkt"
	"ftbox/tools/testenv"
)

// lanClient is the UDP counter's client on the LAN end of a box's TAP: one
// reader for the port's life (exchange's reader would outlive its call and
// steal the next reply on the same port).
type lanClient struct {
	t       *testing.T
	port    tap.Port
	replies chan pkt.Decoded
}

func newLANClient(t *testing.T, port tap.Port) *lanClient {
	c := &lanClient{t: t, port: port, replies: make(chan pkt.Decoded, 64)}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, err := port.ReadFrame(buf)
			if err != nil {
				return
			}
			d := pkt.Decode(append([]byte(nil), buf[:n]...))
			if d.UDP == nil || d.UDP.SrcPort != 7000 {
				continue
			}
			select {
			case c.replies <- d:
			default:
			}
		}
	}()
	return c
}

// incr sends INCR for id and returns the reply ("id value").
func (c *lanClient) incr(id string) string {
	c.t.Helper()
	if err := c.port.WriteFrame(pkt.UDP(testClient, testGuest, 4000, 7000, []byte("INCR c "+id))); err != nil {
		c.t.Fatal(err)
	}
	timeout := time.After(3 * time.Second)
	for {
		select {
		case d := <-c.replies:
			if strings.HasPrefix(string(d.Payload), id+" ") {
				return string(d.Payload)
			}
		case <-timeout:
			c.t.Fatalf("no reply to %s", id)
			return ""
		}
	}
}

func hasNote(s *Status, sub string) bool {
	for _, n := range s.Notes {
		if strings.Contains(n, sub) {
			return true
		}
	}
	return false
}

func timeoutOf(t *testing.T) time.Duration {
	d, err := time.ParseDuration(testHeartbeatTimeout)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// lanPathPair is a PROTECTED pair with the second heartbeat path, both
// boxes hearing each other on it.
func lanPathPair(t *testing.T) *pipePair {
	t.Helper()
	pp := newPipePairOpts(t, true, true)
	for _, b := range []*Box{pp.a, pp.b} {
		s := waitStatus(t, b, "PROTECTED with the LAN path heard", func(s *Status) bool {
			return s.Protection == Protected && s.ExitCode == ExitOK && hasNote(s, "second heartbeat path on br0: peer 02:00:00:00:01:0") && !hasNote(s, "not yet heard")
		})
		t.Logf("%s: %q", s.Box, s.Notes)
	}
	return pp
}

// TestBoxPipesLANPathLogCut: with the second path up, a cut of the logging
// link costs no failover. As ftcore specifies: the primary gives up its
// backup (the log link is silent), wins the next epoch and goes on
// UNPROTECTED, then stops its heartbeats but says hello on both paths;
// the backup, which heard the primary on the LAN until then, hears that
// hello of the new epoch there and yields (rejoins as a joining backup)
// without claiming — or, had the hello been lost, claims once both paths
// were silent, loses and halts. It never passes its gate.
// Once the cable is back, the state transfer makes the pair PROTECTED.
func TestBoxPipesLANPathLogCut(t *testing.T) {
	pp := lanPathPair(t)
	ca := newLANClient(t, pp.lanA)
	if got := ca.incr("r1"); got != "r1 1" {
		t.Fatalf("got %q", got)
	}
	pp.logCut.Store(true)
	cutAt := time.Now()
	deadline := cutAt.Add(20 * timeoutOf(t))
	var sa, sb *Status
	for {
		var err error
		if sa, err = pp.a.Status(context.Background()); err != nil {
			t.Fatal(err)
		}
		if sb, err = pp.b.Status(context.Background()); err != nil {
			t.Fatal(err)
		}
		if sb.Gate.Pass || sb.Role == "UNPROTECTED" || sb.Role == "PRIMARY" {
			t.Fatalf("the backup went live after a logging-link cut with the LAN up:\n%s", statusText(sb))
		}
		if sa.Role != "PRIMARY" && sa.Role != "UNPROTECTED" {
			t.Fatalf("the primary stopped serving:\n%s", statusText(sa))
		}
		if sa.Role == "UNPROTECTED" && sa.Gate.Pass && (sb.LastFailover != nil && strings.HasPrefix(sb.LastFailover.Result, "halted") || sb.Counters.Yields > 0) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled %v after the cut:\n%s%s", time.Since(cutAt), statusText(sa), statusText(sb))
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("settled %v after the cut:\n%s%s", time.Since(cutAt).Round(time.Millisecond), statusText(sa), statusText(sb))
	if g := pp.arb.Grants(); len(g) != 2 || g[0] != (ftcore.ArbiterRequest{Epoch: 1, Who: "A"}) || g[1] != (ftcore.ArbiterRequest{Epoch: 2, Who: "A"}) {
		t.Fatalf("arbiter grants %+v, want epoch 1 (the pair formed) and 2 to A", g)
	}
	if got := ca.incr("r2"); got != "r2 2" {
		t.Fatalf("the primary after the cut: got %q, want r2 2", got)
	}
	// The backup never released anything: the gate never passed.
	if st, _ := pp.gateB.Stats(); st.PassedFrames != 0 {
		t.Fatalf("backup's gate passed %d frames", st.PassedFrames)
	}

	pp.logCut.Store(false)
	waitStatus(t, pp.b, "BACKUP PROTECTED again", func(s *Status) bool { return s.Role == "BACKUP" && s.Protection == Protected })
	sa = waitStatus(t, pp.a, "PRIMARY PROTECTED again", func(s *Status) bool { return s.Role == "PRIMARY" && s.Protection == Protected })
	if sa.Epoch != 2 {
		t.Fatalf("epoch %d after the rejoin, want 2", sa.Epoch)
	}
	if got := ca.incr("r3"); got != "r3 3" {
		t.Fatalf("after the rejoin: got %q, want r3 3", got)
	}
}

// TestBoxPipesLANPathKillPrimary: the primary dies, so both paths fall
// silent at once: the backup takes over as without the second path, its
// detection within the heartbeat timeout (plus a scheduling margin).
func TestBoxPipesLANPathKillPrimary(t *testing.T) {
	pp := lanPathPair(t)
	if got := newLANClient(t, pp.lanA).incr("r1"); got != "r1 1" {
		t.Fatalf("got %q", got)
	}
	pp.a.Close()
	s := waitStatus(t, pp.b, "live", func(s *Status) bool { return s.Role == "UNPROTECTED" && s.Gate.Pass })
	f := s.LastFailover
	if f == nil || f.Result != "went live" || s.Epoch != 2 {
		t.Fatalf("failover record %+v, epoch %d", f, s.Epoch)
	}
	timeout := ms(timeoutOf(t))
	t.Logf("detection %.1f ms (timeout %.0f ms), go-live %.1f ms", f.DetectionMS, timeout, f.GoLiveMS)
	if f.DetectionMS > 1.5*timeout+50 {
		t.Fatalf("detection took %.1f ms with a %.0f ms timeout: the second path delayed the failover", f.DetectionMS, timeout)
	}
	if got := newLANClient(t, pp.lanB).incr("r2"); got != "r2 2" {
		t.Fatalf("after failover got %q, want r2 2", got)
	}
}

// TestBoxPipesLANPathSilent: the second path alone cut changes nothing but
// the status: a warning while it is silent, back to OK once it is heard.
func TestBoxPipesLANPathSilent(t *testing.T) {
	pp := lanPathPair(t)
	pp.lanPathCut.Store(true)
	s := waitStatus(t, pp.b, "warning about the LAN path", func(s *Status) bool {
		return s.ExitCode == ExitWarning && strings.Contains(strings.Join(s.Problems, "\n"), "LAN PATH SILENT")
	})
	t.Logf("\n%s", statusText(s))
	if s.Protection != Protected || s.Role != "BACKUP" {
		t.Fatalf("a cut LAN path changed the pair:\n%s", statusText(s))
	}
	pp.lanPathCut.Store(false)
	for _, b := range []*Box{pp.a, pp.b} {
		waitStatus(t, b, "OK again", func(s *Status) bool { return s.ExitCode == ExitOK && s.Protection == Protected })
	}
	if sa, _ := pp.a.Status(context.Background()); sa.Role != "PRIMARY" || sa.Epoch != 1 || sa.LastFailover != nil {
		t.Fatalf("the primary after a LAN-path cut:\n%s", statusText(sa))
	}
}

// TestLANPathNetNS runs the second path on real bridges: raw ports on each
// box's br0 (MACs pinned, as the README asks), frames through the LAN
// bridge; and refuses a bridge port as the heartbeat interface.
func TestLANPathNetNS(t *testing.T) {
	lb := newLab(t)
	brA, brB := "02:00:00:00:01:0a", "02:00:00:00:01:0b"
	testenv.Run(t, "ip", "-n", lb.a, "link", "set", "br0", "address", brA)
	testenv.Run(t, "ip", "-n", lb.b, "link", "set", "br0", "address", brB)

	port := labConfig(t, "A", "primary", "02:00:00:00:00:0b", lb.key)
	port.LAN.HeartbeatInterface, port.LAN.HeartbeatPeerMAC = "eth0", brB
	img, err := guests.Image("netsvc")
	if err != nil {
		t.Fatal(err)
	}
	err = testenv.InNetNS(lb.a, func() error {
		b, err := NewBox(port, BoxOptions{Image: img, Notify: func(string) error { return nil }})
		if err == nil {
			b.Close()
		}
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "is a port of br0") {
		t.Fatalf("a bridge port as lan.heartbeat_interface: %v", err)
	}

	arb := &ftcore.MemArbiter{}
	ca := labConfig(t, "A", "primary", "02:00:00:00:00:0b", lb.key)
	ca.LAN.HeartbeatInterface, ca.LAN.HeartbeatPeerMAC = "br0", brB
	cb := labConfig(t, "B", "backup", "02:00:00:00:00:0a", lb.key)
	cb.LAN.HeartbeatInterface, cb.LAN.HeartbeatPeerMAC = "br0", brA
	a := startBox(t, lb.a, ca, CoreArbiter{arb}, 0)
	b := startBox(t, lb.b, cb, CoreArbiter{arb}, 0)
	for _, x := range []*Box{a, b} {
		s := waitStatus(t, x, "PROTECTED with the LAN path heard", func(s *Status) bool {
			return s.Protection == Protected && s.ExitCode == ExitOK && hasNote(s, "second heartbeat path on br0: peer 02:00:00:00:01:0") && !hasNote(s, "not yet heard")
		})
		t.Logf("%s: %q", s.Box, s.Notes)
	}
	// The logging link's cable pulled: no failover; A goes on alone.
	testenv.Run(t, "ip", "-n", lb.a, "link", "set", "log0", "down")
	sa := waitStatus(t, a, "UNPROTECTED", func(s *Status) bool { return s.Role == "UNPROTECTED" && s.Gate.Pass })
	sb := waitStatus(t, b, "halted or yielded", func(s *Status) bool {
		return s.LastFailover != nil && strings.HasPrefix(s.LastFailover.Result, "halted") || s.Counters.Yields > 0
	})
	if sb.Gate.Pass || sb.Role == "UNPROTECTED" || sb.Role == "PRIMARY" {
		t.Fatalf("backup after a logging-link cut:\n%s", statusText(sb))
	}
	t.Logf("after the cut:\n%s%s", statusText(sa), statusText(sb))
}
