package sim_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"ftbox/appliance"
	"ftbox/ftcore"
	"ftbox/ftcore/sim"
	"ftbox/guestvm"
	"ftbox/tools/guests"
)

var netsvcImage = sync.OnceValues(func() ([]byte, error) { return guests.Image("netsvc") })

func newNetsvc() (ftcore.Machine, error) {
	img, err := netsvcImage()
	if err != nil {
		return nil, err
	}
	m, err := guestvm.New(guestvm.Config{MemSize: 4 << 20})
	if err != nil {
		return nil, err
	}
	if err := m.Load(img); err != nil {
		return nil, err
	}
	return appliance.GuestMachine{Machine: m}, nil
}

// plan is one seed's fault schedule and network, all drawn from the seed.
type plan struct {
	seed       int64
	fault      string
	at, dur    time.Duration
	secondPath bool
	logFirst   bool
	log, lan   sim.Faults
	forge      float64
	// arb is the arbiter's fault: "" (none), "arb-lossy" (requests and
	// answers lost), "arb-slow" (answers up to several Timeouts late),
	// "arb-down" (down from the fault for arbDur, then back), "arb-wipe"
	// (the arbiter loses its state once, at wipe: restarted with --init
	// on a lost state file; with a long pause, once the other box went
	// live, before the paused one resumes — see runPlan).
	arb    string
	arbDur time.Duration
	wipe   float64 // when the wipe comes (0..1 of its range)
	// delay draws the second fault of a double fault (0..1 of its range).
	delay float64
}

var faultKinds = []string{
	"none",
	"crash-primary-icount", "crash-primary-mid-release", "crash-primary-mid-batch", "crash-primary",
	"crash-backup-icount", "crash-backup",
	"pause-primary-short", "pause-primary-long", "pause-backup-short", "pause-backup-long",
	"cut-log-short", "cut-log-long", "cut-log-oneway", "cut-lanpath", "partition",
	// Double faults: the primary crashes, then the backup while GOING_LIVE,
	// or the new primary shortly after go-live (before A is back), or the
	// new primary while it sends its state to the restarted A.
	"crash-primary-then-going-live", "crash-primary-then-new-primary", "crash-primary-during-transfer",
	// A crashed box restarted fresh after dur: it rejoins by state transfer.
	"restart-primary", "restart-backup",
}

var arbKinds = []string{"", "", "arb-lossy", "arb-slow", "arb-down", "arb-wipe"}

func planFor(seed int64) plan {
	r := rand.New(rand.NewPCG(uint64(seed), 0xfa175))
	p := plan{seed: seed, fault: faultKinds[r.IntN(len(faultKinds))]}
	p.at = time.Duration(20+r.IntN(130)) * time.Millisecond
	p.secondPath = r.IntN(2) == 0
	p.logFirst = r.IntN(2) == 0
	loss := []float64{0, 0.01, 0.05, 0.1}[r.IntN(4)]
	p.log = sim.Faults{Loss: loss, Dup: 0.02, Reorder: 0.05, Corrupt: 0.01}
	p.lan = sim.Faults{Loss: []float64{0, 0.01, 0.05}[r.IntN(3)], Dup: 0.02, Reorder: 0.05}
	if r.IntN(2) == 0 {
		p.forge = 0.5
	}
	p.arb = arbKinds[r.IntN(len(arbKinds))]
	p.arbDur = time.Duration(50+r.IntN(350)) * time.Millisecond
	p.delay = r.Float64()
	switch {
	case strings.HasSuffix(p.fault, "-short"):
		p.dur = time.Duration(10+r.IntN(40)) * time.Millisecond // well below the 90 ms timeout
	default:
		p.dur = time.Duration(150+r.IntN(250)) * time.Millisecond
	}
	p.wipe = r.Float64()
	if p.fault == "pause-primary-long" || p.fault == "pause-backup-long" {
		// Half the long pauses resume against a wiped arbiter: the
		// resumed box may claim the epoch its peer holds and be granted
		// it again (the split brain that epoch fencing prevents).
		if r.IntN(2) == 0 {
			p.arb = "arb-wipe"
		}
	}
	return p
}

