// Package sim is the deterministic simulation of an ftbox pair: a primary, a
// backup, an arbiter, a client and the links between them, in one goroutine
// on a simulated clock, every random choice drawn from one seed.
//
// The world is event driven: it jumps to the next thing due (a frame
// arriving, a box's deadline, the client's next request, a scheduled fault)
// and handles it. A box's Step costs simulated time (NsPerInstr per guest
// instruction plus StepCost), during which the box handles nothing else.
//
// Links (see LinkID) drop, duplicate, reorder, delay, corrupt and partition,
// each direction on its own. Boxes crash — between steps, at an exact
// instruction count inside a Step (the Probe unwinds the Step; its outbox is
// never written), or while writing an outbox (some released frames or log
// frames written, the rest not) — and pause like SIGSTOP (frames queue up to
// a socket buffer's worth; the box resumes later). Forged frames (random,
// bit-flipped, truncated, replayed) are put on the logging link and the
// second path. Every link can be captured to one pcapng file, one interface
// per link, with simulated timestamps.
//
// The machine and the client workload are supplied by the caller (the tests
// use guestvm running netsvc and a UDP INCR client), so this package depends
// on ftcore only.
package sim

import (
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"time"

	"ftbox/ftcore"
	"ftbox/ftcore/logwire"
)

// Client is the workload on the LAN.
type Client interface {
	// Tick returns frames to send to the guest now (requests, retries).
	Tick(now time.Duration) [][]byte
	// Receive takes a frame the guest released to the LAN.
	Receive(now time.Duration, frame []byte)
}

// Waker is implemented by a Client that knows when it next wants Tick; a
// client without it is polled every Options.Tick.
type Waker interface {
	Next() time.Duration
}

// Options describe one run. Zero fields take the defaults given.
type Options struct {
	Seed       uint64
	NewMachine func() (ftcore.Machine, error)
	Client     Client
	Config     ftcore.Config // base config; Name, Endpoint, Rand and Epoch are filled in
	Latency    time.Duration // one-way, every link, default 50 µs
	Jitter     time.Duration // added uniformly, default Latency/2
	Tick       time.Duration // poll period of a client that is no Waker, default 50 µs
	NsPerInstr float64       // simulated guest speed, default 3 (≈ 330 MIPS)
	StepCost   time.Duration // host time of one Step besides the guest's instructions, default 2 µs

	LogPB, LogBP   Faults // logging link, primary → backup and back
	PathPB, PathBP Faults // second heartbeat path over the LAN
	LAN            Faults // client ↔ boxes, each of the four directions

	Forge      float64       // forged frames per simulated millisecond on the logging link and the second path
	RecvBuffer int           // frames a paused box's sockets keep (the rest is dropped), default 512
	ArbiterRTT time.Duration // round trip to the arbiter, default 200 µs
	LogFirst   bool          // the box loop writes Outbox.Log before Outbox.LAN (default: LAN first)
	Arbiter    ArbiterFaults // faults of the arbiter and the path to it (changeable while running: World.ArbiterFaults)
	// Query is the period of the read-only current-epoch query each box
	// makes, as the appliance does (MemArbiter.Current through the
	// arbiter's faults, the answer fed to OnArbiterCurrent); default 1 s,
	// negative: none.
	Query   time.Duration
	Capture io.Writer // if set, a pcapng of every link is written here (call Close)
}

// ArbiterFaults of the arbiter and the path to it. Probabilities are per
// request.
type ArbiterFaults struct {
	LossReq   float64       // the request never reaches the arbiter (no answer: the box retries)
	LossReply float64       // the test-and-set happens but its answer is lost
	Slow      time.Duration // each answer comes up to this much later (uniform), besides ArbiterRTT
	Down      bool          // the arbiter is down: a request gets no answer, or (half the time) an error
}

// ErrArbiterDown is the error a box is told when it asks a down arbiter.
var ErrArbiterDown = fmt.Errorf("sim: arbiter unreachable")

