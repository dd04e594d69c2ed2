package sim

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"ftbox/ftcore"
	"ftbox/ftcore/logwire"
)

// Report is what Verify found and measured.
type Report struct {
	Survivor   int    // index of the box whose guest is the service at the end
	Released   uint64 // distinct outputs put on the LAN (the highest number)
	Duplicates uint64 // outputs put on the LAN twice (by both boxes)
	// DupAge is the largest time between the old primary releasing an
	// output that the new primary released again and the new primary
	// declaring it failed.
	DupAge          time.Duration
	Reference       int // frames the reference run produced
	DigestsCompared int // digests compared against the reference run (plus ftcore's own, in Status)
	Epochs          int // epochs in which output was released
}

// Check verifies the invariants (see Verify) and returns the number of
// duplicated outputs.
func (w *World) Check() (dups uint64, err error) {
	r, err := w.Verify()
	return r.Duplicates, err
}

// Verify checks the invariants of DESIGN.md on what happened so far:
//
//   - at most one box released output in any epoch;
//   - no output lost: the outputs on the LAN, in the order they appeared,
//     are 1, 2, …, n with repeats only of outputs already out (a repeat of
//     k only by the other box: the in-flight window of a failover), and
//     every one is byte-equal to frame k of the reference run: a fresh
//     machine fed exactly the inputs the surviving guest consumed, with no
//     replication, network or failure; no more than the outputs still held
//     is missing at the end;
//   - the backup's state equals the primary's: no divergence alarm or
//     digest mismatch in ftcore, the reference run's digest equals the
//     survivor's at its final instruction count, and a box still replaying
//     consumed a prefix of the survivor's inputs and has the reference
//     digest at its own instruction count;
//   - no forged frame authenticated, no unexpected error from a box.
func (w *World) Verify() (Report, error) {
	var rep Report
	var errs []error
	fail := func(f string, a ...any) { errs = append(errs, fmt.Errorf(f, a...)) }

	for _, e := range w.Errors {
		fail("%s", e)
	}
	by := map[uint64]int{}
	for _, r := range w.Releases {
		if who, ok := by[r.Epoch]; ok && who != r.Box {
			fail("epoch %d: both %s and %s released output", r.Epoch, w.Boxes[who].Name, w.Boxes[r.Box].Name)
			break
		}
		by[r.Epoch] = r.Box
	}
	rep.Epochs = len(by)
	for _, e := range w.Events {
		if e.Kind == ftcore.EventDivergence {
			fail("divergence alarm at icount %d", e.ICount)
			break
		}
	}
	if bs := w.B.Status(); bs.DigestMismatches != 0 {
		fail("%d digest mismatches", bs.DigestMismatches)
	}

	// The output stream.
	var seen uint64
	firstAt := map[uint64]Release{}
	fd := w.B.Status().FailureDetected
	for _, r := range w.Releases {
		switch {
		case r.Num == seen+1:
			seen = r.Num
			firstAt[r.Num] = r
		case r.Num <= seen:
			rep.Duplicates++
			o := firstAt[r.Num]
			if o.Box == r.Box {
				fail("output %d released twice by %s", r.Num, w.Boxes[r.Box].Name)
			}
			if !bytes.Equal(o.Frame, r.Frame) {
				fail("output %d differs between its two releases", r.Num)
			}
			if o.Box == 0 && fd != 0 && fd > o.At {
				rep.DupAge = max(rep.DupAge, fd-o.At)
			}
		default:
			fail("output lost: output %d released by %s at %v after %d (outputs %d–%d never put on the LAN)",
				r.Num, w.Boxes[r.Box].Name, r.At, seen, seen+1, r.Num-1)
			seen = r.Num
		}
	}
	rep.Released = seen
	// The promoted backup re-releases only outputs past the last watermark
	// it applied: the duplicates are exactly the old primary's releases
	// whose watermark had not reached it (the in-flight window).
	if bs := w.B.Status(); bs.GoLiveFirst != 0 && bs.GoLiveFirst <= bs.Watermark {
		fail("backup went live releasing from output %d, below its watermark %d", bs.GoLiveFirst, bs.Watermark)
	}

	// The reference run.
	sv := w.survivor()
	rep.Survivor = sv
	s := w.Boxes[sv]
	var points []ReplayPoint
	other := w.Boxes[1-sv]
	replica := !other.Dead && other.node.Role() == ftcore.RoleBackup && sv == 0
	if replica {
		if err := prefix(other.Probe, s.Probe); err != nil {
			fail("backup's inputs: %v", err)
			replica = false
		} else {
			points = append(points, ReplayPoint{Events: len(other.Probe.Events), ICount: other.Probe.ICount()})
		}
	}
	m, err := w.opts.NewMachine()
	if err != nil {
		return rep, fmt.Errorf("reference machine: %w", err)
	}
	ref, digests, err := Replay(m, s.Probe.Events, s.Probe.ICount(), points)
	rep.Reference = len(ref)
	if err != nil {
		fail("%v", err)
	} else {
		if len(ref) != s.Probe.Emitted {
			fail("reference run emitted %d frames, %s's guest %d", len(ref), s.Name, s.Probe.Emitted)
		}
		if !s.Dead && digests[len(digests)-1] != s.Probe.Digest() {
			fail("%s's state differs from the reference run's at icount %d", s.Name, s.Probe.ICount())
		}
		rep.DigestsCompared++
		if replica {
			rep.DigestsCompared++
			if digests[0] != other.Probe.Digest() {
				fail("backup's state differs from the reference run's at icount %d", other.Probe.ICount())
			}
		}
		for _, r := range w.Releases {
			if r.Num > uint64(len(ref)) || !bytes.Equal(ref[r.Num-1], r.Frame) {
				fail("output %d released by %s is not the reference run's output %d", r.Num, w.Boxes[r.Box].Name, r.Num)
				break
			}
		}
		held := uint64(s.node.Status().OutputsHeld)
		if !s.Dead && seen+held < uint64(len(ref)) {
			fail("output lost: %d outputs produced by the reference run, %d on the LAN, %d held", len(ref), seen, held)
		}
	}
	return rep, errors.Join(errs...)
}