func (p plan) String() string {
	arb := "arbiter ok"
	if p.arb != "" {
		arb = p.arb
		if p.arb == "arb-down" {
			arb += fmt.Sprintf(" for %v", p.arbDur)
		}
		if p.arb == "arb-wipe" {
			arb += fmt.Sprintf(" (%.2f)", p.wipe)
		}
	}
	return fmt.Sprintf("%s at %v for %v (delay %.2f), %s, second path %v, log-first %v, log %+v, lan %+v, forge %v/ms",
		p.fault, p.at, p.dur, p.delay, arb, p.secondPath, p.logFirst, p.log, p.lan, p.forge)
}

// result of one seed.
type result struct {
	plan    plan
	w       *sim.World
	c       *incrClient
	rep     sim.Report
	crashAt time.Duration // when the crash happened (0: none)
	fired   bool
	// connected: both boxes had heard each other when the fault came.
	// Before first contact failure detection does not run (ftcore's
	// ConnectTimeout), so a fault then leads to no failover.
	connected bool
	// second: the second fault of a double fault fired ("" none), and
	// what it found: syncing — the restarted A had no complete state yet.
	second   string
	secondAt time.Duration
	syncing  bool
}

const requests = 300

// runSeed runs one seed: the workload starts at once, the fault comes at
// plan.at, everything heals at plan.at+plan.dur (a crashed box stays dead),
// then the world runs until the client is done or 2 s passed, and 300 ms
// more for stragglers to time out. It checks
// the invariants, the client history and the outcome the fault must have.
func runSeed(seed int64, newMachine func() (ftcore.Machine, error), capture io.Writer) (*result, error) {
	return runPlan(planFor(seed), newMachine, capture)
}

func runPlan(p plan, newMachine func() (ftcore.Machine, error), capture io.Writer) (*result, error) {
	seed := p.seed
	if newMachine == nil {
		newMachine = newNetsvc
	}
	c := newIncr(requests)
	w, err := sim.New(sim.Options{
		Seed: uint64(seed), NewMachine: newMachine, Client: c,
		Config: ftcore.Config{DigestInterval: 50 * time.Millisecond, SecondPath: p.secondPath},
		LogPB:  p.log, LogBP: p.log, PathPB: p.log, PathBP: p.log, LAN: p.lan,
		Forge: p.forge, LogFirst: p.logFirst, Capture: capture,
	})
	if err != nil {
		return nil, err
	}
	defer w.Close()
	res := &result{plan: p, w: w, c: c}
	heal := p.at + p.dur
	cut := func(ls ...sim.LinkID) {
		for _, l := range ls {
			w.Link(l).Down = true
		}
		w.At(heal, func() {
			for _, l := range ls {
				w.Link(l).Down = false
			}
		})
	}
	w.At(p.at, func() {
		res.connected = w.P.Status().PeerLastHeard != 0 && w.B.Status().PeerLastHeard != 0
		rnd := w.Rand()
		switch p.fault {
		case "crash-primary-icount":
			w.CrashAtICount(0, w.Boxes[0].Probe.ICount()+1+rnd.Uint64N(50_000))
		case "crash-backup-icount":
			w.CrashAtICount(1, w.Boxes[1].Probe.ICount()+1+rnd.Uint64N(50_000))
		case "crash-primary-mid-release":
			w.CrashMidFlush(0, sim.SplitRelease)
		case "crash-primary-mid-batch":
			w.CrashMidFlush(0, sim.SplitLog)
		case "crash-primary":
			w.Crash(0)
		case "crash-backup":
			w.Crash(1)
		case "pause-primary-short", "pause-primary-long":
			w.Pause(0, p.dur)
		case "pause-backup-short", "pause-backup-long":
			w.Pause(1, p.dur)
		case "cut-log-short", "cut-log-long":
			cut(sim.LogAB, sim.LogBA)
		case "cut-log-oneway":
			cut([]sim.LinkID{sim.LogAB, sim.LogBA}[rnd.IntN(2)])
		case "cut-lanpath":
			cut(sim.PathAB, sim.PathBA)
		case "partition":
			cut(sim.LogAB, sim.LogBA, sim.PathAB, sim.PathBA)
		case "crash-primary-then-going-live", "crash-primary-then-new-primary", "crash-primary-during-transfer", "restart-primary":
			res.crash(0, rnd)
		case "restart-backup":
			res.crash(1, rnd)
		}
	})
	res.second2(heal)
	// (arbiter faults are set up below; heal is the network's)
	switch p.arb {
	case "arb-lossy":
		*w.ArbiterFaults() = sim.ArbiterFaults{LossReq: 0.3, LossReply: 0.3}
	case "arb-slow":
		*w.ArbiterFaults() = sim.ArbiterFaults{Slow: 270 * time.Millisecond} // 3× the default Timeout
	case "arb-down":
		w.At(p.at, func() { w.ArbiterFaults().Down = true })
		w.At(p.at+p.arbDur, func() { w.ArbiterFaults().Down = false })
	case "arb-wipe":
		res.wipeArbiter(heal)
	}
	end := heal // the faults are over, except a double fault's second and a down arbiter
	if p.arb == "arb-down" {
		end = max(end, p.at+p.arbDur)
	}
	w.RunUntil(end+2*time.Second, func() bool { return w.Now >= end && c.Done() && res.settled() })
	straggle := 300 * time.Millisecond
	if p.arb != "" {
		straggle = time.Second // a resumed old primary's claim may wait for a slow arbiter
	}
	w.Run(w.Now + straggle) // let stragglers time out: a resumed old primary halts, an abandoned backup too
	for _, b := range w.Boxes {
		if b.Dead && w.Now < b.DiedAt+time.Second {
			w.Run(b.DiedAt + time.Second) // a late crash (an armed one fires when it can): let the failover happen
		}
	}

	for _, b := range w.Boxes {
		if b.Dead {
			res.fired, res.crashAt = true, b.DiedAt
		}
	}
	res.rep, err = w.Verify()
	if err != nil {
		return res, err
	}
	if res.nobody() {
		// Nobody serves: the client's history must still be consistent,
		// though not every request was answered.
		if err := c.CheckSafe(); err != nil {
			return res, err
		}
	} else if err := c.Check(); err != nil {
		return res, err
	}
	return res, res.outcome()
}