// Grant is one epoch the arbiter granted, with when.
type Grant struct {
	At    time.Duration
	Epoch uint64
	Who   string
	Gen   int // the arbiter's incarnation: how many times its state was wiped before (World.WipeArbiter)
}

// Box is one side of the pair as the simulation sees it.
type Box struct {
	Name      string
	Index     int
	Probe     *Probe
	Endpoint  *logwire.Endpoint
	Dead      bool
	DiedAt    time.Duration
	Death     string // how it died, for reports
	PausedTil time.Duration

	node     node
	busyTil  time.Duration
	in       arrivals
	paused   bool // was paused at its last look: drain the socket buffer on resume
	released uint64
	first    uint64 // number of its first released output
	flush    *flushCrash
	joined   bool // started as a backup by Restart
	Restarts int
}

type node interface {
	OnLANFrame(time.Duration, []byte) error
	OnLogFrame(time.Duration, []byte) error
	OnPeerLANFrame(time.Duration, []byte) error
	OnArbiterReply(time.Duration, uint64, bool, error) error
	OnArbiterCurrent(time.Duration, uint64, string)
	Step(time.Duration) error
	Deadline() time.Duration
	Outbox() ftcore.Outbox
	Status() ftcore.Status
	Role() ftcore.Role
	Epoch() uint64
}

// Release is one guest output a box put on the LAN.
type Release struct {
	At    time.Duration
	Box   int
	Epoch uint64
	Num   uint64 // the output's number in the guest's output sequence (1, 2, …)
	Frame []byte
}

// Counts of what the fault machinery did.
type Counts struct {
	Forged, ForgedRefused   uint64
	MidRelease, MidBatch    uint64 // crashes while an outbox was partly written
	ICountCrashes           uint64 // crashes at an exact instruction count inside a Step
	PauseOverflow           uint64 // frames dropped from a paused box's full socket buffer
	ArbiterCalls, ArbiterOK uint64
	ArbiterLost, ArbiterErr uint64 // requests or answers lost; errors answered by a down arbiter
	Yields                  uint64 // fresh primaries that yielded to a live one and rejoined as its backup
	Queries, QueryAnswers   uint64 // current-epoch queries made, answers delivered
	Wipes                   uint64 // times the arbiter lost its state (WipeArbiter)
}

type action struct {
	at  time.Duration
	seq uint64
	fn  func()
}

