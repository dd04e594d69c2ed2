package sim_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"ftbox/ftcore"
	"ftbox/ftcore/sim"
)

// TestSimFigures measures, with ftcore's default settings on a quiet
// network and the real guest, the figures the issue asks for, and prints
// them as "name: value unit" lines (go test -v -run SimFigures).
func TestSimFigures(t *testing.T) {
	// Steady state: no failure, 300 requests at 2000/s.
	c := newIncr(requests)
	w, err := sim.New(sim.Options{Seed: 1, NewMachine: newNetsvc, Client: c})
	if err != nil {
		t.Fatal(err)
	}
	var samples, heldSum uint64
	var heldMax int
	var sample func()
	sample = func() {
		h := w.P.Status().OutputsHeld
		samples++
		heldSum += uint64(h)
		heldMax = max(heldMax, h)
		if !c.Done() {
			w.At(w.Now+50*time.Microsecond, sample)
		}
	}
	w.At(0, sample)
	if !w.RunUntil(2*time.Second, c.Done) {
		t.Fatal("workload did not finish")
	}
	end := w.Now
	if _, err := w.Verify(); err != nil {
		t.Fatal(err)
	}
	if err := c.Check(); err != nil {
		t.Fatal(err)
	}
	ps := w.P.Status()
	ls := w.LinkStats()
	avgHeld := float64(heldSum) / float64(samples)
	rate := float64(ps.OutputsReleased) / end.Seconds()
	var lat time.Duration
	for _, o := range c.ops {
		lat += o.replies[0].at - o.sends[0]
	}
	line := func(name string, v any, unit string) {
		if d, ok := v.(time.Duration); ok {
			v, unit = fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond)), "ms"
		}
		t.Logf("%s: %v %s", name, v, unit)
	}
	line("log bytes per input byte (log0 A>B frames)", fmt.Sprintf("%.2f", float64(ls[sim.LogAB].Bytes)/float64(ps.InputBytes)), "bytes")
	line("log entry bytes per input byte", fmt.Sprintf("%.2f", float64(ps.LogEntryBytes)/float64(ps.InputBytes)), "bytes")
	line("ack bytes per input byte (log0 B>A frames)", fmt.Sprintf("%.2f", float64(ls[sim.LogBA].Bytes)/float64(ps.InputBytes)), "bytes")
	line("outputs held per request", fmt.Sprintf("%.2f", float64(ps.OutputsProduced)/float64(len(c.ops)+len(c.gets))), "outputs")
	line("outputs held at a time, mean", fmt.Sprintf("%.2f", avgHeld), "outputs")
	line("outputs held at a time, max", heldMax, "outputs")
	line("output hold time, mean (Little)", time.Duration(avgHeld/rate*float64(time.Second)), "")
	line("request latency, mean", (lat / time.Duration(len(c.ops))), "")

	// Failover: the primary (or the backup) crashes at a random instruction
	// count in the middle of the workload.
	var det, live, detMax, liveMax, pdet, pdetMax time.Duration
	var dupMax uint64
	var ageMax time.Duration
	const n = 20
	for seed := range int64(n) {
		for box := range 2 {
			c := newIncr(requests)
			w, err := sim.New(sim.Options{Seed: uint64(seed), NewMachine: newNetsvc, Client: c})
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(uint64(seed), 7))
			w.Run(time.Duration(40+r.IntN(80)) * time.Millisecond)
			w.CrashAtICount(box, w.Boxes[box].Probe.ICount()+1+r.Uint64N(50_000))
			if !w.RunUntil(3*time.Second, func() bool { return c.Done() && w.Boxes[box].Dead }) {
				t.Fatalf("seed %d crash %s: workload did not finish (dead %v)", seed, w.Boxes[box].Name, w.Boxes[box].Dead)
			}
			rep, err := w.Verify()
			if err == nil {
				err = c.Check()
			}
			if err != nil {
				t.Fatalf("seed %d crash %s: %v", seed, w.Boxes[box].Name, err)
			}
			at := w.Boxes[box].DiedAt
			if box == 0 {
				bs := w.B.Status()
				d, l := bs.FailureDetected-at, bs.WentLive-at
				det, live = det+d, live+l
				detMax, liveMax = max(detMax, d), max(liveMax, l)
				dupMax, ageMax = max(dupMax, rep.Duplicates), max(ageMax, rep.DupAge)
			} else {
				d := w.P.Status().FailureDetected - at
				pdet, pdetMax = pdet+d, max(pdetMax, d)
				if w.P.Role() != ftcore.RoleUnprotected {
					t.Fatalf("seed %d: primary %v after the backup's crash", seed, w.P.Role())
				}
			}
		}
	}
	line("failover detection time (backup detects the primary's crash), mean", (det / n), "")
	line("failover detection time, max", detMax, "")
	line("go-live time (crash to the backup releasing and announcing), mean", (live / n), "")
	line("go-live time, max", liveMax, "")
	line("primary detects the backup's crash, mean", (pdet / n), "")
	line("largest duplicate window", dupMax, "outputs")
	line("oldest duplicated output, before detection", ageMax, "")
	line("failover runs", n, "per box")
}