// wipeArbiter arms the arbiter's state loss. With a long pause of box i:
// once the other box went live (a new epoch granted to it), at a random
// point before i resumes (at the latest as it resumes), so that i comes
// back to an arbiter that forgot the other's grant, unless the live box's
// periodic query re-asserted it first. Otherwise at a random time from
// just before the fault to 300 ms after it healed.
func (r *result) wipeArbiter(heal time.Duration) {
	w, p := r.w, r.plan
	i := -1
	switch p.fault {
	case "pause-primary-long":
		i = 0
	case "pause-backup-long":
		i = 1
	}
	if i < 0 {
		w.At(max(p.at-10*time.Millisecond, 0)+time.Duration(p.wipe*float64(p.dur+310*time.Millisecond)), w.WipeArbiter)
		return
	}
	done := false
	wipe := func() {
		if !done {
			done = true
			w.WipeArbiter()
		}
	}
	w.When(func() bool { return w.Now >= p.at && serving(w.Node(1-i)) && w.Node(1-i).Epoch() > 1 }, func() {
		w.At(w.Now+time.Duration(p.wipe*float64(max(heal-w.Now, 0))), wipe)
	})
	w.At(heal, wipe) // the other never went live during the pause: wipe as i resumes
}

// crash kills box i at the fault: between steps, or inside a Step at an
// instruction count a little ahead.
func (r *result) crash(i int, rnd *rand.Rand) {
	if rnd.IntN(2) == 0 {
		r.w.Crash(i)
		return
	}
	r.w.CrashAtICount(i, r.w.Boxes[i].Probe.ICount()+1+rnd.Uint64N(50_000))
}

func serving(n interface{ Role() ftcore.Role }) bool {
	return n.Role() == ftcore.RolePrimary || n.Role() == ftcore.RoleUnprotected
}