// World is a running simulation.
type World struct {
	opts    Options
	Now     time.Duration
	rng     *rand.Rand
	qrng    *rand.Rand // the current-epoch queries' own draws: they leave the rest of a seed's schedule as it was
	seq     uint64
	P       *ftcore.Primary
	B       *ftcore.Backup
	Boxes   [2]*Box
	Arbiter *ftcore.MemArbiter

	links     [NumLinks]Faults
	linkStats [NumLinks]LinkStats
	fifo      [NumLinks]time.Duration // latest in-order arrival per link
	clientIn  arrivals
	sched     []action
	forgeAt   time.Duration
	recent    [2][][]byte // genuine frames each box authenticated lately (replay material)
	capture   *capture

	arb    ArbiterFaults
	watch  []watcher
	cores  []node   // every core ever run, in start order (a restart adds one)
	probes []*Probe // every probe ever run, likewise

	Releases []Release
	Grants   []Grant         // what the arbiter granted, in order, with when: kept across WipeArbiter
	Wipes    []time.Duration // when the arbiter lost its state
	Events   []ftcore.Event
	Errors   []string // unexpected errors returned by the boxes, or invariant breaches seen on the way
	Counts   Counts
	Forged   uint64 // forged frames injected (= Counts.Forged)
	LogBytes uint64 // bytes put on the logging link by both boxes
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
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.Latency, 50*time.Microsecond)
	def(&o.Jitter, o.Latency/2)
	def(&o.Tick, 50*time.Microsecond)
	def(&o.StepCost, 2*time.Microsecond)
	def(&o.ArbiterRTT, 200*time.Microsecond)
	if o.NsPerInstr == 0 {
		o.NsPerInstr = 3
	}
	if o.RecvBuffer == 0 {
		o.RecvBuffer = 512
	}
	if o.Query == 0 {
		o.Query = time.Second
	}
	w := &World{opts: o, rng: rand.New(rand.NewPCG(o.Seed, 0x5eed)), qrng: rand.New(rand.NewPCG(o.Seed, 0x9ce7)), Arbiter: &ftcore.MemArbiter{}, arb: o.Arbiter}
	w.links = [NumLinks]Faults{LogAB: o.LogPB, LogBA: o.LogBP, PathAB: o.PathPB, PathBA: o.PathBP, CliA: o.LAN, CliB: o.LAN, ACli: o.LAN, BCli: o.LAN}
	psk := sha256.Sum256(fmt.Appendf(nil, "sim psk %d", o.Seed))
	for i, name := range []string{"A", "B"} {
		ep, err := logwire.NewEndpoint(psk, logwire.Options{})
		if err != nil {
			return nil, fmt.Errorf("sim: %w", err)
		}
		c := o.Config
		c.Name, c.Endpoint, c.Epoch = name, ep, 1
		c.Rand = seededReader{rand.New(rand.NewPCG(w.rng.Uint64(), w.rng.Uint64()))}
		m, err := o.NewMachine()
		if err != nil {
			return nil, fmt.Errorf("sim: machine %s: %w", name, err)
		}
		b := &Box{Name: name, Index: i, Probe: &Probe{M: m}, Endpoint: ep}
		if i == 0 {
			w.P, err = ftcore.NewPrimary(c, b.Probe)
			b.node = w.P
		} else {
			w.B, err = ftcore.NewBackup(c, b.Probe)
			b.node = w.B
		}
		if err != nil {
			return nil, fmt.Errorf("sim: %w", err)
		}
		w.Boxes[i] = b
		w.cores = append(w.cores, b.node)
		w.probes = append(w.probes, b.Probe)
	}
	// The pair formed as the appliance forms one: its primary won epoch 1
	// (ftcore.StartRole, Config.StartClaim) before the world began.
	if _, err := w.Arbiter.TestAndSet(1, "A"); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	w.Grants = append(w.Grants, Grant{At: 0, Epoch: 1, Who: "A"})
	if o.Capture != nil {
		c, err := newCapture(o.Capture)
		if err != nil {
			return nil, fmt.Errorf("sim: %w", err)
		}
		w.capture = c
	}
	w.planForge()
	if o.Query > 0 {
		for i := range w.Boxes {
			// Each box loop queries on its own clock: a random phase.
			w.At(time.Duration(w.qrng.Int64N(int64(o.Query)))+1, func() { w.query(i) })
		}
	}
	return w, nil
}

// Close flushes the capture, if any.
func (w *World) Close() error {
	if w.capture != nil {
		return w.capture.flush()
	}
	return nil
}

// Link gives access to one link's faults while running (cut: Down = true).
func (w *World) Link(l LinkID) *Faults { return &w.links[l] }

// Links returns the logging link's two directions.
func (w *World) Links() (pb, bp *Faults) { return &w.links[LogAB], &w.links[LogBA] }

// LinkStats returns what each link did.
func (w *World) LinkStats() [NumLinks]LinkStats { return w.linkStats }

// Rand is the world's random source, for fault schedules that must replay
// with the seed.
func (w *World) Rand() *rand.Rand { return w.rng }

// At schedules fn at simulated time t (actions at the same time run in the
// order they were scheduled).
func (w *World) At(t time.Duration, fn func()) {
	w.seq++
	a := action{at: t, seq: w.seq, fn: fn}
	i, _ := slices.BinarySearchFunc(w.sched, a, func(x, y action) int {
		if x.at != y.at {
			return int(x.at - y.at)
		}
		return int(x.seq - y.seq)
	})
	w.sched = slices.Insert(w.sched, i, a)
}

