package ftcore_test

import (
	"testing"
	"time"

	"ftbox/ftcore"
)

// After the handshake the first heartbeat is due at once on both sides
// (hbAt was 0, "none", so an idle pair sent none until something else
// made the box step).
func TestFirstHeartbeatDueAfterHandshake(t *testing.T) {
	h := newManual(t)
	h.now = time.Millisecond // 0 is ftcore's "never"
	h.handshake(t)           // the primary's guest ran to idle in the first step
	if d := h.p.Deadline(); d == 0 || d > h.now {
		t.Fatalf("primary: deadline %v after the handshake at %v: first heartbeat not due", d, h.now)
	}
	h.stepP(t)
	if len(h.toB) == 0 {
		t.Fatal("primary sent no heartbeat after the handshake")
	}
	if d := h.b.Deadline(); d == 0 || d > h.now {
		t.Fatalf("backup: deadline %v after the handshake at %v: first heartbeat not due", d, h.now)
	}
}

// A fresh box is due for its first Step (Deadline 0 means "nothing").
func TestFreshBoxDeadline(t *testing.T) {
	h := newManual(t)
	if h.p.Deadline() == 0 || h.b.Deadline() == 0 {
		t.Fatal("a fresh box has no deadline")
	}
}

// The primary's hello counts as hearing the primary: failure detection
// counts from it, not from the backup's start.
func TestBackupHelloCountsAsHeard(t *testing.T) {
	h := newManual(t)
	cfgB := pairConfig(t, "B")
	cfgB.ConnectTimeout = 50 * time.Millisecond
	var err error
	if h.b, err = ftcore.NewBackup(cfgB, h.mb); err != nil {
		t.Fatal(err)
	}
	h.stepB(t) // starts at 0
	h.now = 45 * time.Millisecond
	h.stepP(t) // the primary's first hello
	for _, f := range h.toB {
		_ = h.b.OnLogFrame(h.now, f)
	}
	h.toB = nil
	if h.b.Status().PeerLastHeard != h.now {
		t.Fatalf("hello not counted as heard: %v", h.b.Status().PeerLastHeard)
	}
	h.now = 100 * time.Millisecond // past ConnectTimeout, within Timeout (90 ms) of the hello
	h.stepB(t)
	if r := h.b.Role(); r != ftcore.RoleBackup {
		t.Fatalf("backup %v 55 ms after the primary's hello", r)
	}
}

// Failure detection does not start before the peer was first heard: a
// backup started long after its primary does not make it fail over; after
// ConnectTimeout, a primary that never heard its backup claims the next
// epoch (a cold start alone).
func TestNoFailureDetectionBeforeFirstContact(t *testing.T) {
	cfg := pairConfig(t, "A")
	cfg.ConnectTimeout = 2 * time.Second
	p, err := ftcore.NewPrimary(cfg, newFake())
	if err != nil {
		t.Fatal(err)
	}
	for now := time.Duration(1); now < 1500*time.Millisecond; now += 10 * time.Millisecond {
		if err := p.Step(now); err != nil {
			t.Fatal(err)
		}
		if ob := p.Outbox(); len(ob.Arbiter) > 0 || p.Role() != ftcore.RolePrimary {
			t.Fatalf("at %v, never having heard its backup: %v, claims %v", now, p.Role(), ob.Arbiter)
		}
	}
	claimed := false
	for now := 1500 * time.Millisecond; now < 2100*time.Millisecond && !claimed; now += 10 * time.Millisecond {
		_ = p.Step(now)
		claimed = len(p.Outbox().Arbiter) > 0
	}
	if !claimed {
		t.Fatal("no claim after ConnectTimeout")
	}
	// The same with a late backup: it connects after 500 ms, no failover.
	h := newManual(t)
	for h.now = 1; h.now < 500*time.Millisecond; h.now += 10 * time.Millisecond {
		h.stepP(t)
	}
	h.toB = nil
	h.handshake(t)
	if h.p.Role() != ftcore.RolePrimary || h.b.Role() != ftcore.RoleBackup {
		t.Fatalf("late backup: %v %v", h.p.Role(), h.b.Role())
	}
	if ob := h.p.Outbox(); len(ob.Arbiter) > 0 {
		t.Fatalf("claims %v", ob.Arbiter)
	}
}

func TestStartRole(t *testing.T) {
	for _, c := range []struct {
		name    string
		primary bool
		latest  uint64
		holder  string
		want    ftcore.Start
	}{
		{"A", true, 0, "", ftcore.Start{Role: ftcore.RolePrimary, Epoch: 1, Claim: true}}, // a new pair: the primary claims epoch 1
		{"B", false, 0, "", ftcore.Start{Role: ftcore.RoleBackup, Epoch: 1}},
		{"A", true, 4, "B", ftcore.Start{Role: ftcore.RoleBackup, Epoch: 4, Join: true}},                // the old primary restarts after a failover: joins
		{"B", false, 4, "B", ftcore.Start{Role: ftcore.RolePrimary, Epoch: 5, Claim: true, Cold: true}}, // the last live box restarts: a cold start, new epoch
		{"B", false, 4, "A", ftcore.Start{Role: ftcore.RoleBackup, Epoch: 4, Join: true}},
		{"A", true, 1, "A", ftcore.Start{Role: ftcore.RolePrimary, Epoch: 2, Claim: true, Cold: true}}, // both boxes of a new pair died: cold
	} {
		if got := ftcore.StartRole(c.name, c.primary, c.latest, c.holder); got != c.want {
			t.Errorf("%s primary=%v latest %d/%q: got %+v, want %+v", c.name, c.primary, c.latest, c.holder, got, c.want)
		}
	}
}