// second2 arms the second fault of the plan: the double faults' crash of
// B, and the restarts.
func (r *result) second2(heal time.Duration) {
	w, p := r.w, r.plan
	a, b := w.Boxes[0], w.Boxes[1]
	switch p.fault {
	case "crash-primary-then-going-live":
		// B dies in GOING_LIVE: at once (between steps), or inside its
		// replay to the end of the log, a few instructions on.
		w.When(func() bool { return a.Dead && !b.Dead && w.B.Role() == ftcore.RoleGoingLive }, func() {
			r.second, r.secondAt = "going-live", w.Now
			if p.delay < 0.5 {
				w.Crash(1)
				return
			}
			w.CrashAtICount(1, b.Probe.ICount()+1+uint64(p.delay*2000))
		})
	case "crash-primary-then-new-primary":
		// B dies up to 20 ms after it went live, before A is back.
		w.When(func() bool { return a.Dead && !b.Dead && w.B.Role() == ftcore.RoleUnprotected }, func() {
			r.second, r.secondAt = "new-primary", w.Now
			w.At(w.Now+time.Duration(p.delay*float64(20*time.Millisecond)), func() { w.Crash(1) })
		})
	case "crash-primary-during-transfer":
		// A is restarted dur after B went live; B dies within the state
		// transfer (or just after it).
		w.When(func() bool { return a.Dead && !b.Dead && w.B.Role() == ftcore.RoleUnprotected }, func() {
			var restart func()
			restart = func() {
				if err := w.Restart(0); err != nil {
					w.At(w.Now+10*time.Millisecond, restart)
					return
				}
				w.When(func() bool { return w.B.Status().Syncing && w.Node(0).Status().Syncing }, func() {
					w.At(w.Now+time.Duration(p.delay*float64(3*time.Millisecond)), func() {
						// B has not logged InSync yet: A cannot have a
						// complete state and must never go live.
						r.second, r.secondAt = "transfer", w.Now
						r.syncing = w.B.Role() != ftcore.RolePrimary // inSync logs the mark and makes it PRIMARY
						w.Crash(1)
					})
				})
			}
			w.At(w.Now+p.dur/4, restart)
		})
	case "restart-primary", "restart-backup":
		i := 0
		if p.fault == "restart-backup" {
			i = 1
		}
		var restart func()
		restart = func() {
			w.Crash(i) // if the armed crash was not reached yet
			if err := w.Restart(i); err != nil {
				w.At(w.Now+10*time.Millisecond, restart) // the arbiter is down: ask again
				return
			}
			r.second = "restart"
		}
		w.At(heal, restart)
	}
}

// nobody: the faults left no box that can serve (both crashed, or the
// survivor has no complete state).
func (r *result) nobody() bool {
	if !r.connected && r.w.Boxes[0].Dead && !serving(r.w.Node(1)) {
		// The primary died before the pair ever connected: the backup
		// never heard it, so failure detection never started (within
		// ConnectTimeout), and nobody serves.
		return true
	}
	switch r.second {
	case "going-live", "new-primary":
		return true
	case "transfer":
		// A had no complete state, or never got the InSync mark B logged
		// just before dying: it must wait, and nobody serves.
		return r.syncing || !serving(r.w.Node(0)) || r.w.Boxes[0].Dead
	}
	return false
}

// settled: a restarted box has rejoined (the pair is protected again), or
// there is no restart.
func (r *result) settled() bool {
	switch r.plan.fault {
	case "crash-primary-then-going-live", "crash-primary-then-new-primary", "crash-primary-during-transfer":
		// Wait for the second fault (if the first led to a go-live) and
		// then long enough for a slow arbiter's answer.
		if r.second == "" {
			return r.w.Now > r.plan.at+time.Second
		}
		return r.w.Now > r.secondAt+time.Second
	}
	for _, b := range r.w.Boxes {
		if b.Dead && r.w.Now < b.DiedAt+time.Second {
			return false // a failover (with a slow or down arbiter) takes time
		}
	}
	a, b := r.w.Node(0).Status(), r.w.Node(1).Status()
	if r.w.Counts.Yields > 0 && (a.Syncing || b.Syncing) {
		return false // a box that yielded to its peer is rejoining it
	}
	if r.second != "restart" || !r.connected {
		return true
	}
	return !a.Syncing && !b.Syncing && (a.Role == ftcore.RoleBackup || b.Role == ftcore.RoleBackup)
}

