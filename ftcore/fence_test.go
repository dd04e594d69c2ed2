package ftcore_test

import (
	"testing"
	"time"

	"ftbox/ftcore"
)

// The tests of epoch fencing: never two primaries in one epoch, never a
// box that serves beside a peer live in a later epoch, whatever the arbiter
// says (it may have lost its state), and cold starts that say so.

// run steps a node at its deadlines until now reaches until, and returns
// what it put in its outboxes.
func run(t *testing.T, n interface {
	Step(time.Duration) error
	Deadline() time.Duration
	Outbox() ftcore.Outbox
}, now *time.Duration, until time.Duration) ftcore.Outbox {
	t.Helper()
	var all ftcore.Outbox
	for *now < until {
		d := n.Deadline()
		if d == 0 || d > until {
			*now = until
			break
		}
		*now = max(*now, d)
		if err := n.Step(*now); err != nil {
			t.Fatal(err)
		}
		ob := n.Outbox()
		all.LAN = append(all.LAN, ob.LAN...)
		all.Log = append(all.Log, ob.Log...)
		all.Arbiter = append(all.Arbiter, ob.Arbiter...)
		all.Events = append(all.Events, ob.Events...)
		if d == *now && n.Deadline() == *now {
			*now += 100 * time.Microsecond // a busy guest: let time pass
		}
	}
	return all
}

func hasKind(es []ftcore.Event, k ftcore.EventKind) (ftcore.Event, bool) {
	for _, e := range es {
		if e.Kind == k {
			return e, true
		}
	}
	return ftcore.Event{}, false
}

// livePair makes a pair in epoch 1, handshaken, then lets the backup lose
// the primary (nothing delivered for longer than Timeout) and go live in
// epoch 2 with the arbiter's grant: B is an UNPROTECTED primary of epoch 2
// saying hello, A a PRIMARY of epoch 1 that was frozen all along.
func livePair(t *testing.T) (*manual, [][]byte) {
	t.Helper()
	h := newManual(t)
	h.now = time.Millisecond
	h.handshake(t)
	h.stepB(t)
	h.toB, h.toP = nil, nil
	start := h.now
	ob := run(t, h.b, &h.now, start+200*time.Millisecond)
	if len(ob.Arbiter) == 0 || ob.Arbiter[0].Epoch != 2 {
		t.Fatalf("backup did not claim epoch 2: %+v (role %v)", ob.Arbiter, h.b.Role())
	}
	if err := h.b.OnArbiterReply(h.now, 2, true, nil); err != nil {
		t.Fatal(err)
	}
	ob = run(t, h.b, &h.now, h.now+50*time.Millisecond)
	if h.b.Role() != ftcore.RoleUnprotected || h.b.Epoch() != 2 {
		t.Fatalf("backup %v in epoch %d after winning epoch 2", h.b.Role(), h.b.Epoch())
	}
	if len(ob.Log) == 0 {
		t.Fatal("the live backup says no hello")
	}
	return h, ob.Log
}

// A primary frozen (SIGSTOP) while its backup went live resumes: it hears
// the backup's hellos of epoch 2 before it claims epoch 2, and yields
// instead of claiming — even an arbiter that lost its state, which would
// grant epoch 2 again, is never asked.
func TestResumedPrimaryYieldsToLivePeer(t *testing.T) {
	h, hellos := livePair(t)
	// A resumes: its first Step finds the backup silent far past Timeout.
	h.stepP(t)
	ob := h.p.Outbox()
	if len(ob.Arbiter) != 0 {
		t.Fatalf("a primary frozen past the timeout claims at once: %+v", ob.Arbiter)
	}
	for _, f := range hellos {
		_ = h.p.OnLogFrame(h.now, f)
	}
	ob = h.p.Outbox()
	e, ok := hasKind(ob.Events, ftcore.EventYield)
	if !ok || e.Epoch != 2 || h.p.Role() != ftcore.RoleHalted {
		t.Fatalf("resumed primary did not yield to the live epoch-2 peer: role %v events %+v", h.p.Role(), ob.Events)
	}
	ob = run(t, h.p, &h.now, h.now+500*time.Millisecond)
	if len(ob.Arbiter) != 0 || len(ob.LAN) != 0 {
		t.Fatalf("yielded primary claims %+v, releases %d frames", ob.Arbiter, len(ob.LAN))
	}
}

