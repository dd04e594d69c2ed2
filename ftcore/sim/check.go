package sim

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
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
	// DoubleGrants counts epochs the arbiter granted to both boxes (it
	// lost its state between the two grants; see checkGrants).
	DoubleGrants int
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
//   - no box released output without the arbiter's grant of its epoch,
//     and a box granted an epoch the arbiter had forgotten granting to the
//     other box serves in it only after the other stopped (checkGrants);
//   - never two boxes serving at the same time: the two boxes' releases
//     never interleave, and each switch of the releasing box goes to a
//     higher epoch than any the other released in (checkOneServer);
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
	w.checkGrants(fail, &rep)
	w.checkOneServer(fail)
	for _, e := range w.Events {
		if e.Kind == ftcore.EventDivergence {
			fail("divergence alarm at icount %d", e.ICount)
			break
		}
	}
	for _, c := range w.cores {
		if st := c.Status(); st.DigestMismatches != 0 {
			fail("%d digest mismatches", st.DigestMismatches)
		}
	}

	// The output stream.
	var seen uint64
	var differ int
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
				if differ++; differ == 1 {
					fail("output %d differs between its two releases (%s's at %v, %s's at %v)", r.Num, w.Boxes[o.Box].Name, o.At, w.Boxes[r.Box].Name, r.At)
				}
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
	if differ > 1 {
		fail("%d outputs differ between their two releases", differ)
	}
	rep.Released = seen
	// The promoted backup re-releases only outputs past the last watermark
	// it applied: the duplicates are exactly the old primary's releases
	// whose watermark had not reached it (the in-flight window).
	for _, c := range w.cores {
		if bk, ok := c.(*ftcore.Backup); ok {
			if bs := bk.Status(); bs.GoLiveFirst != 0 && bs.GoLiveFirst <= bs.Watermark {
				fail("backup went live releasing from output %d, below its watermark %d", bs.GoLiveFirst, bs.Watermark)
			}
		}
	}

	// The reference run: a fresh machine fed the survivor's whole input
	// history (for a guest restored from a snapshot, the sender's inputs up
	// to the snapshot, then its own). Every snapshot restored on the way
	// must have the reference digest at its instruction count, and a live
	// replica the reference digest at its own.
	sv := w.survivor()
	rep.Survivor = sv
	s := w.Boxes[sv]
	hist, base, err := w.history(s.Probe)
	if err != nil {
		fail("%s's input history: %v", s.Name, err)
		return rep, errors.Join(errs...)
	}
	type want struct {
		pt     ReplayPoint
		digest [32]byte
		what   string
	}
	var wants []want
	for _, q := range w.probes {
		if q.Restored == 0 {
			continue
		}
		qh, _, err := w.history(q)
		if err != nil {
			fail("a restored guest's input history: %v", err)
			continue
		}
		n := len(qh) - len(q.Events) // events before its snapshot
		if err := prefixOf(qh[:n], hist); err != nil {
			continue // restored from a history the survivor's is not: nothing to compare with
		}
		wants = append(wants, want{ReplayPoint{n, q.From.ICount}, q.From.Digest, fmt.Sprintf("snapshot restored at icount %d", q.From.ICount)})
	}
	other := w.Boxes[1-sv]
	replica := !other.Dead && other.node.Role() == ftcore.RoleBackup && (!other.joined || other.Probe.Restored > 0)
	if replica {
		oh, _, err := w.history(other.Probe)
		if err == nil {
			err = prefixOf(oh, hist)
		}
		if err != nil {
			fail("backup's inputs: %v", err)
			replica = false
		} else {
			wants = append(wants, want{ReplayPoint{len(oh), other.Probe.ICount()}, other.Probe.Digest(), fmt.Sprintf("backup's state at icount %d", other.Probe.ICount())})
		}
	}
	slices.SortStableFunc(wants, func(a, b want) int {
		if a.pt.Events != b.pt.Events {
			return a.pt.Events - b.pt.Events
		}
		return cmp.Compare(a.pt.ICount, b.pt.ICount)
	})
	var points []ReplayPoint
	for _, x := range wants {
		points = append(points, x.pt)
	}
	m, err := w.opts.NewMachine()
	if err != nil {
		return rep, fmt.Errorf("reference machine: %w", err)
	}
	ref, digests, err := Replay(m, hist, s.Probe.ICount(), points)
	rep.Reference = len(ref)
	if err != nil {
		fail("%v", err)
	} else {
		if len(ref) != base+s.Probe.Emitted {
			fail("reference run emitted %d frames, %s's guest %d", len(ref), s.Name, base+s.Probe.Emitted)
		}
		if !s.Dead && digests[len(digests)-1] != s.Probe.Digest() {
			fail("%s's state differs from the reference run's at icount %d", s.Name, s.Probe.ICount())
		}
		rep.DigestsCompared++
		for i, x := range wants {
			rep.DigestsCompared++
			if digests[i] != x.digest {
				fail("%s differs from the reference run's", x.what)
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
// alive in a serving role; else the one of the later epoch (a backup that
// went live and died carries the service further than the primary it
// replaced); else the one with the longer input history (a joining
// backup that never restored a snapshot has none).
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
	case a.node.Epoch() != b.node.Epoch():
		if b.node.Epoch() > a.node.Epoch() {
			return 1
		}
		return 0
	}
	ha, _, _ := w.history(a.Probe)
	hb, _, _ := w.history(b.Probe)
	if len(hb) > len(ha) {
		return 1
	}
	return 0
}

// history is everything a probe's guest was injected since instruction 0:
// for a guest restored from a snapshot, the inputs of the guest that took
// the snapshot up to it (found among every probe by its icount and digest),
// then its own. base is the number of frames the guest emitted before its
// probe's Emitted counts.
func (w *World) history(p *Probe) (events []logwire.Entry, base int, err error) {
	events = slices.Clone(p.Events)
	for depth := 0; p.Restored > 0; depth++ {
		if depth > len(w.probes) {
			return nil, 0, errors.New("snapshot chain loops")
		}
		var from *Probe
		var sm SaveMark
		for _, q := range w.probes {
			if q == p {
				continue
			}
			for _, m := range q.Saves {
				if m.ICount == p.From.ICount && m.Digest == p.From.Digest {
					from, sm = q, m
				}
			}
		}
		if from == nil {
			return nil, 0, fmt.Errorf("restored a snapshot at icount %d that no guest took (or with another digest)", p.From.ICount)
		}
		events = append(slices.Clone(from.Events[:sm.Events]), events...)
		base += sm.Emitted
		p = from
	}
	return events, base, nil
}

// prefixOf checks that the inputs p are a prefix of q.
func prefixOf(p, q []logwire.Entry) error {
	if len(p) > len(q) {
		return fmt.Errorf("%d inputs, the primary %d", len(p), len(q))
	}
	for i, e := range p {
		f := q[i]
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

// checkGrants: no box goes live without a grant, and a double grant (the
// arbiter lost its state) never makes a second server.
//
// Every output of epoch e is released by a box that holds a grant of e
// made at or before the release; a box still serving at the end holds one
// of its epoch. w.Grants keeps every grant across WipeArbiter, so once the
// arbiter forgot, an epoch may have two grants, one to each box. Which of
// them is "the" grant? Neither can be singled out: the first is the one
// the service was built on, but the second is what the arbiter now says
// (and what it tells a proving rival). So the check accepts a release by
// either grantee, and puts the weight on what a double grant must never
// lead to:
//
//   - a double grant is a grant of e to box X made after the arbiter, in an
//     earlier incarnation (before a wipe), granted e or a later epoch to
//     the other box Y: the arbiter forgot Y's claim to the service;
//   - X may release output in e only if Y released in no epoch ≥ e before
//     X's first release in e, and in no epoch ≤ e after it: Y's service in
//     e' ≥ e followed by X's in e is a forgotten service overridden by a
//     stale one (the split brain the fencing prevents: X must have heard Y
//     live and yielded, or lost its proof); Y may serve again only by a
//     later takeover in a newer epoch.
//
// This is what "at most one box per epoch" and checkOneServer imply for a
// double grant; it is checked on its own for a message that names the
// grants and the wipe. It is stricter than the grant history alone: even
// the box the arbiter's current state names as the holder must not serve
// after a box whose grant was forgotten, in an epoch that is not newer. A
// double grant nobody acted on (the grantee heard its peer live and
// yielded, or was told no when proving) is counted in Report.DoubleGrants
// and is fine.
func (w *World) checkGrants(fail func(string, ...any), rep *Report) {
	grants := map[uint64][]Grant{}
	for _, g := range w.Grants {
		grants[g.Epoch] = append(grants[g.Epoch], g)
	}
	granted := func(epoch uint64, box int, at time.Duration) bool {
		for _, g := range grants[epoch] {
			if g.Who == w.Boxes[box].Name && g.At <= at {
				return true
			}
		}
		return len(grants[epoch]) == 0 && epoch == 1 && box == 0 // the cold pair's primary
	}
	for _, r := range w.Releases {
		if !granted(r.Epoch, r.Box, r.At) {
			fail("%s released output %d in epoch %d at %v without the arbiter's grant (grants %v)", w.Boxes[r.Box].Name, r.Num, r.Epoch, r.At, w.Grants)
			break
		}
	}
	for i, b := range w.Boxes {
		if r := b.node.Role(); !b.Dead && (r == ftcore.RolePrimary || r == ftcore.RoleUnprotected) && !granted(b.node.Epoch(), i, w.Now) {
			fail("%s serves in epoch %d without the arbiter's grant (grants %v)", b.Name, b.node.Epoch(), w.Grants)
		}
	}
	doubled := map[uint64]bool{}
	for i, g := range w.Grants {
		for _, h := range w.Grants[:i] {
			if h.Gen >= g.Gen || h.Who == g.Who || h.Epoch < g.Epoch {
				continue
			}
			// g is a double grant: the other box held h (epoch ≥ g's) in
			// an earlier incarnation of the arbiter.
			if h.Epoch == g.Epoch && !doubled[g.Epoch] {
				doubled[g.Epoch] = true
				rep.DoubleGrants++
			}
			x := 0
			if g.Who == w.Boxes[1].Name {
				x = 1
			}
			var xFirst time.Duration = -1
			for _, r := range w.Releases {
				if r.Box == x && r.Epoch == g.Epoch && r.At >= g.At {
					xFirst = r.At
					break
				}
			}
			if xFirst < 0 {
				break // X never served on the double grant
			}
			for _, r := range w.Releases {
				if r.Box == 1-x && (r.At < xFirst && r.Epoch >= g.Epoch || r.At >= xFirst && r.Epoch <= g.Epoch) {
					fail("double grant: %s was granted epoch %d at %v after the arbiter forgot its grant of epoch %d to %s (wiped at %v), and released output in it from %v, while %s released output %d in epoch %d at %v",
						g.Who, g.Epoch, g.At, h.Epoch, h.Who, w.Wipes, xFirst, w.Boxes[1-x].Name, r.Num, r.Epoch, r.At)
					return
				}
			}
			break
		}
	}
}

// checkOneServer: never two boxes serving at the same simulated time. A
// box serves from its first release to its last; the releases (in the
// order they went out) switch from one box to the other only to an epoch
// above every epoch the other box released in, and strictly later: the old
// server never releases again beside (or after) the new one in an epoch
// that is not newer. A failover's in-flight duplicates are outputs of the
// old primary's epoch released before the new primary's first release, so
// they pass.
//
// No exception, not even a late duplicate (an output the old server
// releases again, byte-equal, after the new one took over): a resumed old
// primary acting on acknowledgements that waited in its socket through a
// pause used to do that; it now waits after a freeze (ftcore's quiet
// period) and yields to the live peer instead.
func (w *World) checkOneServer(fail func(string, ...any)) {
	var top [2]uint64         // highest epoch each box released in so far (0: none)
	var last [2]time.Duration // each box's latest release
	for _, r := range w.Releases {
		o := 1 - r.Box
		if top[o] != 0 && (r.Epoch <= top[o] || r.At <= last[o]) {
			fail("two servers: %s released output %d in epoch %d at %v, after %s released output in epoch %d (last at %v)",
				w.Boxes[r.Box].Name, r.Num, r.Epoch, r.At, w.Boxes[o].Name, top[o], last[o])
			return
		}
		top[r.Box] = max(top[r.Box], r.Epoch)
		last[r.Box] = r.At
	}
}