// outcome checks the roles the fault must have led to (DESIGN.md, and the
// second-path rule in ftcore's package documentation).
func (r *result) outcome() error {
	w, p := r.w, r.plan
	role := [2]ftcore.Role{w.Node(0).Role(), w.Node(1).Role()}
	nserving := 0
	for i, b := range w.Boxes {
		if !b.Dead && serving(w.Node(i)) {
			nserving++
		}
	}
	wantServing := 1
	if r.nobody() {
		wantServing = 0
	}
	if nserving != wantServing {
		return fmt.Errorf("%d boxes serve at the end, want %d (A %v dead %v, B %v dead %v; second fault %q, A syncing %v)",
			nserving, wantServing, role[0], w.Boxes[0].Dead, role[1], w.Boxes[1].Dead, r.second, r.syncing)
	}
	switch {
	case r.nobody():
		// Nothing is released after B's death (A is dead, or has no
		// complete state and must not go live).
		for _, x := range w.Releases {
			if x.At > w.Boxes[1].DiedAt {
				return fmt.Errorf("output %d released by %s at %v, after B died at %v", x.Num, w.Boxes[x.Box].Name, x.At, w.Boxes[1].DiedAt)
			}
		}
		if r.second == "transfer" && r.syncing && role[0] != ftcore.RoleBackup {
			return fmt.Errorf("the restarted A, whose state transfer did not complete, is %v", role[0])
		}
		return nil
	case r.second == "restart":
		if !r.connected {
			return nil
		}
		if p.fault == "restart-primary" {
			return want2(role, ftcore.RoleBackup, ftcore.RolePrimary, w)
		}
		return want2(role, ftcore.RolePrimary, ftcore.RoleBackup, w)
	}
	if !r.connected {
		return nil // the fault came before first contact: no failure detection yet
	}
	want := func(a, b ftcore.Role) error {
		if role == [2]ftcore.Role{a, b} {
			return nil
		}
		// A box that would have halted may instead have heard its peer
		// live in a later epoch and yielded (ftcore's fencing): it
		// rejoined as the peer's backup, the pair is protected again.
		// With a faulty arbiter either box may have won first.
		if w.Counts.Yields > 0 && !w.Node(0).Status().Syncing && !w.Node(1).Status().Syncing &&
			(a == ftcore.RoleHalted && role == [2]ftcore.Role{ftcore.RoleBackup, ftcore.RolePrimary} ||
				b == ftcore.RoleHalted && role == [2]ftcore.Role{ftcore.RolePrimary, ftcore.RoleBackup} ||
				p.arb != "" && (a == ftcore.RoleHalted || b == ftcore.RoleHalted) &&
					(role == [2]ftcore.Role{ftcore.RolePrimary, ftcore.RoleBackup} || role == [2]ftcore.Role{ftcore.RoleBackup, ftcore.RolePrimary})) {
			return nil
		}
		return fmt.Errorf("roles A %v B %v, want %v %v", role[0], role[1], a, b)
	}
	switch p.fault {
	case "none", "pause-primary-short", "pause-backup-short", "cut-log-short", "cut-lanpath":
		return want(ftcore.RolePrimary, ftcore.RoleBackup) // no false failover
	case "crash-primary-icount", "crash-primary", "crash-primary-mid-release", "crash-primary-mid-batch":
		if !w.Boxes[0].Dead {
			return want(ftcore.RolePrimary, ftcore.RoleBackup) // the crash point was not reached
		}
		return want(ftcore.RolePrimary, ftcore.RoleUnprotected) // A's role is frozen at its death
	case "crash-backup-icount", "crash-backup":
		if !w.Boxes[1].Dead {
			return want(ftcore.RolePrimary, ftcore.RoleBackup)
		}
		return want(ftcore.RoleUnprotected, ftcore.RoleBackup)
	case "pause-primary-long", "pause-backup-long":
		if p.arb != "" && (role == [2]ftcore.Role{ftcore.RoleHalted, ftcore.RoleUnprotected} || role == [2]ftcore.Role{ftcore.RoleUnprotected, ftcore.RoleHalted}) {
			// The paused box resumed while the other's claim was still
			// unanswered (arbiter down, slow, or the claim lost): both
			// claim, and the arbiter's first grant decides.
			return nil
		}
		if p.fault == "pause-primary-long" {
			return want(ftcore.RoleHalted, ftcore.RoleUnprotected)
		}
		return want(ftcore.RoleUnprotected, ftcore.RoleHalted)
	case "cut-log-long", "cut-log-oneway":
		// The primary is heard on the LAN: it keeps the service, no failover.
		// A one-way cut of the acks is detected after Timeout; of the log
		// after 2×Timeout: a short one may heal first.
		// A slow, lossy or down arbiter changes nothing: the claiming
		// primary goes on sending heartbeats, so the backup does not
		// claim before the primary won and fell silent; it never goes
		// live.
		if p.secondPath && (p.fault == "cut-log-long" || role != [2]ftcore.Role{ftcore.RolePrimary, ftcore.RoleBackup}) {
			if err := want(ftcore.RoleUnprotected, ftcore.RoleHalted); err != nil {
				return err
			}
			if bs := w.Node(1).Status(); bs.WentLive != 0 {
				return fmt.Errorf("the backup went live at %v although the primary was heard on the LAN", bs.WentLive)
			}
		}
	}
	return nil // partition, or a cut log link without a second path: either side may win
}