// The same when the claim went out before the hello arrived and an arbiter
// that lost its state grants it: the grant is not acted on.
func TestGrantIgnoredWhenPeerLiveInEpoch(t *testing.T) {
	h, hellos := livePair(t)
	ob := run(t, h.p, &h.now, h.now+100*time.Millisecond)
	if len(ob.Arbiter) == 0 || ob.Arbiter[0].Epoch != 2 {
		t.Fatalf("primary did not claim epoch 2: %+v", ob.Arbiter)
	}
	for _, f := range hellos {
		_ = h.p.OnLogFrame(h.now, f)
	}
	if h.p.Role() != ftcore.RoleHalted {
		t.Fatalf("claiming primary hearing the live peer of the claimed epoch: %v", h.p.Role())
	}
	if err := h.p.OnArbiterReply(h.now, 2, true, nil); err != nil {
		t.Fatal(err)
	}
	ob = run(t, h.p, &h.now, h.now+100*time.Millisecond)
	if h.p.Role() != ftcore.RoleHalted || len(ob.LAN) != 0 {
		t.Fatalf("a second grant of epoch 2 made the old primary %v, releasing %d", h.p.Role(), len(ob.LAN))
	}
}

// The mirror: the backup frozen while the primary gave it up and went on
// alone in epoch 2. On resuming it hears the primary's hellos of epoch 2
// and yields instead of claiming epoch 2 (a blank arbiter would grant it).
func TestResumedBackupYieldsToPrimaryAlone(t *testing.T) {
	h := newManual(t)
	h.now = time.Millisecond
	h.handshake(t)
	h.stepB(t)
	h.toB, h.toP = nil, nil
	ob := run(t, h.p, &h.now, h.now+300*time.Millisecond)
	if len(ob.Arbiter) == 0 || ob.Arbiter[0].Epoch != 2 {
		t.Fatalf("primary did not claim epoch 2: %+v", ob.Arbiter)
	}
	if err := h.p.OnArbiterReply(h.now, 2, true, nil); err != nil {
		t.Fatal(err)
	}
	ob = run(t, h.p, &h.now, h.now+60*time.Millisecond)
	if h.p.Role() != ftcore.RoleUnprotected || len(ob.Log) == 0 {
		t.Fatalf("primary alone: %v, %d hellos", h.p.Role(), len(ob.Log))
	}
	// B resumes.
	h.stepB(t)
	if bo := h.b.Outbox(); len(bo.Arbiter) != 0 {
		t.Fatalf("a backup frozen past the timeout claims at once: %+v", bo.Arbiter)
	}
	for _, f := range ob.Log {
		_ = h.b.OnLogFrame(h.now, f)
	}
	bo := h.b.Outbox()
	if e, ok := hasKind(bo.Events, ftcore.EventYield); !ok || e.Epoch != 2 || h.b.Role() != ftcore.RoleHalted {
		t.Fatalf("resumed backup did not yield to the primary of epoch 2: %v %+v", h.b.Role(), bo.Events)
	}
	_ = h.b.OnArbiterReply(h.now, 2, true, nil) // a stale grant, say
	bo = run(t, h.b, &h.now, h.now+100*time.Millisecond)
	if h.b.Role() != ftcore.RoleHalted || len(bo.LAN) != 0 || len(bo.Arbiter) != 0 {
		t.Fatalf("yielded backup: %v, %d released, claims %+v", h.b.Role(), len(bo.LAN), bo.Arbiter)
	}
}

