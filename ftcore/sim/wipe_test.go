package sim_test

import (
	"testing"
	"time"

	"ftbox/ftcore"
	"ftbox/ftcore/sim"
)

// TestSimResumedPrimaryWipedArbiter: the primary is frozen (SIGSTOP) long
// enough for its backup to go live in epoch 2; then the arbiter loses its
// state (restarted with --init: it would grant epoch 2 again); then the
// primary resumes. It must hear the live B before it claims, yield and
// rejoin as B's backup — never serve beside B, although the arbiter would
// say yes — and B's periodic query must re-assert epoch 2 on the fresh
// arbiter. Nothing acknowledged is lost, one server at a time.
func TestSimResumedPrimaryWipedArbiter(t *testing.T) {
	for seed := range uint64(10) {
		c := newIncr(400)
		w, err := sim.New(sim.Options{
			Seed: seed, NewMachine: newCounterVM, Client: c,
			Config: ftcore.Config{DigestInterval: 20 * time.Millisecond},
			LogPB:  sim.Faults{Reorder: 0.05, Dup: 0.02}, LogBP: sim.Faults{Reorder: 0.05, Dup: 0.02},
		})
		if err != nil {
			t.Fatal(err)
		}
		w.Run(30 * time.Millisecond)
		w.Pause(0, 200*time.Millisecond)
		if !w.RunUntil(w.Now+time.Second, func() bool { return w.B.Role() == ftcore.RoleUnprotected }) {
			t.Fatalf("seed %d: B did not go live during the pause: %v", seed, w.B.Role())
		}
		if w.B.Epoch() != 2 || w.Boxes[0].PausedTil <= w.Now {
			t.Fatalf("seed %d: B live in epoch %d at %v, A paused until %v", seed, w.B.Epoch(), w.Now, w.Boxes[0].PausedTil)
		}
		w.Run(w.Now + 10*time.Millisecond)
		w.WipeArbiter()
		if e, h, _ := w.Arbiter.Current(); e != 0 || h != "" {
			t.Fatalf("seed %d: wiped arbiter says %d/%q", seed, e, h)
		}
		resume := w.Boxes[0].PausedTil
		a := w.Node(0)
		rejoined := func() bool {
			a = w.Node(0)
			return w.Now > resume && a.Role() == ftcore.RoleBackup && !a.Status().Syncing && w.B.Role() == ftcore.RolePrimary
		}
		if !w.RunUntil(resume+2*time.Second, rejoined) {
			t.Fatalf("seed %d: A did not rejoin B after resuming: A %v epoch %d, B %v epoch %d, grants %v, %d yields",
				seed, a.Role(), a.Epoch(), w.B.Role(), w.B.Epoch(), w.Grants, w.Counts.Yields)
		}
		if w.Counts.Yields != 1 || a.Epoch() != 2 || w.B.Epoch() != 2 {
			t.Fatalf("seed %d: %d yields, A in epoch %d, B in %d", seed, w.Counts.Yields, a.Epoch(), w.B.Epoch())
		}
		for _, g := range w.Grants {
			if g.Who == "A" && g.Epoch > 1 {
				t.Fatalf("seed %d: the resumed A was granted epoch %d at %v (grants %v)", seed, g.Epoch, g.At, w.Grants)
			}
		}
		w.RunUntil(w.Now+3*time.Second, c.Done)
		w.Run(w.Now + 2*time.Second) // B's query (every second) re-asserts epoch 2 on the fresh arbiter
		if e, h, _ := w.Arbiter.Current(); e != 2 || h != "B" {
			t.Errorf("seed %d: the arbiter says %d/%q, want 2/B re-asserted by the live B", seed, e, h)
		}
		rep, err := w.Verify()
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if err := c.Check(); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if seed == 0 {
			t.Logf("seed 0: A resumed at %v, rejoined; %d outputs", resume, rep.Released)
		}
	}
}