// Crash kills box i now, between steps.
func (w *World) Crash(i int) { w.kill(i, "crashed between steps") }

// CrashAtICount arms box i to die when its guest reaches instruction count
// ic, inside whatever Step gets there (ic must be ahead of the guest).
func (w *World) CrashAtICount(i int, ic uint64) { w.Boxes[i].Probe.arm(ic) }

// FlushKind says which part of an outbox a mid-write crash splits.
type FlushKind int

const (
	SplitRelease FlushKind = iota // some released guest outputs written, others not
	SplitLog                      // some logging-link frames of one batch written, others not
)

type flushCrash struct{ kind FlushKind }

// CrashMidFlush arms box i to die while writing its next outbox that holds
// at least two frames of the kind: a random non-empty proper prefix of them
// (and whatever the box loop writes before them) gets out, the rest is lost.
func (w *World) CrashMidFlush(i int, k FlushKind) { w.Boxes[i].flush = &flushCrash{k} }

// Restart starts box i again as a fresh process (it fails while the
// arbiter is down: a starting box asks it first) (a fresh guest machine, a
// fresh core), whether it died or not: it asks the arbiter for the current
// epoch and takes the role ftcore.StartRole gives (a joining backup if the
// peer holds the latest grant). Its frames in flight are lost. The world's
// P and B keep naming the original cores; the box's node is in Node.
func (w *World) Restart(i int) error {
	if w.arb.Down {
		return fmt.Errorf("sim: restart %s: %w", w.Boxes[i].Name, ErrArbiterDown) // a starting box asks the arbiter first
	}
	latest, holder, _ := w.Arbiter.Current()
	return w.start(i, ftcore.StartRole(w.Boxes[i].Name, i == 0, latest, holder))
}

// start runs box i as a fresh process in the role given.
func (w *World) start(i int, st ftcore.Start) error {
	role, epoch := st.Role, st.Epoch
	b := w.Boxes[i]
	m, err := w.opts.NewMachine()
	if err != nil {
		return fmt.Errorf("sim: restart %s: %w", b.Name, err)
	}
	c := w.opts.Config
	c.Name, c.Endpoint, c.Epoch, c.Join = b.Name, b.Endpoint, epoch, st.Join
	c.StartClaim, c.ColdStart = st.Claim, st.Cold
	c.Rand = seededReader{rand.New(rand.NewPCG(w.rng.Uint64(), w.rng.Uint64()))}
	probe := &Probe{M: m}
	var n node
	if role == ftcore.RolePrimary {
		n, err = ftcore.NewPrimary(c, probe)
	} else {
		n, err = ftcore.NewBackup(c, probe)
	}
	if err != nil {
		return fmt.Errorf("sim: restart %s: %w", b.Name, err)
	}
	*b = Box{Name: b.Name, Index: i, Probe: probe, Endpoint: b.Endpoint, node: n, joined: role == ftcore.RoleBackup, Restarts: b.Restarts + 1}
	w.cores = append(w.cores, n)
	w.probes = append(w.probes, probe)
	return nil
}

// WipeArbiter makes the arbiter lose its state now, as an arbiter restarted
// with --init on a lost state file: a fresh MemArbiter that granted
// nothing. Requests already on their way reach the fresh one. w.Grants
// keeps the history (Grant.Gen tells the incarnations apart).
func (w *World) WipeArbiter() {
	w.Arbiter = &ftcore.MemArbiter{}
	w.Wipes = append(w.Wipes, w.Now)
	w.Counts.Wipes++
}

// ArbiterFaults gives access to the arbiter's faults while running.
func (w *World) ArbiterFaults() *ArbiterFaults { return &w.arb }

