package ftcore_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"ftbox/ftcore"
	"ftbox/ftcore/logwire"
	"ftbox/ftcore/sim"
)

type zeroRand struct{ n byte }

func (z *zeroRand) Read(b []byte) (int, error) {
	for i := range b {
		z.n++
		b[i] = z.n
	}
	return len(b), nil
}

func pairConfig(t *testing.T, name string) ftcore.Config {
	t.Helper()
	ep, err := logwire.NewEndpoint(sha256.Sum256([]byte("test psk")), logwire.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := &zeroRand{}
	if name == "B" {
		r.n = 100
	}
	return ftcore.Config{Name: name, Epoch: 1, Endpoint: ep, Rand: r, DigestInterval: time.Millisecond}
}

// manual is a pair wired by hand: the test decides which frames arrive.
type manual struct {
	p       *ftcore.Primary
	b       *ftcore.Backup
	mp, mb  *fakeMachine
	now     time.Duration
	toB     [][]byte
	toP     [][]byte
	lan     [][]byte
	replica [][]byte
}

func newManual(t *testing.T) *manual {
	t.Helper()
	h := &manual{mp: newFake(), mb: newFake()}
	var err error
	if h.p, err = ftcore.NewPrimary(pairConfig(t, "A"), h.mp); err != nil {
		t.Fatal(err)
	}
	if h.b, err = ftcore.NewBackup(pairConfig(t, "B"), h.mb); err != nil {
		t.Fatal(err)
	}
	return h
}

// stepP steps the primary and collects its outbox.
func (h *manual) stepP(t *testing.T) {
	t.Helper()
	if err := h.p.Step(h.now); err != nil {
		t.Fatal(err)
	}
	ob := h.p.Outbox()
	h.toB = append(h.toB, ob.Log...)
	h.lan = append(h.lan, ob.LAN...)
}

func (h *manual) stepB(t *testing.T) {
	t.Helper()
	if err := h.b.Step(h.now); err != nil {
		t.Fatal(err)
	}
	ob := h.b.Outbox()
	h.toP = append(h.toP, ob.Log...)
	h.replica = append(h.replica, ob.Replica...)
}

func (h *manual) deliverB(t *testing.T, drop func(int) bool) {
	t.Helper()
	for i, f := range h.toB {
		if drop == nil || !drop(i) {
			if err := h.b.OnLogFrame(h.now, f); err != nil {
				t.Fatal(err)
			}
		}
	}
	h.toB = nil
	ob := h.b.Outbox()
	h.toP = append(h.toP, ob.Log...)
}

func (h *manual) deliverP(t *testing.T) {
	t.Helper()
	for _, f := range h.toP {
		if err := h.p.OnLogFrame(h.now, f); err != nil {
			t.Fatal(err)
		}
	}
	h.toP = nil
	ob := h.p.Outbox()
	h.lan = append(h.lan, ob.LAN...)
	h.toB = append(h.toB, ob.Log...)
}

// handshake runs the hello exchange by hand.
func (h *manual) handshake(t *testing.T) {
	t.Helper()
	h.stepP(t)
	h.deliverB(t, nil)
	h.deliverP(t)
	if st := h.p.Status(); st.Verdicts[logwire.VerdictOK] == 0 {
		t.Fatalf("handshake did not complete: %+v", st.Verdicts)
	}
}

func TestOutputHeldUntilAcked(t *testing.T) {
	h := newManual(t)
	h.handshake(t)
	h.now += time.Millisecond
	if err := h.p.OnLANFrame(h.now, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	h.stepP(t)
	if st := h.p.Status(); st.OutputsProduced != 1 || st.OutputsHeld != 1 || len(h.lan) != 0 {
		t.Fatalf("output not held: produced %d held %d released %d", st.OutputsProduced, st.OutputsHeld, len(h.lan))
	}
	// The log reaches the backup but its ack is lost: still held.
	h.deliverB(t, nil)
	h.toP = nil
	h.stepP(t)
	if len(h.lan) != 0 {
		t.Fatal("released without an ack")
	}
	// Retransmission after the RTO, the ack gets through: released.
	h.now += 5 * time.Millisecond
	h.stepP(t)
	if h.p.Status().Retransmits == 0 {
		t.Fatal("no retransmission")
	}
	h.deliverB(t, nil)
	h.deliverP(t)
	if len(h.lan) != 1 || string(h.lan[0]) != "reply 1 hello" {
		t.Fatalf("released %q", h.lan)
	}
	if st := h.b.Status(); st.Duplicates == 0 {
		t.Fatal("backup saw no duplicate")
	}
	// The backup replays it and produces the same (suppressed) output.
	h.stepB(t)
	if len(h.replica) != 1 || !bytes.Equal(h.replica[0], h.lan[0]) {
		t.Fatalf("replica outputs %q", h.replica)
	}
	if h.mp.Digest() != h.mb.Digest() && h.mp.ICount() == h.mb.ICount() {
		t.Fatal("digests differ at equal counts")
	}
}

func TestReleasedInOrderOutOfOrderLog(t *testing.T) {
	h := newManual(t)
	h.handshake(t)
	for i := range 5 {
		h.now += time.Millisecond
		h.p.OnLANFrame(h.now, fmt.Appendf(nil, "m%d", i))
		h.stepP(t)
	}
	// Deliver the log frames in reverse order.
	for i, j := 0, len(h.toB)-1; i < j; i, j = i+1, j-1 {
		h.toB[i], h.toB[j] = h.toB[j], h.toB[i]
	}
	h.deliverB(t, nil)
	h.deliverP(t)
	if len(h.lan) != 5 {
		t.Fatalf("released %d of 5", len(h.lan))
	}
	for i, f := range h.lan {
		if want := fmt.Sprintf("reply %d m%d", i+1, i); string(f) != want {
			t.Fatalf("output %d = %q, want %q", i, f, want)
		}
	}
	if st := h.b.Status(); st.OutOfOrder == 0 {
		t.Fatal("no out-of-order buffering happened")
	}
}

func TestForgedFramesRejected(t *testing.T) {
	h := newManual(t)
	h.handshake(t)
	h.p.OnLANFrame(h.now, []byte("x"))
	h.stepP(t)
	before := h.mb.Digest()
	for _, f := range h.toB {
		bad := append([]byte(nil), f...)
		bad[len(bad)-1] ^= 1
		if err := h.b.OnLogFrame(h.now, bad); !errors.Is(err, ftcore.ErrFrame) || !errors.Is(err, logwire.ErrBadTag) {
			t.Fatalf("forged frame: %v", err)
		}
		if err := h.b.OnLogFrame(h.now, f[:20]); !errors.Is(err, ftcore.ErrFrame) {
			t.Fatalf("truncated frame: %v", err)
		}
	}
	h.stepB(t)
	if st := h.b.Status(); st.LogDelivered != 0 || st.Verdicts[logwire.VerdictBadTag] == 0 || h.mb.Digest() != before {
		t.Fatalf("forged frame applied: %+v", st)
	}
	// Replaying a genuine frame twice: the second is a replay.
	h.deliverB(t, nil)
	if st := h.b.Status(); st.LogDelivered == 0 {
		t.Fatal("genuine frame not applied")
	}
}

// client sends "req i" every period and records replies.
type client struct {
	period time.Duration
	next   time.Duration
	sent   int
	max    int
	got    []string
}

func (c *client) Tick(now time.Duration) [][]byte {
	if c.sent >= c.max || now < c.next {
		return nil
	}
	c.next = now + c.period
	c.sent++
	return [][]byte{fmt.Appendf(nil, "req %d", c.sent)}
}

func (c *client) Receive(_ time.Duration, f []byte) { c.got = append(c.got, string(f)) }

// check verifies the reply stream: counters 1, 2, … without gaps, each
// repeated only in one run of duplicates (the failover's in-flight window).
func (c *client) check(t *testing.T) (dups int) {
	t.Helper()
	var last uint64
	for _, g := range c.got {
		f := strings.Fields(g)
		n, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			t.Fatalf("reply %q", g)
		}
		switch {
		case n == last+1:
			last = n
		case n <= last:
			dups++
		default:
			t.Fatalf("gap: reply %d after %d (replies %q)", n, last, c.got)
		}
	}
	return dups
}

func fakeWorld(t *testing.T, seed uint64, c *client, mut func(*sim.Options)) *sim.World {
	t.Helper()
	o := sim.Options{
		Seed:       seed,
		NewMachine: func() (ftcore.Machine, error) { return newFake(), nil },
		Client:     c,
		Config:     ftcore.Config{DigestInterval: 2 * time.Millisecond},
	}
	if mut != nil {
		mut(&o)
	}
	w, err := sim.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestSimLossyLink(t *testing.T) {
	for seed := range uint64(20) {
		c := &client{period: 300 * time.Microsecond, max: 200}
		lossy := sim.Faults{Loss: 0.1, Dup: 0.05, Reorder: 0.1}
		w := fakeWorld(t, seed, c, func(o *sim.Options) { o.LogPB, o.LogBP = lossy, lossy })
		w.Run(300 * time.Millisecond)
		if d := c.check(t); d != 0 {
			t.Fatalf("seed %d: %d duplicates without a failover", seed, d)
		}
		if len(c.got) != 200 {
			t.Fatalf("seed %d: %d replies of 200", seed, len(c.got))
		}
		if _, err := w.Check(); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		ps, bs := w.P.Status(), w.B.Status()
		if ps.Role != ftcore.RolePrimary || bs.Role != ftcore.RoleBackup {
			t.Fatalf("seed %d: false failover under 10%% loss: %v %v", seed, ps.Role, bs.Role)
		}
		if bs.DigestsCompared == 0 {
			t.Fatalf("seed %d: no digest compared", seed)
		}
		if seed == 0 {
			t.Logf("lossy: retransmits %d fast %d dups %d ooo %d digests %d log bytes %d input bytes %d",
				ps.Retransmits, ps.FastRetransmits, bs.Duplicates, bs.OutOfOrder, bs.DigestsCompared, w.LogBytes, ps.InputBytes)
		}
	}
}

func TestSimPrimaryCrash(t *testing.T) {
	var worstDetect, worstLive time.Duration
	maxDups := 0
	for seed := range uint64(40) {
		c := &client{period: 200 * time.Microsecond, max: 1000}
		lossy := sim.Faults{Loss: 0.05, Dup: 0.02, Reorder: 0.05}
		w := fakeWorld(t, seed, c, func(o *sim.Options) { o.LogPB, o.LogBP = lossy, lossy })
		crashAt := 20*time.Millisecond + time.Duration(seed)*1317*time.Microsecond
		w.Run(crashAt)
		w.Crash(0)
		if !w.RunUntil(crashAt+time.Second, func() bool { return w.B.Role() == ftcore.RoleUnprotected }) {
			t.Fatalf("seed %d: backup did not go live: %v", seed, w.B.Role())
		}
		w.Run(w.Now + 50*time.Millisecond)
		dups, err := w.Check()
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		cd := c.check(t)
		maxDups = max(maxDups, cd)
		if uint64(cd) != dups {
			t.Logf("seed %d: client saw %d duplicates, status says %d", seed, cd, dups)
		}
		bs := w.B.Status()
		worstDetect = max(worstDetect, bs.FailureDetected-crashAt)
		worstLive = max(worstLive, bs.WentLive-crashAt)
		if bs.Epoch != 2 {
			t.Fatalf("seed %d: epoch %d", seed, bs.Epoch)
		}
	}
	t.Logf("primary crash: worst detection %v, worst go-live %v after the crash, largest duplicate window %d", worstDetect, worstLive, maxDups)
	if worstDetect > 100*time.Millisecond {
		t.Errorf("detection took %v", worstDetect)
	}
}

func TestSimBackupCrash(t *testing.T) {
	c := &client{period: 200 * time.Microsecond, max: 600}
	w := fakeWorld(t, 1, c, nil)
	w.Run(30 * time.Millisecond)
	w.Crash(1)
	w.Run(200 * time.Millisecond)
	if w.P.Role() != ftcore.RoleUnprotected || w.P.Epoch() != 2 {
		t.Fatalf("primary %v epoch %d", w.P.Role(), w.P.Epoch())
	}
	if d := c.check(t); d != 0 {
		t.Fatalf("%d duplicates", d)
	}
	if len(c.got) != 600 {
		t.Fatalf("%d replies of 600", len(c.got))
	}
	ps := w.P.Status()
	t.Logf("backup crash: primary detected after %v", ps.FailureDetected-30*time.Millisecond)
}

func TestSimPartitionOneWinner(t *testing.T) {
	for seed := range uint64(10) {
		c := &client{period: 200 * time.Microsecond, max: 1000}
		w := fakeWorld(t, seed, c, nil)
		w.Run(20 * time.Millisecond)
		pb, bp := w.Links()
		pb.Down, bp.Down = true, true
		w.Run(300 * time.Millisecond)
		pr, br := w.P.Role(), w.B.Role()
		live := 0
		for _, r := range []ftcore.Role{pr, br} {
			if r == ftcore.RoleUnprotected {
				live++
			} else if r != ftcore.RoleHalted {
				t.Fatalf("seed %d: role %v after the partition", seed, r)
			}
		}
		if live != 1 {
			t.Fatalf("seed %d: %d live boxes (%v, %v)", seed, live, pr, br)
		}
		if _, err := w.Check(); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		c.check(t)
	}
}

func TestSimForgedFrames(t *testing.T) {
	c := &client{period: 300 * time.Microsecond, max: 300}
	corrupt := sim.Faults{Corrupt: 0.2}
	w := fakeWorld(t, 3, c, func(o *sim.Options) { o.Forge = 0.2; o.LogPB, o.LogBP = corrupt, corrupt })
	w.Run(200 * time.Millisecond)
	if _, err := w.Check(); err != nil {
		t.Fatal(err)
	}
	if c.check(t) != 0 || len(c.got) != 300 {
		t.Fatalf("%d replies", len(c.got))
	}
	bs := w.B.Status()
	if bs.Verdicts[logwire.VerdictBadTag]+bs.Verdicts[logwire.VerdictMalformed]+bs.Verdicts[logwire.VerdictWrongSession] == 0 {
		t.Fatalf("no forged frame refused: %v", bs.Verdicts)
	}
	t.Logf("forged %d, verdicts backup %v primary %v", w.Forged, bs.Verdicts, w.P.Status().Verdicts)
}

func TestSimFlowControl(t *testing.T) {
	c := &client{period: 100 * time.Microsecond, max: 400}
	c2 := &spinClient{client: c}
	w := fakeWorld(t, 5, nil, func(o *sim.Options) {
		o.Client = c2
		o.Config.MaxLagInstr = 200_000
	})
	w.Run(20 * time.Millisecond)
	w.Pause(1, 40*time.Millisecond) // shorter than the failure timeout
	w.Run(150 * time.Millisecond)
	ps := w.P.Status()
	if ps.FlowStalls == 0 {
		t.Fatal("the primary never waited for its lagging backup")
	}
	if ps.Role != ftcore.RolePrimary || w.B.Role() != ftcore.RoleBackup {
		t.Fatalf("roles %v %v", ps.Role, w.B.Role())
	}
	if _, err := w.Check(); err != nil {
		t.Fatal(err)
	}
	t.Logf("flow control: %d stalls, lag now %d instructions", ps.FlowStalls, ps.LagInstr)
}

type spinClient struct{ *client }

func (s *spinClient) Tick(now time.Duration) [][]byte {
	fs := s.client.Tick(now)
	for i := range fs {
		fs[i] = []byte("spin 5000")
	}
	return fs
}

func TestConfigErrors(t *testing.T) {
	if _, err := ftcore.NewPrimary(ftcore.Config{}, newFake()); !errors.Is(err, ftcore.ErrConfig) {
		t.Fatalf("empty config: %v", err)
	}
	c := pairConfig(t, "A")
	c.Timeout, c.HeartbeatInterval = time.Millisecond, 2*time.Millisecond
	if _, err := ftcore.NewBackup(c, newFake()); !errors.Is(err, ftcore.ErrConfig) {
		t.Fatalf("timeout below interval: %v", err)
	}
}

func TestMemArbiter(t *testing.T) {
	var a ftcore.MemArbiter
	if won, _ := a.TestAndSet(2, "A"); !won {
		t.Fatal("first claim lost")
	}
	if won, _ := a.TestAndSet(2, "B"); won {
		t.Fatal("second claimant of epoch 2 won")
	}
	if won, _ := a.TestAndSet(2, "A"); !won {
		t.Fatal("holder's retry lost")
	}
	if won, _ := a.TestAndSet(1, "B"); won {
		t.Fatal("older epoch won")
	}
	if won, _ := a.TestAndSet(3, "B"); !won {
		t.Fatal("next epoch lost")
	}
}

// TestWatermarkOnlyForWrittenOutputs: the released-output watermark must
// not reach the backup in the same outbox as the outputs it covers. A box
// loop that writes Outbox.Log before Outbox.LAN and dies in between would
// otherwise tell the backup "1 and 2 are out" when they are not, the backup
// would drop its copies, and outputs 1 and 2 would be lost at go-live.
// (Found by the simulation's mid-release crashes with log-first writes.)
func TestWatermarkOnlyForWrittenOutputs(t *testing.T) {
	h := newManual(t)
	h.handshake(t)
	for _, m := range []string{"m1", "m2"} {
		h.now += time.Millisecond
		h.p.OnLANFrame(h.now, []byte(m))
		h.stepP(t)
	}
	h.deliverB(t, nil) // the backup holds the log and acks it; the acks wait in h.toP
	h.stepB(t)
	if len(h.lan) != 0 {
		t.Fatal("released before the ack")
	}
	// The acks and a new request arrive together; the loop steps once.
	h.now += time.Millisecond
	for _, f := range h.toP {
		if err := h.p.OnLogFrame(h.now, f); err != nil {
			t.Fatal(err)
		}
	}
	h.toP = nil
	h.p.OnLANFrame(h.now, []byte("m3"))
	if err := h.p.Step(h.now); err != nil {
		t.Fatal(err)
	}
	ob := h.p.Outbox()
	if len(ob.LAN) != 2 {
		t.Fatalf("released %d outputs, want 2", len(ob.LAN))
	}
	// The loop writes the log frames, then dies before the LAN frames.
	for _, f := range ob.Log {
		if err := h.b.OnLogFrame(h.now, f); err != nil {
			t.Fatal(err)
		}
	}
	var out []string
	for range 200 {
		h.now += time.Millisecond
		if err := h.b.Step(h.now); err != nil {
			t.Fatal(err)
		}
		ob := h.b.Outbox()
		for _, r := range ob.Arbiter {
			h.b.OnArbiterReply(h.now, r.Epoch, true, nil)
		}
		for _, f := range append(ob.LAN, h.b.Outbox().LAN...) {
			out = append(out, string(f))
		}
		if h.b.Role() == ftcore.RoleUnprotected {
			break
		}
	}
	if h.b.Role() != ftcore.RoleUnprotected || len(out) < 2 || out[0] != "reply 1 m1" || out[1] != "reply 2 m2" {
		t.Fatalf("backup %v went live releasing %q: outputs 1 and 2 must be among them", h.b.Role(), out)
	}
}

// TestSimSecondPathNoFailover: with the second path (LAN) up, a cut of the
// logging link — both ways, or only the log direction — costs no failover:
// the primary gives up its backup and serves on unprotected, the backup
// (hearing the primary on the LAN) does not take over, and halts once the
// primary falls silent. Before the fix the pair hung: the LAN heartbeats
// kept both failure detectors quiet, so the primary held every output for
// an ack that could not come, for as long as the cut lasted.
func TestSimSecondPathNoFailover(t *testing.T) {
	for _, cut := range []string{"both", "log only (A→B)", "acks only (B→A)"} {
		c := &client{period: 300 * time.Microsecond, max: 600}
		w := fakeWorld(t, 9, c, func(o *sim.Options) { o.Config.SecondPath = true })
		w.Run(30 * time.Millisecond)
		pb, bp := w.Links()
		pb.Down = cut != "acks only (B→A)"
		bp.Down = cut != "log only (A→B)"
		w.Run(400 * time.Millisecond)
		if w.P.Role() != ftcore.RoleUnprotected || w.B.Role() != ftcore.RoleHalted {
			t.Fatalf("cut %s: roles %v %v, want UNPROTECTED HALTED", cut, w.P.Role(), w.B.Role())
		}
		if bs := w.B.Status(); bs.WentLive != 0 {
			t.Fatalf("cut %s: the backup went live at %v", cut, bs.WentLive)
		}
		if len(c.got) != 600 || c.check(t) != 0 {
			t.Fatalf("cut %s: %d replies of 600", cut, len(c.got))
		}
		if _, err := w.Check(); err != nil {
			t.Fatalf("cut %s: %v", cut, err)
		}
		t.Logf("cut %s: primary gave up its backup %v after the cut", cut, w.P.Status().FailureDetected-30*time.Millisecond)
	}
}

// TestSimSecondPathSlowArbiter: a cut logging link with the LAN up and an
// arbiter that does not answer for a while. The primary gives up its backup
// and claims the next epoch; while it waits for the arbiter it goes on
// sending heartbeats (marked with the claimed epoch), so the backup, which
// hears it on the LAN, does not claim as well: no two-sided claim, no
// failover. Once the arbiter is back the primary wins, serves on
// unprotected and falls silent; the backup claims, loses and halts.
// Before the fix the claiming primary fell silent on both paths and the
// backup claimed too, racing it for the epoch.
func TestSimSecondPathSlowArbiter(t *testing.T) {
	c := &client{period: time.Millisecond, max: 700}
	w := fakeWorld(t, 9, c, func(o *sim.Options) { o.Config.SecondPath = true })
	w.Run(30 * time.Millisecond)
	pb, bp := w.Links()
	pb.Down, bp.Down = true, true
	w.ArbiterFaults().Down = true
	w.Run(400 * time.Millisecond) // the primary claims from ~120 ms on, unanswered
	if w.P.Role() != ftcore.RolePrimary || w.B.Role() != ftcore.RoleBackup {
		t.Fatalf("arbiter down: roles %v %v, want PRIMARY (claiming) BACKUP", w.P.Role(), w.B.Role())
	}
	if ps, bs := w.P.Status(), w.B.Status(); ps.ArbiterRequests == 0 || bs.ArbiterRequests != 0 {
		t.Fatalf("arbiter down: arbiter requests: primary %d backup %d, want some and none", ps.ArbiterRequests, bs.ArbiterRequests)
	}
	w.ArbiterFaults().Down = false
	n := len(c.got)
	w.Run(800 * time.Millisecond)
	if w.P.Role() != ftcore.RoleUnprotected || w.B.Role() != ftcore.RoleHalted {
		t.Fatalf("arbiter back: roles %v %v, want UNPROTECTED HALTED", w.P.Role(), w.B.Role())
	}
	if bs := w.B.Status(); bs.WentLive != 0 {
		t.Fatalf("the backup went live at %v", bs.WentLive)
	}
	// (Requests that came while the guest stood still, waiting for the
	// arbiter, overflowed its small input queue: no reply for those.)
	if c.check(t) != 0 || len(c.got) < n+200 {
		t.Fatalf("%d replies, %d before the arbiter came back: the primary does not serve", len(c.got), n)
	}
	if _, err := w.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestSimClaimGrace: a primary that claims but never reaches the arbiter
// counts as alive for the backup only for ClaimGrace: then the backup
// claims too and, reaching the arbiter, takes over.
func TestSimClaimGrace(t *testing.T) {
	c := &client{period: time.Millisecond, max: 1500}
	w := fakeWorld(t, 9, c, func(o *sim.Options) {
		o.Config.SecondPath = true
		o.Config.ClaimGrace = 300 * time.Millisecond
	})
	w.Run(30 * time.Millisecond)
	pb, bp := w.Links()
	pb.Down, bp.Down = true, true
	w.ArbiterFaults().Down = true
	w.Run(200 * time.Millisecond)
	if w.B.Role() != ftcore.RoleBackup {
		t.Fatalf("within the grace: backup %v", w.B.Role())
	}
	w.Run(500 * time.Millisecond) // the grace ran out: the backup claims as well
	if w.B.Role() != ftcore.RoleGoingLive || w.B.Status().ArbiterRequests == 0 {
		t.Fatalf("after the grace: backup %v, %d arbiter requests", w.B.Role(), w.B.Status().ArbiterRequests)
	}
	w.ArbiterFaults().Down = false
	w.Run(1200 * time.Millisecond)
	roles := [2]ftcore.Role{w.P.Role(), w.B.Role()}
	if roles != [2]ftcore.Role{ftcore.RoleUnprotected, ftcore.RoleHalted} && roles != [2]ftcore.Role{ftcore.RoleHalted, ftcore.RoleUnprotected} {
		t.Fatalf("roles %v, want one UNPROTECTED and one HALTED", roles)
	}
	if _, err := w.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestInputQueueOverflowCountsInputs: LAN frames refused for a full input
// queue are counted as dropped inputs, not outputs.
func TestInputQueueOverflowCountsInputs(t *testing.T) {
	cfg := pairConfig(t, "A")
	cfg.MaxQueuedInput = 2
	p, err := ftcore.NewPrimary(cfg, newFake())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		err = p.OnLANFrame(0, []byte("frame"))
	}
	if !errors.Is(err, ftcore.ErrFrame) {
		t.Fatalf("third frame into a queue of 2: %v", err)
	}
	if st := p.Status(); st.InputsDropped != 1 || st.OutputsDropped != 0 {
		t.Fatalf("inputs dropped %d, outputs dropped %d", st.InputsDropped, st.OutputsDropped)
	}
}
