// Package sim is the deterministic simulation of an ftbox pair: a primary, a
// backup, an in-memory arbiter, a client and the links between them, in one
// goroutine on a simulated clock, every random choice drawn from one seed.
// Links drop, duplicate, reorder, delay, corrupt and partition; boxes crash
// and pause. The machine and the client workload are supplied by the caller
// (the tests use guestvm running netsvc and a UDP INCR client), so this
// package depends on ftcore only.
package sim

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"ftbox/ftcore"
	"ftbox/ftcore/logwire"
)

// Faults of one direction of a link.
type Faults struct {
	Loss, Dup, Reorder, Corrupt float64 // probabilities per frame
	Down                        bool    // partitioned: every frame lost
}

// Client is the workload on the LAN.
type Client interface {
	// Tick returns frames to send to the guest now (requests, retries).
	Tick(now time.Duration) [][]byte
	// Receive takes a frame the guest released to the LAN.
	Receive(now time.Duration, frame []byte)
}

// Options describe one run.
type Options struct {
	Seed       uint64
	NewMachine func() (ftcore.Machine, error)
	Client     Client
	Config     ftcore.Config // base config; Name, Endpoint, Rand and Epoch are filled in
	Latency    time.Duration // one-way, default 50 µs
	Jitter     time.Duration // added uniformly, default Latency/2
	Tick       time.Duration // simulation step, default 50 µs
	NsPerInstr float64       // simulated guest speed, default 3 (≈ 330 MIPS)
	LogPB      Faults        // logging link primary → backup
	LogBP      Faults        // backup → primary
	Forge      float64       // probability per tick of a forged frame on the logging link
}

type inflight struct {
	at   time.Duration
	seq  uint64
	data []byte
}

type queue struct {
	f     *Faults
	items []inflight
}

// Box is one side of the pair as the simulation sees it.
type Box struct {
	Name      string
	node      node
	Dead      bool
	PausedTil time.Duration
	busyTil   time.Duration
	inLog     queue
	inLAN     queue
	ICount    func() uint64
}

type node interface {
	OnLANFrame(time.Duration, []byte) error
	OnLogFrame(time.Duration, []byte) error
	OnArbiterReply(time.Duration, uint64, bool, error) error
	Step(time.Duration) error
	Deadline() time.Duration
	Outbox() ftcore.Outbox
	Status() ftcore.Status
	Role() ftcore.Role
	Epoch() uint64
}

// Release is one frame a box released to the LAN.
type Release struct {
	At    time.Duration
	Box   string
	Epoch uint64
	Frame []byte
}

// World is a running simulation.
type World struct {
	opts    Options
	Now     time.Duration
	rng     *rand.Rand
	seq     uint64
	P       *ftcore.Primary
	B       *ftcore.Backup
	Boxes   [2]*Box
	Arbiter *ftcore.MemArbiter

	Releases []Release
	Events   []ftcore.Event
	Errors   []string // unexpected errors returned by the boxes
	Forged   uint64   // forged frames injected
	LogBytes uint64   // bytes put on the logging link
}

type seededReader struct{ r *rand.Rand }

func (s seededReader) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(s.r.Uint32())
	}
	return len(b), nil
}