type watcher struct {
	cond func() bool
	fn   func()
}

// When runs fn once, right after the first world step at whose end cond
// holds (checked after every step: boxes handled their frames and ran).
func (w *World) When(cond func() bool, fn func()) { w.watch = append(w.watch, watcher{cond, fn}) }

// Node returns box i's current core (a *ftcore.Primary or *ftcore.Backup).
func (w *World) Node(i int) interface {
	Role() ftcore.Role
	Epoch() uint64
	Status() ftcore.Status
} {
	return w.Boxes[i].node
}

// Pause stops box i for d, like SIGSTOP: it handles nothing, frames queue
// up to RecvBuffer, and it resumes where it was.
func (w *World) Pause(i int, d time.Duration) {
	b := w.Boxes[i]
	b.PausedTil = max(b.PausedTil, w.Now+d)
	b.paused = true
}

func (w *World) kill(i int, why string) {
	b := w.Boxes[i]
	if b.Dead {
		return
	}
	b.Dead, b.DiedAt, b.Death = true, w.Now, why
	b.in = nil
}

// Run advances the simulation to the given time.
func (w *World) Run(until time.Duration) {
	w.RunUntil(until, nil)
	w.Now = max(w.Now, until)
}

// RunUntil advances until cond holds or the time limit passes; it reports
// whether cond held.
func (w *World) RunUntil(limit time.Duration, cond func() bool) bool {
	for {
		if cond != nil && cond() {
			return true
		}
		t := w.next()
		if t > limit {
			w.Now = max(w.Now, limit)
			return cond != nil && cond()
		}
		w.Now = max(w.Now, t)
		w.step()
	}
}

const never = time.Duration(1<<63 - 1)

// next is the time of the next thing due.
func (w *World) next() time.Duration {
	t := never
	for _, b := range w.Boxes {
		if b.Dead {
			continue
		}
		base := max(b.PausedTil, b.busyTil)
		if a, ok := b.in.next(); ok {
			t = min(t, max(a, base))
		}
		if d := b.node.Deadline(); d != 0 {
			t = min(t, max(d, base))
		}
	}
	if c := w.opts.Client; c != nil {
		if wk, ok := c.(Waker); ok {
			t = min(t, wk.Next())
		} else {
			t = min(t, w.Now+w.opts.Tick)
		}
	}
	if a, ok := w.clientIn.next(); ok {
		t = min(t, a)
	}
	if len(w.sched) > 0 {
		t = min(t, w.sched[0].at)
	}
	if w.forgeAt != 0 {
		t = min(t, w.forgeAt)
	}
	return t
}

func (w *World) step() {
	now := w.Now
	for len(w.sched) > 0 && w.sched[0].at <= now {
		a := w.sched[0]
		w.sched = w.sched[1:]
		a.fn()
	}
	if c := w.opts.Client; c != nil {
		due := true
		if wk, ok := c.(Waker); ok {
			due = wk.Next() <= now
		}
		if due {
			for _, f := range c.Tick(now) {
				w.send(CliA, &w.Boxes[0].in, f)
				w.send(CliB, &w.Boxes[1].in, f)
			}
		}
	}
	if w.forgeAt != 0 && now >= w.forgeAt {
		w.forge()
		w.planForge()
	}
	for _, b := range w.Boxes {
		w.stepBox(b)
	}
	for i := 0; i < len(w.watch); i++ {
		if x := w.watch[i]; x.cond() {
			w.watch = slices.Delete(w.watch, i, i+1)
			i--
			x.fn()
		}
	}
	for {
		f, ok := w.clientIn.pop(now)
		if !ok {
			break
		}
		w.capture.packet(f)
		w.linkStats[f.link].Delivered++
		if w.opts.Client != nil {
			w.opts.Client.Receive(f.at, f.data)
		}
	}
}

