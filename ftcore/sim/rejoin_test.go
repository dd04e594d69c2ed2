package sim_test

import (
	"testing"
	"time"

	"ftbox/ftcore"
	"ftbox/ftcore/sim"
)

// rejoinRun: A (primary) crashes, B goes live; A is restarted as a fresh
// process (a fresh guest): it learns from the arbiter that B holds the
// epoch, joins as B's backup by state transfer while B keeps serving, and
// the pair is protected again; then B crashes and A takes over. The client
// (INCR with retries) must lose no acknowledged increment across both
// failovers.
type rejoinFigures struct {
	snapshot          uint64
	transfer, protect time.Duration
}

func rejoinRun(t *testing.T, seed uint64, newMachine func() (ftcore.Machine, error), faults sim.Faults) rejoinFigures {
	t.Helper()
	c := newIncr(600)
	w, err := sim.New(sim.Options{
		Seed: seed, NewMachine: newMachine, Client: c,
		Config: ftcore.Config{DigestInterval: 20 * time.Millisecond},
		LogPB:  faults, LogBP: faults,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Run(40 * time.Millisecond)
	w.Crash(0)
	if !w.RunUntil(w.Now+time.Second, func() bool { return w.B.Role() == ftcore.RoleUnprotected }) {
		t.Fatalf("seed %d: B did not go live: %v", seed, w.B.Role())
	}
	w.Run(w.Now + 20*time.Millisecond)
	restart := w.Now
	if err := w.Restart(0); err != nil {
		t.Fatal(err)
	}
	a := w.Node(0)
	if a.Role() != ftcore.RoleBackup || a.Epoch() != 2 || !a.Status().Syncing {
		t.Fatalf("seed %d: restarted A is %v in epoch %d (syncing %v), want a joining backup in epoch 2", seed, a.Role(), a.Epoch(), a.Status().Syncing)
	}
	protected := func() bool {
		as, bs := a.Status(), w.B.Status()
		return as.Role == ftcore.RoleBackup && !as.Syncing && bs.Role == ftcore.RolePrimary && !bs.Syncing
	}
	if !w.RunUntil(w.Now+2*time.Second, protected) {
		t.Fatalf("seed %d: not protected again: A %+v\nB %+v", seed, a.Status(), w.B.Status())
	}
	bs := w.B.Status()
	fig := rejoinFigures{snapshot: bs.SnapshotBytes, transfer: bs.SyncDone - bs.SyncStarted, protect: w.Now - restart}
	if bs.SnapshotBytes == 0 || a.Status().SnapshotBytes != bs.SnapshotBytes || bs.Epoch != 2 {
		t.Fatalf("seed %d: snapshot %d/%d bytes, epoch %d", seed, bs.SnapshotBytes, a.Status().SnapshotBytes, bs.Epoch)
	}
	if w.Boxes[0].Probe.Restored != 1 {
		t.Fatalf("seed %d: A restored %d snapshots", seed, w.Boxes[0].Probe.Restored)
	}
	// The pair is in step: the digests the primary logs are compared.
	w.Run(w.Now + 50*time.Millisecond)
	if as := a.Status(); as.DigestMismatches != 0 || as.DigestsCompared < 2 {
		t.Fatalf("seed %d: A compared %d digests, %d mismatches", seed, as.DigestsCompared, as.DigestMismatches)
	}
	w.Crash(1)
	if !w.RunUntil(w.Now+time.Second, func() bool { return a.Role() == ftcore.RoleUnprotected }) {
		t.Fatalf("seed %d: rejoined A did not take over: %v", seed, a.Role())
	}
	if a.Epoch() != 3 {
		t.Fatalf("seed %d: A live in epoch %d, want 3", seed, a.Epoch())
	}
	w.RunUntil(w.Now+3*time.Second, c.Done)
	if err := c.Check(); err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	// The survivor's guest was restored from B's snapshot: the reference
	// run is B's inputs up to the snapshot, then A's.
	rep, err := w.Verify()
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	if rep.Survivor != 0 || rep.DigestsCompared < 2 {
		t.Fatalf("seed %d: survivor %d, %d digests compared", seed, rep.Survivor, rep.DigestsCompared)
	}
	return fig
}

func TestRejoinFake(t *testing.T) {
	lossy := sim.Faults{Loss: 0.05, Dup: 0.02, Reorder: 0.05}
	var worst rejoinFigures
	for seed := range uint64(20) {
		f := rejoinRun(t, seed, newCounterVM, lossy)
		worst.protect = max(worst.protect, f.protect)
		worst.transfer = max(worst.transfer, f.transfer)
	}
	t.Logf("fake guest, 5%% loss: worst transfer %v, worst restart → protected %v (simulated time)", worst.transfer, worst.protect)
}

func TestRejoinNetsvc(t *testing.T) {
	for seed := range uint64(3) {
		f := rejoinRun(t, seed, newNetsvc, sim.Faults{})
		t.Logf("netsvc seed %d: snapshot %d bytes, transfer %v, restart → protected %v (simulated time)", seed, f.snapshot, f.transfer, f.protect)
	}
}

// TestRejoinIdleGuest: the workload is over before the primary crashes, so
// the promoted backup's guest idles with no timer armed. It must still say
// hello (a fresh channel's first hello is due at once: its deadline used to
// be 0, "no timer", and the live box was never stepped again), so that the
// restarted A can rejoin.
func TestRejoinIdleGuest(t *testing.T) {
	for seed := range uint64(5) {
		c := newIncr(20)
		w, err := sim.New(sim.Options{Seed: seed, NewMachine: newCounterVM, Client: c})
		if err != nil {
			t.Fatal(err)
		}
		if !w.RunUntil(time.Second, c.Done) {
			t.Fatalf("seed %d: workload not done", seed)
		}
		w.Run(w.Now + 20*time.Millisecond)
		w.Crash(0)
		if !w.RunUntil(w.Now+time.Second, func() bool { return w.B.Role() == ftcore.RoleUnprotected }) {
			t.Fatalf("seed %d: B did not go live: %v", seed, w.B.Role())
		}
		if w.B.Deadline() == 0 {
			t.Errorf("seed %d: the live B has nothing scheduled: it will never say hello", seed)
		}
		w.Run(w.Now + 30*time.Millisecond)
		if err := w.Restart(0); err != nil {
			t.Fatal(err)
		}
		a := w.Node(0)
		if !w.RunUntil(w.Now+time.Second, func() bool {
			return a.Role() == ftcore.RoleBackup && !a.Status().Syncing && w.B.Role() == ftcore.RolePrimary
		}) {
			t.Fatalf("seed %d: A did not rejoin the idle B: A %v syncing %v, B %v", seed, a.Role(), a.Status().Syncing, w.B.Role())
		}
		if _, err := w.Verify(); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
}
