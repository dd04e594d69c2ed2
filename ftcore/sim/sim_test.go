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

	"ftbox/ftcore"
	"ftbox/ftcore/logwire"
	"ftbox/ftcore/sim"
	"ftbox/guestvm"
	"ftbox/tools/guests"
)

// vm adapts *guestvm.Machine to ftcore.Machine.
type vm struct{ *guestvm.Machine }

func (v vm) Run(until uint64) ftcore.Stop { return ftcore.Stop(v.Machine.Run(until)) }

func (v vm) Inject(e logwire.Entry) error {
	var ev guestvm.Event
	switch e := e.(type) {
	case logwire.InputFrame:
		ev = guestvm.Event{Kind: guestvm.EvFrame, ICount: e.ICount, Data: e.Frame}
	case logwire.ClockSync:
		ev = guestvm.Event{Kind: guestvm.EvClock, ICount: e.ICount, Time: e.Time, RateNum: e.RateNum, RateDen: e.RateDen}
	case logwire.ConsoleInput:
		ev = guestvm.Event{Kind: guestvm.EvConsole, ICount: e.ICount, Data: e.Data}
	default:
		return fmt.Errorf("not an event: %v", e.Type())
	}
	_, err := v.Machine.Inject(ev)
	return err
}

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
	return vm{m}, nil
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
}

var faultKinds = []string{
	"none",
	"crash-primary-icount", "crash-primary-mid-release", "crash-primary-mid-batch", "crash-primary",
	"crash-backup-icount", "crash-backup",
	"pause-primary-short", "pause-primary-long", "pause-backup-short", "pause-backup-long",
	"cut-log-short", "cut-log-long", "cut-log-oneway", "cut-lanpath", "partition",
}

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
	switch {
	case strings.HasSuffix(p.fault, "-short"):
		p.dur = time.Duration(10+r.IntN(40)) * time.Millisecond // well below the 90 ms timeout
	default:
		p.dur = time.Duration(150+r.IntN(250)) * time.Millisecond
	}
	return p
}

func (p plan) String() string {
	return fmt.Sprintf("%s at %v for %v, second path %v, log-first %v, log %+v, lan %+v, forge %v/ms",
		p.fault, p.at, p.dur, p.secondPath, p.logFirst, p.log, p.lan, p.forge)
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
		}
	})
	w.RunUntil(heal+2*time.Second, func() bool { return w.Now >= heal && c.Done() })
	w.Run(w.Now + 300*time.Millisecond) // let stragglers time out: a resumed old primary halts, an abandoned backup too
	for _, b := range w.Boxes {
		if b.Dead {
			res.fired, res.crashAt = true, b.DiedAt
		}
	}
	res.rep, err = w.Verify()
	if err != nil {
		return res, err
	}
	if err := c.Check(); err != nil {
		return res, err
	}
	return res, res.outcome()
}

// outcome checks the roles the fault must have led to (DESIGN.md, and the
// second-path rule in ftcore's package documentation).
func (r *result) outcome() error {
	w, p := r.w, r.plan
	role := [2]ftcore.Role{w.P.Role(), w.B.Role()}
	serving := 0
	for i, b := range w.Boxes {
		if !b.Dead && (role[i] == ftcore.RolePrimary || role[i] == ftcore.RoleUnprotected) {
			serving++
		}
	}
	if serving != 1 {
		return fmt.Errorf("%d boxes serve at the end (A %v dead %v, B %v dead %v)", serving, role[0], w.Boxes[0].Dead, role[1], w.Boxes[1].Dead)
	}
	if !r.connected {
		return nil // the fault came before first contact: no failure detection yet
	}
	want := func(a, b ftcore.Role) error {
		if role != [2]ftcore.Role{a, b} {
			return fmt.Errorf("roles A %v B %v, want %v %v", role[0], role[1], a, b)
		}
		return nil
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
	case "pause-primary-long":
		return want(ftcore.RoleHalted, ftcore.RoleUnprotected)
	case "pause-backup-long":
		return want(ftcore.RoleUnprotected, ftcore.RoleHalted)
	case "cut-log-long", "cut-log-oneway":
		// The primary is heard on the LAN: it keeps the service, no failover.
		// A one-way cut of the acks is detected after Timeout; of the log
		// after 2×Timeout: a short one may heal first.
		if p.secondPath && (p.fault == "cut-log-long" || role != [2]ftcore.Role{ftcore.RolePrimary, ftcore.RoleBackup}) {
			return want(ftcore.RoleUnprotected, ftcore.RoleHalted)
		}
	}
	return nil // partition, or a cut log link without a second path: either side may win
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
	var c sim.Counts
	var maxDup uint64
	var maxAge time.Duration
	var worst plan
	sweep(t, name, ss, newMachine, func(r *result) {
		if r.rep.Duplicates > maxDup {
			worst = r.plan
		}
		kinds[r.plan.fault]++
		k := r.w.Counts
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