// stepBox lets one box handle what arrived and run its Step if due.
func (w *World) stepBox(b *Box) {
	now := w.Now
	if b.Dead || now < b.PausedTil || now < b.busyTil {
		return
	}
	var due []frame
	for {
		f, ok := b.in.pop(now)
		if !ok {
			break
		}
		due = append(due, f)
	}
	if b.paused {
		b.paused = false
		if len(due) > w.opts.RecvBuffer {
			kept := due[:0]
			for i, f := range due {
				if i < w.opts.RecvBuffer || f.arb != nil || f.cur != nil {
					kept = append(kept, f)
					continue
				}
				w.linkStats[f.link].Overflow++
				w.Counts.PauseOverflow++
			}
			due = kept
		}
	}
	ic := b.Probe.ICount()
	alive := w.guard(b, func() {
		for _, f := range due {
			w.deliver(b, f)
		}
		if d := b.node.Deadline(); d != 0 && d <= now {
			if err := b.node.Step(now); err != nil {
				w.Errors = append(w.Errors, fmt.Sprintf("%v %s step: %v", now, b.Name, err))
			}
		}
	})
	if !alive {
		return
	}
	b.busyTil = now + w.opts.StepCost + time.Duration(float64(b.Probe.ICount()-ic)*w.opts.NsPerInstr)
	w.drain(b)
}

// guard runs fn and turns the probe's unwinding into the box's death.
func (w *World) guard(b *Box, fn func()) (alive bool) {
	defer func() {
		if r := recover(); r != nil {
			c, ok := r.(crashed)
			if !ok {
				panic(r)
			}
			w.Counts.ICountCrashes++
			w.kill(b.Index, fmt.Sprintf("crashed inside Step at icount %d", c.icount))
			alive = false
		}
	}()
	fn()
	return true
}

// deliver hands one arrived frame to a box.
func (w *World) deliver(b *Box, f frame) {
	now := w.Now
	if f.arb != nil {
		_ = b.node.OnArbiterReply(now, f.arb.epoch, f.arb.won, f.arb.err)
		return
	}
	if f.cur != nil {
		if f.cur.to == b.node { // the process that asked (a restarted box's loop asks anew)
			w.Counts.QueryAnswers++
			b.node.OnArbiterCurrent(now, f.cur.epoch, f.cur.holder)
		}
		return
	}
	w.capture.packet(f)
	w.linkStats[f.link].Delivered++
	switch f.link {
	case CliA, CliB:
		_ = b.node.OnLANFrame(now, f.data)
	case LogAB, LogBA, PathAB, PathBA:
		ok := b.Endpoint.Counters().Get(logwire.VerdictOK)
		if f.link == PathAB || f.link == PathBA {
			_ = b.node.OnPeerLANFrame(now, f.data) // refused frames are counted by verdict
		} else {
			_ = b.node.OnLogFrame(now, f.data)
		}
		accepted := b.Endpoint.Counters().Get(logwire.VerdictOK) != ok
		if accepted && !f.forged {
			w.remember(b.Index, f.data) // authenticated once: any copy from now on is a replay
		}
		if f.forged {
			if accepted {
				if h, err := logwire.ParseHeader(f.data); err != nil || !h.IsHello() {
					w.Errors = append(w.Errors, fmt.Sprintf("%v %s: forged frame (%s) authenticated", now, b.Name, f.note))
				}
			} else {
				w.Counts.ForgedRefused++
			}
		}
	}
}

type arbReply struct {
	epoch uint64
	won   bool
	err   error
}