// A backup still connected to its primary that hears a primary of a later
// epoch (its primary gave it up and won the next epoch) yields at once
// rather than waiting for a timeout and a claim it would lose.
func TestConnectedBackupYieldsToLaterEpoch(t *testing.T) {
	h := newManual(t)
	h.now = time.Millisecond
	h.handshake(t)
	h.stepP(t)
	h.deliverB(t, nil) // the session is confirmed: the backup follows A
	h.toB, h.toP = nil, nil
	// A primary of epoch 2 with the pair's key (A after winning epoch 2
	// without us, as far as B can tell).
	cfg := pairConfig(t, "A")
	cfg.Epoch = 2
	cfg.Rand = &zeroRand{n: 200}
	p2, err := ftcore.NewPrimary(cfg, newFake())
	if err != nil {
		t.Fatal(err)
	}
	if err := p2.Step(h.now); err != nil {
		t.Fatal(err)
	}
	for _, f := range p2.Outbox().Log {
		_ = h.b.OnLogFrame(h.now, f)
	}
	bo := h.b.Outbox()
	if e, ok := hasKind(bo.Events, ftcore.EventYield); !ok || e.Epoch != 2 {
		t.Fatalf("connected backup hearing a primary of epoch 2: %v %+v", h.b.Role(), bo.Events)
	}
}

// Two live primaries of one epoch (an arbiter that lost its state granted
// it twice) hear each other: each holds its output and asks the arbiter
// whether it holds the epoch; the one told no halts, the other releases.
func TestRivalPrimariesProve(t *testing.T) {
	for _, won := range []bool{true, false} {
		h, hellos := livePair(t)
		// A lone primary of epoch 2 (A, as if granted epoch 2 twice).
		cfg := pairConfig(t, "A")
		cfg.Epoch = 2
		cfg.Rand = &zeroRand{n: 50}
		cfg.StartClaim = true
		a, err := ftcore.NewPrimary(cfg, newFake())
		if err != nil {
			t.Fatal(err)
		}
		now := h.now
		ob := run(t, a, &now, now+10*time.Millisecond)
		if len(ob.Arbiter) == 0 {
			t.Fatal("no start claim")
		}
		_ = a.OnArbiterReply(now, 2, true, nil)
		ob = run(t, a, &now, now+30*time.Millisecond)
		if a.Role() != ftcore.RolePrimary || len(ob.Log) == 0 {
			t.Fatalf("second primary of epoch 2: %v, %d hellos", a.Role(), len(ob.Log))
		}
		// B (live in 2) hears A's hello of epoch 2: a rival.
		for _, f := range ob.Log {
			_ = h.b.OnLogFrame(h.now, f)
		}
		bo := h.b.Outbox()
		if _, ok := hasKind(bo.Events, ftcore.EventRival); !ok || !h.b.Status().Proving {
			t.Fatalf("live primary hearing a rival of its epoch: %+v", bo.Events)
		}
		if err := h.b.OnLANFrame(h.now, []byte("x")); err != nil {
			t.Fatal(err)
		}
		bo = run(t, h.b, &h.now, h.now+5*time.Millisecond)
		if len(bo.LAN) != 0 {
			t.Fatalf("released %d frames while proving", len(bo.LAN))
		}
		if len(bo.Arbiter) == 0 || bo.Arbiter[0].Epoch != 2 {
			t.Fatalf("proving asks %+v", bo.Arbiter)
		}
		_ = h.b.OnArbiterReply(h.now, 2, won, nil)
		bo = run(t, h.b, &h.now, h.now+5*time.Millisecond)
		switch {
		case won && (h.b.Role() != ftcore.RoleUnprotected || len(bo.LAN) != 1):
			t.Fatalf("proved: %v, released %d", h.b.Role(), len(bo.LAN))
		case !won && (h.b.Role() != ftcore.RoleHalted || len(bo.LAN) != 0):
			t.Fatalf("refused: %v, released %d", h.b.Role(), len(bo.LAN))
		}
		_ = hellos
	}
}

