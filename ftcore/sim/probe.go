package sim

import (
	"fmt"

	"ftbox/ftcore"
	"ftbox/ftcore/logwire"
)

// Probe wraps a box's Machine. It records every event injected (so that a
// reference machine can be fed exactly the same inputs afterwards) and the
// frames the guest emitted, and it can stop the box dead at an exact
// instruction count: Run never runs past the armed count, and on reaching it
// the probe unwinds the box's Step (a panic the world recovers), so nothing
// the box would have done after that instruction happens and the outbox of
// that Step is never written — the process died there.
type Probe struct {
	M        ftcore.Machine
	Events   []logwire.Entry // injected, in order, each at its ICount
	Emitted  int             // frames the guest emitted
	Restored int             // snapshots restored (then Events start at the last one)
	Saves    []SaveMark      // snapshots taken (the primary's side of a state transfer)
	From     SaveMark        // the last snapshot restored: its icount and digest (Events after Restore: 0)
	stopAt   uint64          // 0: not armed
}

// SaveMark is where a guest was when a snapshot was taken (or restored):
// its instruction count, how many events it had been injected and frames
// it had emitted (since its own start or restore), and its digest.
type SaveMark struct {
	ICount  uint64
	Events  int
	Emitted int
	Digest  [32]byte
}

// crashed is the panic value that unwinds a box's Step at the armed count.
type crashed struct{ icount uint64 }

func (p *Probe) ICount() uint64               { return p.M.ICount() }
func (p *Probe) Digest() [32]byte             { return p.M.Digest() }
func (p *Probe) Now() uint64                  { return p.M.Now() }
func (p *Probe) NextDeadline() (uint64, bool) { return p.M.NextDeadline() }
func (p *Probe) String() string               { return fmt.Sprintf("probe@%d", p.M.ICount()) }
func (p *Probe) arm(icount uint64)            { p.stopAt = icount }

func (p *Probe) Run(until uint64) ftcore.Stop {
	if p.stopAt != 0 {
		if p.M.ICount() >= p.stopAt {
			panic(crashed{p.M.ICount()})
		}
		until = min(until, p.stopAt)
	}
	why := p.M.Run(until)
	if p.stopAt != 0 && p.M.ICount() >= p.stopAt {
		panic(crashed{p.M.ICount()})
	}
	return why
}

// Save implements ftcore.Machine.
func (p *Probe) Save() []byte {
	b := p.M.Save()
	p.Saves = append(p.Saves, SaveMark{ICount: p.M.ICount(), Events: len(p.Events), Emitted: p.Emitted, Digest: p.M.Digest()})
	return b
}

// Restore implements ftcore.Machine. The events recorded so far no longer
// describe the guest: they are dropped, and Restored counts the restores
// (a restored box's Events start at its snapshot, not at instruction 0).
func (p *Probe) Restore(b []byte) error {
	if err := p.M.Restore(b); err != nil {
		return err
	}
	p.Events, p.Emitted = nil, 0
	p.Restored++
	p.From = SaveMark{ICount: p.M.ICount(), Digest: p.M.Digest()}
	return nil
}

func (p *Probe) Inject(e logwire.Entry) error {
	err := p.M.Inject(e)
	if err == nil { // a refused event changes nothing: the reference skips it too
		p.Events = append(p.Events, cloneEntry(e))
	}
	return err
}

func (p *Probe) TakeFrames() [][]byte {
	fs := p.M.TakeFrames()
	p.Emitted += len(fs)
	return fs
}

func cloneEntry(e logwire.Entry) logwire.Entry {
	switch e := e.(type) {
	case logwire.InputFrame:
		e.Frame = append([]byte(nil), e.Frame...)
		return e
	case logwire.ConsoleInput:
		e.Data = append([]byte(nil), e.Data...)
		return e
	}
	return e
}

// icountOf is the instruction count an event is injected at.
func icountOf(e logwire.Entry) uint64 {
	switch e := e.(type) {
	case logwire.InputFrame:
		return e.ICount
	case logwire.ClockSync:
		return e.ICount
	case logwire.ConsoleInput:
		return e.ICount
	}
	return 0
}

// Replay runs a fresh machine on exactly the events a probe recorded, with
// no replication, no network and no failure: the reference run. It returns
// the frames emitted, in order, and digests taken at the points asked for
// (at[i] = {events injected so far, icount}), then the final digest at
// icount end.
func Replay(m ftcore.Machine, events []logwire.Entry, end uint64, at []ReplayPoint) (frames [][]byte, digests [][32]byte, err error) {
	pi := 0
	take := func(done int) error {
		for pi < len(at) && at[pi].Events == done {
			if err := runTo(m, at[pi].ICount, &frames); err != nil {
				return err
			}
			digests = append(digests, m.Digest())
			pi++
		}
		return nil
	}
	for i, e := range events {
		if err := take(i); err != nil {
			return frames, digests, err
		}
		if err := runTo(m, icountOf(e), &frames); err != nil {
			return frames, digests, err
		}
		if err := m.Inject(e); err != nil {
			return frames, digests, fmt.Errorf("reference: inject %v at %d: %w", e.Type(), icountOf(e), err)
		}
	}
	if err := take(len(events)); err != nil {
		return frames, digests, err
	}
	if err := runTo(m, end, &frames); err != nil {
		return frames, digests, err
	}
	digests = append(digests, m.Digest())
	return frames, digests, nil
}

// ReplayPoint asks Replay for a digest after Events events, at ICount.
type ReplayPoint struct {
	Events int
	ICount uint64
}

func runTo(m ftcore.Machine, ic uint64, frames *[][]byte) error {
	for m.ICount() < ic {
		why := m.Run(ic)
		*frames = append(*frames, m.TakeFrames()...)
		if (why == ftcore.StopIdle || why == ftcore.StopExit) && m.ICount() < ic {
			return fmt.Errorf("reference: guest stopped (%d) at %d before %d", why, m.ICount(), ic)
		}
	}
	*frames = append(*frames, m.TakeFrames()...)
	return nil
}