// drain writes box b's outbox, in the box loop's order, unless it is armed
// to die in the middle of it.
func (w *World) drain(b *Box) {
	ob := b.node.Outbox()
	peer := w.Boxes[1-b.Index]
	logL, pathL, outL := LogAB, PathAB, ACli
	if b.Index == 1 {
		logL, pathL, outL = LogBA, PathBA, BCli
	}
	type item struct {
		lan   bool
		link  LinkID
		frame []byte
	}
	var lan, log []item
	for _, f := range ob.LAN {
		lan = append(lan, item{true, outL, f})
	}
	for _, f := range ob.Log {
		log = append(log, item{false, logL, f})
	}
	for _, f := range ob.PeerLAN {
		log = append(log, item{false, pathL, f})
	}
	order := append(lan, log...)
	if w.opts.LogFirst {
		order = append(log, lan...)
	}
	cut := len(order)
	if fc := b.flush; fc != nil {
		var at []int // positions of the frames the crash splits
		for i, it := range order {
			if (fc.kind == SplitRelease && it.lan) || (fc.kind == SplitLog && it.link == logL) {
				at = append(at, i)
			}
		}
		if len(at) >= 2 {
			cut = at[1+w.rng.IntN(len(at)-1)]
			if fc.kind == SplitRelease {
				w.Counts.MidRelease++
			} else {
				w.Counts.MidBatch++
			}
		}
	}
	for _, it := range order[:cut] {
		if it.lan {
			w.release(b, it.frame)
			w.send(it.link, &w.clientIn, it.frame)
			continue
		}
		if it.link == logL {
			w.LogBytes += uint64(len(it.frame))
		}
		w.send(it.link, &peer.in, it.frame)
	}
	if cut < len(order) {
		w.kill(b.Index, fmt.Sprintf("crashed writing its outbox (%d of %d frames out)", cut, len(order)))
		return
	}
	for _, r := range ob.Arbiter {
		w.Counts.ArbiterCalls++
		w.askArbiter(b, r)
	}
	w.Events = append(w.Events, ob.Events...)
	for _, e := range ob.Events {
		if e.Kind == ftcore.EventYield {
			// As the box loop does: a fresh primary that heard a live
			// one of a later epoch rejoins as its backup, a fresh process.
			if err := w.start(b.Index, ftcore.Start{Role: ftcore.RoleBackup, Epoch: e.Epoch, Join: true}); err != nil {
				w.Errors = append(w.Errors, err.Error())
			}
			w.Counts.Yields++
			break
		}
	}
}

// askArbiter carries one test-and-set request to the arbiter and its answer
// back, through the arbiter's faults. The test-and-set happens when the
// request reaches the arbiter (half a round trip); the answer comes back
// half a round trip later, plus the arbiter's slowness.
func (w *World) askArbiter(b *Box, r ftcore.ArbiterRequest) {
	f := w.arb
	if w.rng.Float64() < f.LossReq {
		w.Counts.ArbiterLost++
		return
	}
	w.At(w.Now+w.opts.ArbiterRTT/2, func() {
		f := w.arb // as it is when the request arrives
		reply := &arbReply{epoch: r.Epoch}
		if f.Down {
			if w.rng.IntN(2) == 0 {
				w.Counts.ArbiterLost++
				return
			}
			w.Counts.ArbiterErr++
			reply.err = ErrArbiterDown
		} else {
			n := len(w.Arbiter.Grants())
			won, _ := w.Arbiter.TestAndSet(r.Epoch, r.Who)
			if len(w.Arbiter.Grants()) != n {
				w.Grants = append(w.Grants, Grant{At: w.Now, Epoch: r.Epoch, Who: r.Who, Gen: len(w.Wipes)})
			}
			if won {
				w.Counts.ArbiterOK++
			}
			reply.won = won
			if w.rng.Float64() < f.LossReply {
				w.Counts.ArbiterLost++
				return
			}
		}
		at := w.Now + w.opts.ArbiterRTT/2
		if f.Slow > 0 {
			at += time.Duration(w.rng.Int64N(int64(f.Slow) + 1))
		}
		w.seq++
		b.in.push(frame{at: at, seq: w.seq, link: -1, arb: reply})
	})
}

type curReply struct {
	epoch  uint64
	holder string
	to     node
}