// A cold start (ColdStart): nothing is sent and no guest runs before the
// epoch is won, the claim waits ColdStartDelay, a live peer heard meanwhile
// makes it yield without claiming, and a win reports EventColdStart.
func TestColdStartClaim(t *testing.T) {
	cfg := pairConfig(t, "A")
	cfg.Epoch = 5
	cfg.StartClaim, cfg.ColdStart = true, true
	m := newFake()
	p, err := ftcore.NewPrimary(cfg, m)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Duration(1)
	ob := run(t, p, &now, 900*time.Millisecond)
	if len(ob.Log) != 0 || len(ob.Arbiter) != 0 || m.ICount() != 0 {
		t.Fatalf("before the delay: %d log frames, claims %+v, guest at %d", len(ob.Log), ob.Arbiter, m.ICount())
	}
	ob = run(t, p, &now, 1200*time.Millisecond)
	if len(ob.Arbiter) == 0 || ob.Arbiter[0].Epoch != 5 {
		t.Fatalf("no claim of epoch 5 after the delay: %+v", ob.Arbiter)
	}
	_ = p.OnArbiterReply(now, 5, true, nil)
	ob = run(t, p, &now, now+50*time.Millisecond)
	if _, ok := hasKind(ob.Events, ftcore.EventColdStart); !ok {
		t.Fatalf("no cold-start event: %+v", ob.Events)
	}
	if len(ob.Log) == 0 || p.Role() != ftcore.RolePrimary {
		t.Fatalf("after the grant: %v, %d hellos", p.Role(), len(ob.Log))
	}

	// A surviving peer goes live in epoch 5 during the delay: yield.
	h, hellos := livePair(t) // B live in epoch 2
	cfg = pairConfig(t, "A")
	cfg.Epoch, cfg.StartClaim, cfg.ColdStart = 2, true, true
	cfg.Rand = &zeroRand{n: 70}
	p, err = ftcore.NewPrimary(cfg, newFake())
	if err != nil {
		t.Fatal(err)
	}
	now = h.now
	run(t, p, &now, now+100*time.Millisecond)
	for _, f := range hellos {
		_ = p.OnLogFrame(now, f)
	}
	ob = run(t, p, &now, now+2*time.Second)
	if p.Role() != ftcore.RoleHalted || len(ob.Arbiter) != 0 {
		t.Fatalf("cold start hearing the peer live in its epoch: %v, claims %+v", p.Role(), ob.Arbiter)
	}
}

// An UNPROTECTED primary whose guest is idle (no timer armed) keeps saying
// hello, so a restarted backup can rejoin: its Deadline used to be "never".
func TestIdleUnprotectedPrimarySaysHello(t *testing.T) {
	h := newManual(t)
	h.mp.deadline, h.mp.period = 1<<62, 1<<62 // no timer: idle for good
	h.now = time.Millisecond
	h.handshake(t)
	h.toB = nil
	run(t, h.p, &h.now, h.now+300*time.Millisecond)
	if err := h.p.OnArbiterReply(h.now, 2, true, nil); err != nil {
		t.Fatal(err)
	}
	if h.p.Role() != ftcore.RoleUnprotected {
		t.Fatalf("role %v", h.p.Role())
	}
	h.p.Outbox()
	start := h.now
	ob := run(t, h.p, &h.now, start+200*time.Millisecond)
	if len(ob.Log) < 5 {
		t.Fatalf("an idle unprotected primary sent %d hellos in 200 ms (deadline %v)", len(ob.Log), h.p.Deadline()-h.now)
	}
}

// The read-only epoch query: a later epoch granted to the peer makes a
// live primary yield; an arbiter behind our epoch (its state lost) is told
// it again.
func TestArbiterCurrent(t *testing.T) {
	h, _ := livePair(t) // B live, unprotected in epoch 2
	h.b.OnArbiterCurrent(h.now, 0, "")
	ob := h.b.Outbox()
	if len(ob.Arbiter) != 1 || ob.Arbiter[0].Epoch != 2 || ob.Arbiter[0].Who != "B" {
		t.Fatalf("a blank arbiter is not told epoch 2 again: %+v", ob.Arbiter)
	}
	h.b.OnArbiterCurrent(h.now, 3, "A")
	ob = h.b.Outbox()
	if e, ok := hasKind(ob.Events, ftcore.EventYield); !ok || e.Epoch != 3 || h.b.Role() != ftcore.RoleHalted {
		t.Fatalf("epoch 3 granted to the peer: %v %+v", h.b.Role(), ob.Events)
	}
}