func want2(role [2]ftcore.Role, a, b ftcore.Role, w *sim.World) error {
	if role != [2]ftcore.Role{a, b} || w.Node(0).Status().Syncing || w.Node(1).Status().Syncing {
		return fmt.Errorf("roles A %v B %v (syncing %v %v), want %v %v, protected again", role[0], role[1], w.Node(0).Status().Syncing, w.Node(1).Status().Syncing, a, b)
	}
	return nil
}

func seeds(def int) []int64 {
	if *sim.SeedFlag >= 0 {
		return []int64{*sim.SeedFlag}
	}
	n := def
	if *sim.SeedsFlag > 0 {
		n = *sim.SeedsFlag
	}
	s := make([]int64, n)
	for i := range s {
		s[i] = int64(i)
	}
	return s
}

// sweep runs seeds on all CPUs (each world is one goroutine; worlds share
// nothing) and reports failures with their reproduction and capture.
func sweep(t *testing.T, name string, ss []int64, newMachine func() (ftcore.Machine, error), each func(*result)) {
	t.Helper()
	var mu sync.Mutex
	var failed []int64
	errs := map[int64]error{}
	results := make([]*result, len(ss))
	work := make(chan int)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				r, err := runSeed(ss[i], newMachine, nil)
				results[i] = r
				if err != nil {
					mu.Lock()
					failed = append(failed, ss[i])
					errs[ss[i]] = err
					mu.Unlock()
				}
			}
		}()
	}
	for i := range ss {
		work <- i
	}
	close(work)
	wg.Wait()
	sort.Slice(failed, func(i, j int) bool { return failed[i] < failed[j] })
	for i, seed := range failed {
		if i == 5 {
			t.Errorf("… and %d more failing seeds", len(failed)-5)
			break
		}
		t.Errorf("%s seed %d: %v\n  plan: %v\n  reproduce: go test ./ftcore/... -run Sim -seed %d\n  capture: %s",
			name, seed, errs[seed], planFor(seed), seed, captureSeed(seed, newMachine))
	}
	for _, r := range results {
		if r != nil && each != nil {
			each(r)
		}
	}
}