// New builds a world: both machines, the pair in epoch 1, the arbiter.
func New(o Options) (*World, error) {
	if o.Latency == 0 {
		o.Latency = 50 * time.Microsecond
	}
	if o.Jitter == 0 {
		o.Jitter = o.Latency / 2
	}
	if o.Tick == 0 {
		o.Tick = 50 * time.Microsecond
	}
	if o.NsPerInstr == 0 {
		o.NsPerInstr = 3
	}
	w := &World{opts: o, rng: rand.New(rand.NewPCG(o.Seed, 0x5eed)), Arbiter: &ftcore.MemArbiter{}}
	psk := sha256.Sum256(fmt.Appendf(nil, "sim psk %d", o.Seed))
	mk := func(name string) (ftcore.Config, ftcore.Machine, error) {
		ep, err := logwire.NewEndpoint(psk, logwire.Options{})
		if err != nil {
			return ftcore.Config{}, nil, err
		}
		c := o.Config
		c.Name, c.Endpoint, c.Epoch = name, ep, 1
		c.Rand = seededReader{rand.New(rand.NewPCG(w.rng.Uint64(), w.rng.Uint64()))}
		m, err := o.NewMachine()
		return c, m, err
	}
	cp, mp, err := mk("A")
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	cb, mb, err := mk("B")
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	if w.P, err = ftcore.NewPrimary(cp, mp); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	if w.B, err = ftcore.NewBackup(cb, mb); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	w.Boxes[0] = &Box{Name: "A", node: w.P, ICount: mp.ICount, inLog: queue{f: &w.opts.LogBP}, inLAN: queue{f: &Faults{}}}
	w.Boxes[1] = &Box{Name: "B", node: w.B, ICount: mb.ICount, inLog: queue{f: &w.opts.LogPB}, inLAN: queue{f: &Faults{}}}
	return w, nil
}

// Links gives access to the fault settings while running.
func (w *World) Links() (pb, bp *Faults) { return &w.opts.LogPB, &w.opts.LogBP }

// Crash kills a box for good; Pause stops it for d (like SIGSTOP): frames
// queue up and are handled when it resumes.
func (w *World) Crash(i int)                  { w.Boxes[i].Dead = true }
func (w *World) Pause(i int, d time.Duration) { w.Boxes[i].PausedTil = w.Now + d }

func (w *World) send(q *queue, data []byte) {
	f := q.f
	if f.Down || w.rng.Float64() < f.Loss {
		return
	}
	n := 1
	if w.rng.Float64() < f.Dup {
		n = 2
	}
	for range n {
		d := append([]byte(nil), data...)
		if w.rng.Float64() < f.Corrupt && len(d) > 0 {
			d[w.rng.IntN(len(d))] ^= byte(1 + w.rng.IntN(255))
		}
		at := w.Now + w.opts.Latency + time.Duration(w.rng.Int64N(int64(w.opts.Jitter)+1))
		if w.rng.Float64() < f.Reorder {
			at += time.Duration(w.rng.Int64N(int64(10 * w.opts.Latency)))
		}
		w.seq++
		q.items = append(q.items, inflight{at: at, seq: w.seq, data: d})
	}
}

func (q *queue) due(now time.Duration) [][]byte {
	sort.Slice(q.items, func(i, j int) bool {
		if q.items[i].at != q.items[j].at {
			return q.items[i].at < q.items[j].at
		}
		return q.items[i].seq < q.items[j].seq
	})
	n := 0
	for n < len(q.items) && q.items[n].at <= now {
		n++
	}
	out := make([][]byte, n)
	for i := range n {
		out[i] = q.items[i].data
	}
	q.items = q.items[n:]
	return out
}

// Run advances the simulation until the given time.
func (w *World) Run(until time.Duration) {
	for w.Now < until {
		w.step()
		w.Now += w.opts.Tick
	}
}

// RunUntil advances until cond holds or the time limit passes; it reports
// whether cond held.
func (w *World) RunUntil(limit time.Duration, cond func() bool) bool {
	for w.Now < limit {
		if cond() {
			return true
		}
		w.step()
		w.Now += w.opts.Tick
	}
	return cond()
}