// survivor is the box whose guest carries the service at the end: the one
// alive in a serving role, else the one alive, else the one that got further.
func (w *World) survivor() int {
	serving := func(b *Box) bool {
		r := b.node.Role()
		return !b.Dead && (r == ftcore.RolePrimary || r == ftcore.RoleUnprotected)
	}
	a, b := w.Boxes[0], w.Boxes[1]
	switch {
	case serving(a) && serving(b):
		if b.node.Epoch() > a.node.Epoch() {
			return 1
		}
		return 0
	case serving(a):
		return 0
	case serving(b):
		return 1
	case !a.Dead && a.node.Role() != ftcore.RoleHalted:
		return 0
	case !b.Dead && b.node.Role() != ftcore.RoleHalted:
		return 1
	case len(b.Probe.Events) > len(a.Probe.Events):
		return 1
	}
	return 0
}

// prefix checks that p's inputs are a prefix of q's.
func prefix(p, q *Probe) error {
	if len(p.Events) > len(q.Events) {
		return fmt.Errorf("%d inputs, the primary %d", len(p.Events), len(q.Events))
	}
	for i, e := range p.Events {
		f := q.Events[i]
		if !sameEntry(e, f) {
			return fmt.Errorf("input %d differs: %v at %d, the primary's %v at %d", i, e.Type(), icountOf(e), f.Type(), icountOf(f))
		}
	}
	return nil
}

func sameEntry(a, b logwire.Entry) bool {
	switch a := a.(type) {
	case logwire.InputFrame:
		b, ok := b.(logwire.InputFrame)
		return ok && a.ICount == b.ICount && bytes.Equal(a.Frame, b.Frame)
	case logwire.ConsoleInput:
		b, ok := b.(logwire.ConsoleInput)
		return ok && a.ICount == b.ICount && bytes.Equal(a.Data, b.Data)
	case logwire.ClockSync:
		b, ok := b.(logwire.ClockSync)
		return ok && a == b
	}
	return false
}