// captureSeed runs a seed again with every link captured and returns the
// pcapng's path.
func captureSeed(seed int64, newMachine func() (ftcore.Machine, error)) string {
	dir, err := os.MkdirTemp("", "ftbox-sim-")
	if err != nil {
		return err.Error()
	}
	path := filepath.Join(dir, fmt.Sprintf("seed-%d.pcapng", seed))
	f, err := os.Create(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	r, _ := runSeed(seed, newMachine, f)
	if r != nil {
		r.w.Close()
	}
	return path
}

// TestSimNetsvc sweeps the real guest (netsvc): the INCR workload, a
// random fault per seed over a noisy network with forged frames.
func TestSimNetsvc(t *testing.T) { sweepTest(t, "netsvc", 1, newNetsvc) }

// TestSimFake sweeps ten times as many seeds on counterVM, the cheap
// stand-in for netsvc: same workload, faults and checks.
func TestSimFake(t *testing.T) { sweepTest(t, "fake", 10, newCounterVM) }

// Default seed counts: netsvc 200, fake 2000 (about a minute of CPU in
// all); -seeds K runs K netsvc and 10·K fake seeds; -short a tenth.
const defaultSeeds = 200

func sweepTest(t *testing.T, name string, factor int, newMachine func() (ftcore.Machine, error)) {
	ss := seeds(defaultSeeds * factor)
	if *sim.SeedFlag < 0 {
		if *sim.SeedsFlag > 0 {
			ss = seeds(*sim.SeedsFlag * factor)
		}
		if testing.Short() {
			ss = ss[:len(ss)/10]
		}
	}
	start := time.Now()
	kinds := map[string]int{}
	seconds := map[string]int{} // second faults fired (double faults, restarts), and how transfers ended
	arbs := map[string]int{}
	var c sim.Counts
	var doubles uint64
	wipes := map[string]int{} // fault kinds combined with an arbiter wipe
	var maxDup uint64
	var maxAge time.Duration
	var worst plan
	sweep(t, name, ss, newMachine, func(r *result) {
		if r.rep.Duplicates > maxDup {
			worst = r.plan
		}
		kinds[r.plan.fault]++
		arbs[r.plan.arb]++
		if r.plan.arb == "arb-wipe" {
			wipes[r.plan.fault]++
		}
		doubles += uint64(r.rep.DoubleGrants)
		if r.second != "" {
			k := r.second
			if k == "transfer" {
				k += map[bool]string{true: "-incomplete", false: "-complete"}[r.syncing]
				if r.syncing == false && r.w.Node(0).Role() == ftcore.RoleUnprotected {
					k += "-took-over"
				}
			}
			seconds[k]++
		}
		k := r.w.Counts
		c.ArbiterCalls += k.ArbiterCalls
		c.ArbiterLost += k.ArbiterLost
		c.ArbiterErr += k.ArbiterErr
		c.Yields += k.Yields
		c.Wipes += k.Wipes
		c.Queries += k.Queries
		c.QueryAnswers += k.QueryAnswers
		c.Forged += k.Forged
		c.ForgedRefused += k.ForgedRefused
		c.MidRelease += k.MidRelease
		c.MidBatch += k.MidBatch
		c.ICountCrashes += k.ICountCrashes
		c.PauseOverflow += k.PauseOverflow
		maxDup = max(maxDup, r.rep.Duplicates)
		maxAge = max(maxAge, r.rep.DupAge)
	})
	t.Logf("%s: %d seeds in %v; faults %v", name, len(ss), time.Since(start).Round(time.Millisecond), kinds)
	t.Logf("%s: second faults %v; arbiter faults %v: %d requests, %d requests or answers lost, %d errors; %d yields",
		name, seconds, arbs, c.ArbiterCalls, c.ArbiterLost, c.ArbiterErr, c.Yields)
	t.Logf("%s: arbiter wiped %d times, with faults %v; %d epochs granted twice; %d current-epoch queries, %d answered",
		name, c.Wipes, wipes, doubles, c.Queries, c.QueryAnswers)
	t.Logf("%s: crashes inside Step at an icount %d, mid-release %d, mid-batch %d; forged frames %d (refused %d); paused-socket overflow %d",
		name, c.ICountCrashes, c.MidRelease, c.MidBatch, c.Forged, c.ForgedRefused, c.PauseOverflow)
	t.Logf("%s: largest duplicate window %d outputs (seed %d: %s); oldest duplicated output released %v before the backup declared the primary failed",
		name, maxDup, worst.seed, worst.fault, maxAge)
}

// TestSimDeterministic runs one seed twice with every link captured: the
// pcapng files must be byte-identical.
func TestSimDeterministic(t *testing.T) {
	seed := int64(3)
	if *sim.SeedFlag >= 0 {
		seed = *sim.SeedFlag
	}
	var out [2]bytes.Buffer
	for i := range out {
		r, err := runSeed(seed, newNetsvc, &out[i])
		if r == nil {
			t.Fatal(err)
		}
		if err := r.w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if out[0].Len() < 10_000 || !bytes.Equal(out[0].Bytes(), out[1].Bytes()) {
		t.Fatalf("seed %d: captures differ or are empty (%d and %d bytes)", seed, out[0].Len(), out[1].Len())
	}
	t.Logf("seed %d (%v): two runs, identical %d-byte pcapng", seed, planFor(seed).fault, out[0].Len())
}

var _ = errors.New