func (w *World) step() {
	now := w.Now
	if w.opts.Client != nil {
		for _, f := range w.opts.Client.Tick(now) {
			for _, b := range w.Boxes {
				w.send(&b.inLAN, f) // a hub: both boxes see the client's frames
			}
		}
	}
	if w.opts.Forge > 0 && w.rng.Float64() < w.opts.Forge {
		w.forge()
	}
	for i, b := range w.Boxes {
		if b.Dead {
			b.inLog.items, b.inLAN.items = nil, nil
			continue
		}
		if now < b.PausedTil || now < b.busyTil {
			continue
		}
		for _, f := range b.inLog.due(now) {
			if err := b.node.OnLogFrame(now, f); err != nil {
				_ = err // refused frames are counted by verdict; expected under corruption
			}
		}
		for _, f := range b.inLAN.due(now) {
			_ = b.node.OnLANFrame(now, f)
		}
		if d := b.node.Deadline(); d != 0 && d <= now {
			ic := b.ICount()
			if err := b.node.Step(now); err != nil {
				w.Errors = append(w.Errors, fmt.Sprintf("%v %s: %v", now, b.Name, err))
			}
			b.busyTil = now + time.Duration(float64(b.ICount()-ic)*w.opts.NsPerInstr)
		}
		w.drain(i)
	}
}

func (w *World) drain(i int) {
	b, peer := w.Boxes[i], w.Boxes[1-i]
	ob := b.node.Outbox()
	for _, f := range ob.Log {
		w.LogBytes += uint64(len(f))
		w.send(&peer.inLog, f)
	}
	for _, f := range ob.PeerLAN {
		w.send(&peer.inLog, f)
	}
	for _, f := range ob.LAN {
		w.Releases = append(w.Releases, Release{At: w.Now, Box: b.Name, Epoch: b.node.Epoch(), Frame: f})
		if w.opts.Client != nil {
			w.opts.Client.Receive(w.Now, f)
		}
	}
	for _, r := range ob.Arbiter {
		won, err := w.Arbiter.TestAndSet(r.Epoch, r.Who)
		_ = b.node.OnArbiterReply(w.Now, r.Epoch, won, err)
	}
	w.Events = append(w.Events, ob.Events...)
	if len(ob.Arbiter) > 0 || len(ob.Events) > 0 {
		w.drain(i) // the reply may have released output
	}
}

// forge puts a frame on the logging link that no key holder made: random
// bytes behind a plausible header, or a real frame replayed.
func (w *World) forge() {
	w.Forged++
	to := w.Boxes[w.rng.IntN(2)]
	f := make([]byte, 60+w.rng.IntN(200))
	for i := range f {
		f[i] = byte(w.rng.Uint32())
	}
	f[0], f[1], f[2], f[3], f[4], f[5] = 0x46, 0x54, 1, 0, byte(1+w.rng.IntN(2)), 0
	to.inLog.items = append(to.inLog.items, inflight{at: w.Now, data: f})
}

// Check verifies the invariants that do not depend on the workload: at most
// one box released output in any epoch; no divergence; the backup's go-live
// left no gap after the primary's last release. It returns the duplicate
// window (outputs released by both).
func (w *World) Check() (dups uint64, err error) {
	by := map[uint64]string{}
	for _, r := range w.Releases {
		if who, ok := by[r.Epoch]; ok && who != r.Box {
			return 0, fmt.Errorf("epoch %d: both %s and %s released output", r.Epoch, who, r.Box)
		}
		by[r.Epoch] = r.Box
	}
	for _, e := range w.Events {
		if e.Kind == ftcore.EventDivergence {
			return 0, fmt.Errorf("divergence at icount %d", e.ICount)
		}
	}
	ps, bs := w.P.Status(), w.B.Status()
	if bs.DigestMismatches != 0 {
		return 0, fmt.Errorf("%d digest mismatches", bs.DigestMismatches)
	}
	if bs.GoLiveFirst != 0 {
		if bs.GoLiveFirst > ps.Watermark+1 {
			return 0, fmt.Errorf("lost output: primary released up to %d, backup went live releasing from %d", ps.Watermark, bs.GoLiveFirst)
		}
		dups = ps.Watermark + 1 - bs.GoLiveFirst
	}
	return dups, nil
}