// A joining backup whose live peer came back with a fresh guest in a later
// epoch (a log from instruction 0, no snapshot) reports the cold start.
func TestJoinerSeesColdStart(t *testing.T) {
	cfgB := pairConfig(t, "B")
	cfgB.Join = true
	b, err := ftcore.NewBackup(cfgB, newFake())
	if err != nil {
		t.Fatal(err)
	}
	cfgA := pairConfig(t, "A")
	cfgA.Epoch = 2
	p, err := ftcore.NewPrimary(cfgA, newFake())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Millisecond
	var events []ftcore.Event
	for range 20 {
		_ = p.Step(now)
		for _, f := range p.Outbox().Log {
			_ = b.OnLogFrame(now, f)
		}
		_ = b.Step(now)
		ob := b.Outbox()
		events = append(events, ob.Events...)
		for _, f := range ob.Log {
			_ = p.OnLogFrame(now, f)
		}
		now += time.Millisecond
	}
	if e, ok := hasKind(events, ftcore.EventColdStart); !ok || e.Epoch != 2 {
		t.Fatalf("joiner took a log from 0 in epoch 2 silently: %+v", events)
	}
}

// An unprotected primary says hello on the second path too, so a backup cut
// off on the logging link learns there that its primary went on without it
// (and yields instead of claiming the epoch a blank arbiter would grant it
// again); a primary's own hello coming back over the LAN is no rival.
func TestSecondPathHelloFences(t *testing.T) {
	h := newManual(t)
	h.now = time.Millisecond
	h.handshake(t)
	h.stepP(t)
	h.deliverB(t, nil)
	h.toB, h.toP = nil, nil
	cfg := pairConfig(t, "A")
	cfg.Epoch, cfg.SecondPath, cfg.Rand = 2, true, &zeroRand{n: 200}
	p2, err := ftcore.NewPrimary(cfg, newFake())
	if err != nil {
		t.Fatal(err)
	}
	if err := p2.Step(h.now); err != nil {
		t.Fatal(err)
	}
	ob := p2.Outbox()
	if len(ob.PeerLAN) == 0 {
		t.Fatal("a primary waiting for a backup says no hello on the second path")
	}
	for _, f := range ob.PeerLAN {
		if err := h.b.OnPeerLANFrame(h.now, f); err != nil {
			t.Fatal(err)
		}
	}
	bo := h.b.Outbox()
	if e, ok := hasKind(bo.Events, ftcore.EventYield); !ok || e.Epoch != 2 || len(bo.Log) != 0 {
		t.Fatalf("backup hearing its primary live in epoch 2 on the LAN: %v %+v, %d log frames (a handshake there?)", h.b.Role(), bo.Events, len(bo.Log))
	}
	// p2's own hello, replayed to it over the LAN: not a rival.
	for _, f := range ob.PeerLAN {
		_ = p2.OnPeerLANFrame(h.now, f)
	}
	if _, ok := hasKind(p2.Outbox().Events, ftcore.EventRival); ok || p2.Status().Proving {
		t.Fatal("a primary took its own hello for a rival")
	}
}

// A primary frozen past the timeout holds the output its backup's
// acknowledgements (waiting in its socket through the freeze) would
// release, until it could hear a peer that went live meanwhile.
func TestFrozenPrimaryHoldsOutput(t *testing.T) {
	h := newManual(t)
	h.now = time.Millisecond
	h.handshake(t)
	if err := h.p.OnLANFrame(h.now, []byte("x")); err != nil {
		t.Fatal(err)
	}
	h.stepP(t)
	h.deliverB(t, nil) // the backup acks; the ack waits in A's socket
	h.now += 300 * time.Millisecond
	h.deliverP(t)
	if len(h.lan) != 0 {
		t.Fatalf("released %d frames at once after a 300 ms freeze", len(h.lan))
	}
	resumed := h.now
	ob := run(t, h.p, &h.now, resumed+30*time.Millisecond)
	if len(ob.LAN) != 0 {
		t.Fatalf("released %d frames 30 ms after a freeze (quiet period 2×HelloInterval = 40 ms)", len(ob.LAN))
	}
	ob = run(t, h.p, &h.now, resumed+60*time.Millisecond)
	if len(ob.LAN) != 1 || h.p.Role() != ftcore.RolePrimary {
		t.Fatalf("after the quiet period, with no peer live elsewhere: %v released %d", h.p.Role(), len(ob.LAN))
	}
}