// query is box i's periodic read-only current-epoch query, as the
// appliance makes it every Options.Query: through the arbiter's faults
// (a lost request or answer, a slow answer; a down arbiter answers nothing
// or an error, and an error tells the box nothing), answered with what the
// arbiter holds when the request reaches it. A dead or paused box asks
// nothing; an answer reaches only the process that asked.
func (w *World) query(i int) {
	w.At(w.Now+w.opts.Query, func() { w.query(i) })
	b := w.Boxes[i]
	if b.Dead || w.Now < b.PausedTil {
		return
	}
	w.Counts.Queries++
	to := b.node
	if w.qrng.Float64() < w.arb.LossReq {
		return
	}
	w.At(w.Now+w.opts.ArbiterRTT/2, func() {
		f := w.arb
		if f.Down {
			return
		}
		epoch, holder, _ := w.Arbiter.Current()
		if w.qrng.Float64() < f.LossReply {
			return
		}
		at := w.Now + w.opts.ArbiterRTT/2
		if f.Slow > 0 {
			at += time.Duration(w.qrng.Int64N(int64(f.Slow) + 1))
		}
		w.seq++
		b.in.push(frame{at: at, seq: w.seq, link: -1, cur: &curReply{epoch, holder, to}})
	})
}

// release records one output put on the LAN, numbered in the guest's output
// sequence: a box that started as primary releases 1, 2, …; the promoted
// backup starts at its Status().GoLiveFirst.
func (w *World) release(b *Box, f []byte) {
	if b.released == 0 {
		b.first = 1
		if b.Index == 1 || b.joined {
			b.first = b.node.Status().GoLiveFirst
		}
	}
	w.Releases = append(w.Releases, Release{At: w.Now, Box: b.Index, Epoch: b.node.Epoch(), Num: b.first + b.released, Frame: f})
	b.released++
}

func (w *World) remember(to int, f []byte) {
	r := &w.recent[to]
	if len(*r) >= 64 {
		*r = (*r)[1:]
	}
	*r = append(*r, f)
}

func (w *World) planForge() {
	if w.opts.Forge <= 0 {
		return
	}
	w.forgeAt = w.Now + time.Duration(w.rng.ExpFloat64()/w.opts.Forge*float64(time.Millisecond)) + 1
}

// forge puts a frame no key holder made on the logging link or the second
// path: random bytes behind a plausible header, a genuine frame with a bit
// flipped, truncated, or replayed verbatim later.
func (w *World) forge() {
	to := w.rng.IntN(2)
	link := []LinkID{LogAB, LogBA}[to]
	if w.rng.IntN(4) == 0 {
		link = []LinkID{PathAB, PathBA}[to]
	}
	var f []byte
	note := "forged random"
	recent := w.recent[to]
	switch k := w.rng.IntN(4); {
	case k == 0 || len(recent) == 0:
		f = make([]byte, logwire.HeaderLen+16+w.rng.IntN(200))
		for i := range f {
			f[i] = byte(w.rng.Uint32())
		}
		f[0], f[1], f[2], f[3], f[4], f[5] = 0x46, 0x54, logwire.Version, 0, byte(1+w.rng.IntN(2)), 0
	case k == 1:
		f = append([]byte(nil), recent[w.rng.IntN(len(recent))]...)
		f[w.rng.IntN(len(f))] ^= 1 << w.rng.IntN(8)
		note = "forged bit flip"
	case k == 2:
		g := recent[w.rng.IntN(len(recent))]
		f = append([]byte(nil), g[:w.rng.IntN(len(g))]...)
		note = "forged truncation"
	default:
		f = append([]byte(nil), recent[w.rng.IntN(len(recent))]...)
		note = "forged replay"
	}
	w.Forged++
	w.Counts.Forged++
	w.seq++
	w.Boxes[to].in.push(frame{at: w.Now, seq: w.seq, link: link, data: f, forged: true, note: note})
}
