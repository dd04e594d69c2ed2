package e2e

// Issue 7, "carrier-class failover": telecom protection switching is held to
// 50 ms. These benchmarks measure what the heartbeat settings give on the
// lab: the client-visible gap across kill -9 of the primary, and whether a
// long soak under load and loss on the logging link stays free of false
// failovers, with the distribution of gaps between the peer's frames as the
// boxes see them (what the heartbeat timeout must sit well above).
//
// They are benchmarks so that `go test ./...` never runs them. Each does its
// whole run once per invocation, whatever b.N is; run them with
// -benchtime=1x (and -run '^$' so that no test runs), as root:
//
//	sudo go test ./tools/e2e/ -run '^$' -bench 'FailoverGap' -benchtime=1x -timeout 60m -v
//	sudo FTBOX_SOAK=10m go test ./tools/e2e/ -run '^$' -bench 'Soak' -benchtime=1x -timeout 60m -v
//
// The heartbeat settings are the lab's: FTBOX_LAB_HB_INTERVAL and
// FTBOX_LAB_HB_TIMEOUT (default 10ms, 100ms). Other knobs:
// FTBOX_BENCH_KILLS (BenchmarkFailoverGap, default 20), FTBOX_SOAK (default
// 10m), FTBOX_SOAK_CONC (default 8), FTBOX_SOAK_INTERVAL (between one
// worker's requests, default 0: closed loop), FTBOX_SOAK_LOSS_PERMILLE
// (default 100: 10 % of the logging link's frames dropped each way).
// FTBOX=path tests a prebuilt binary. The load average is printed with every
// result: the lab's two boxes share the host's cores with everything else.

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func envInt(tb testing.TB, k string, def int) int {
	v := os.Getenv(k)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		tb.Fatalf("%s=%q: %v", k, v, err)
	}
	return n
}

func envDuration(tb testing.TB, k string, def time.Duration) time.Duration {
	v := os.Getenv(k)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		tb.Fatalf("%s=%q: %v", k, v, err)
	}
	return d
}

// BenchmarkFailoverGap: under the counter load, FTBOX_BENCH_KILLS times:
// kill -9 the primary, wait for the backup live, record the client-visible
// gap (the last reply before the outage → the first after), the survivor's
// detection and go-live times, start the killed box again and wait until
// both are PROTECTED. c=1 is the README's client (one INCR every 10 ms, 25
// ms reply timeout); c=8 is eight of them in closed loop (each sends its
// next INCR as soon as the previous is answered or 25 ms passed).
func BenchmarkFailoverGap(b *testing.B) {
	for _, c := range []struct {
		name     string
		conc     int
		interval time.Duration
	}{
		{"c=1", 1, 10 * time.Millisecond},
		{"c=8", 8, 0},
	} {
		b.Run(c.name, func(b *testing.B) { failoverGap(b, c.conc, c.interval) })
	}
}

type killResult struct {
	n           int
	killed      string
	gap         time.Duration
	gapStart    time.Duration // the last reply before the outage, after the kill command started (tools/lab kill takes a few ms to signal)
	polledLive  time.Duration // kill → survivor live, as polled
	detectionMS float64
	goLiveMS    float64
	rejoin      time.Duration // restart → both PROTECTED
	load        string
}

func failoverGap(b *testing.B, conc int, interval time.Duration) {
	kills := envInt(b, "FTBOX_BENCH_KILLS", 20)
	l := Up(b)
	st, err := waitPairProtected(l, 30*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	ld := startLoad(b, "fgap", conc, interval, 25*time.Millisecond, true)
	time.Sleep(time.Second)
	if ld.ackCount() == 0 {
		b.Fatalf("the counter load got no reply in a second")
	}
	var res []killResult
	falseFO := 0
	for k := 1; k <= kills; k++ {
		primary, survivor := "a", "b"
		if st["b"].Role == "PRIMARY" {
			primary, survivor = "b", "a"
		}
		prevEpoch := st[survivor].Epoch
		kr := killResult{n: k, killed: primary, load: loadAvg()}
		killAt := time.Now()
		if out, err := l.run("kill", primary, "KILL"); err != nil {
			b.Fatalf("kill %d: tools/lab kill %s: %v\n%s", k, primary, err, out)
		}
		_, liveAt, ok := waitForTB(l, survivor, 5*time.Second, func(s *Status, _ int) bool { return s.Live() && s.Epoch > prevEpoch })
		if !ok {
			b.Fatalf("kill %d: box %s not live in a later epoch 5 s after box %s was killed", k, survivor, primary)
		}
		kr.polledLive = liveAt.Sub(killAt)
		resumed, ok := ld.firstAckAfter(liveAt, 3*time.Second)
		if !ok {
			b.Fatalf("kill %d: no reply to the counter within 3 s of box %s going live", k, survivor)
		}
		var gapStart time.Time
		kr.gap, gapStart, _ = ld.gapAround(killAt.Add(-500*time.Millisecond), resumed)
		kr.gapStart = gapStart.Sub(killAt)
		// The survivor's account of it (go-live is set once its gate opened).
		s, _, ok := waitForTB(l, survivor, 2*time.Second, func(s *Status, _ int) bool {
			return s.LastFailover != nil && s.LastFailover.ToEpoch > prevEpoch && s.LastFailover.GoLiveMS > 0
		})
		if !ok {
			b.Fatalf("kill %d: box %s has no last_failover to an epoch after %d: %+v", k, survivor, prevEpoch, s)
		}
		kr.detectionMS, kr.goLiveMS = s.LastFailover.DetectionMS, s.LastFailover.GoLiveMS
		time.Sleep(200 * time.Millisecond)
		startAt := time.Now()
		if out, err := l.run("start", primary); err != nil {
			b.Fatalf("kill %d: tools/lab start %s: %v\n%s", k, primary, err, out)
		}
		if st, err = waitPairProtected(l, 60*time.Second); err != nil {
			b.Fatalf("kill %d: after restarting box %s: %v", k, primary, err)
		}
		kr.rejoin = time.Since(startAt)
		if st[survivor].Role != "PRIMARY" || st[survivor].Epoch != s.LastFailover.ToEpoch {
			// Nobody was killed: a false failover (around the rejoin). Count
			// it and go on with the pair as it is now.
			falseFO++
			b.Logf("kill %d: FALSE FAILOVER: box %s is %s epoch %d after box %s rejoined (was PRIMARY epoch %d); box %s's last failover %+v",
				k, survivor, st[survivor].Role, st[survivor].Epoch, primary, s.LastFailover.ToEpoch, primary, st[primary].LastFailover)
		}
		res = append(res, kr)
		b.Logf("kill %2d: box %s killed: client gap %6.1f ms (from kill%+6.1f ms), detection %6.1f ms, go-live %5.1f ms, live as polled %6.1f ms; rejoined in %v; load %s",
			k, primary, msf(kr.gap), msf(kr.gapStart), kr.detectionMS, kr.goLiveMS, msf(kr.polledLive),
			kr.rejoin.Round(10*time.Millisecond), kr.load)
		time.Sleep(500 * time.Millisecond) // steady load again before the next kill
	}
	ld.Stop()
	lost, missing := ld.lostAcked()
	b.Logf("counter: %d workers, %d requests, %d acknowledged, %d late, %d duplicate replies, %d errors; lost acknowledged increments %d; final GET unanswered for %d workers",
		conc, ld.sent, ld.acked, ld.late, ld.dups, ld.errs, lost, missing)
	if lost != 0 {
		b.Errorf("%d acknowledged increments lost: %q", lost, ld.regressions)
	}
	if missing != 0 {
		b.Errorf("the final GET went unanswered for %d workers", missing)
	}

	var gaps, det, golive []float64
	for _, r := range res {
		gaps = append(gaps, msf(r.gap))
		det = append(det, r.detectionMS)
		golive = append(golive, r.goLiveMS)
	}
	slices.Sort(gaps)
	slices.Sort(det)
	slices.Sort(golive)
	b.Logf("heartbeat interval %s timeout %s, c=%d, %d kills; load now %s", envOr("FTBOX_LAB_HB_INTERVAL", "10ms"),
		envOr("FTBOX_LAB_HB_TIMEOUT", "100ms"), conc, len(res), loadAvg())
	b.Logf("client gap ms (sorted): %s", fmtList(gaps))
	b.Logf("detection ms (sorted): %s", fmtList(det))
	b.Logf("go-live ms (sorted):   %s", fmtList(golive))
	over := 0
	for _, g := range gaps {
		if g > 50 {
			over++
		}
	}
	b.Logf("client gap p50 %.1f p90 %.1f p99 %.1f max %.1f ms; %d of %d over 50 ms; detection p50 %.1f max %.1f; go-live p50 %.1f max %.1f",
		quantile(gaps, .5), quantile(gaps, .9), quantile(gaps, .99), quantile(gaps, 1), over, len(gaps),
		quantile(det, .5), quantile(det, 1), quantile(golive, .5), quantile(golive, 1))
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(quantile(gaps, .5), "gap_p50_ms")
	b.ReportMetric(quantile(gaps, .9), "gap_p90_ms")
	b.ReportMetric(quantile(gaps, .99), "gap_p99_ms")
	b.ReportMetric(quantile(gaps, 1), "gap_max_ms")
	b.ReportMetric(float64(over), "kills_over_50ms")
	b.ReportMetric(quantile(det, .5), "detect_p50_ms")
	b.ReportMetric(quantile(det, 1), "detect_max_ms")
	b.ReportMetric(quantile(golive, .5), "golive_p50_ms")
	b.ReportMetric(quantile(golive, 1), "golive_max_ms")
	b.ReportMetric(float64(lost), "lost_acked")
	b.ReportMetric(float64(falseFO), "false_failovers")
	if falseFO != 0 {
		b.Errorf("%d false failovers between the kills", falseFO)
	}
}

func fmtList(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatFloat(x, 'f', 1, 64)
	}
	return strings.Join(s, " ")
}

// BenchmarkSoak: FTBOX_SOAK (default 10m) of closed-loop counter load at
// concurrency 8 with 10 % of the logging link's frames dropped each way
// (the eBPF loss injector on both log0s). Counts false failovers — any
// change of a box's role or epoch, or a last_failover appearing or
// changing, each box's change counted once — and reports, for both boxes,
// the distribution of the gaps between the peer's frames over the soak
// (peer.gaps of `ftbox status --json`, the soak's counts only).
func BenchmarkSoak(b *testing.B) {
	dur := envDuration(b, "FTBOX_SOAK", 10*time.Minute)
	conc := envInt(b, "FTBOX_SOAK_CONC", 8)
	interval := envDuration(b, "FTBOX_SOAK_INTERVAL", 0)
	permille := envInt(b, "FTBOX_SOAK_LOSS_PERMILLE", 100)
	l := Up(b)
	st, err := waitPairProtected(l, 30*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	ld := startLoad(b, "soak", conc, interval, 25*time.Millisecond, false)
	time.Sleep(time.Second)
	before := map[string]*gapHist{}
	for _, box := range []string{"a", "b"} {
		h, err := readGapHist(l, box)
		if err != nil {
			b.Fatal(err)
		}
		before[box] = h
	}
	loss := attachLogLoss(b, uint32(permille))
	start := time.Now()
	b.Logf("soak: %v, %d workers (interval %v), %d‰ loss on the logging link both ways, heartbeat interval %s timeout %s; load %s",
		dur, conc, interval, permille, envOr("FTBOX_LAB_HB_INTERVAL", "10ms"), envOr("FTBOX_LAB_HB_TIMEOUT", "100ms"), loadAvg())

	type seen struct {
		role  string
		epoch uint64
		fo    string // last_failover, as text ("" none)
	}
	foText := func(s *Status) string {
		if s.LastFailover == nil {
			return ""
		}
		f := s.LastFailover
		return fmt.Sprintf("%q → %q epoch %d→%d detection %.1f ms go-live %.1f ms", f.Reason, f.Result, f.FromEpoch, f.ToEpoch, f.DetectionMS, f.GoLiveMS)
	}
	cur := map[string]seen{}
	for box, s := range st {
		cur[box] = seen{s.Role, s.Epoch, foText(s)}
	}
	// changes: status changes seen (a failover shows as several: going
	// live, unprotected, protected again, the peer yielding); the false
	// failovers are the epochs the pair went through, or 1 if something
	// changed without a new epoch (a detection the arbiter then refused).
	changes, noAnswer, samples := 0, 0, 0
	startEpoch, maxEpoch := max(st["a"].Epoch, st["b"].Epoch), max(st["a"].Epoch, st["b"].Epoch)
	falseFailovers := 0
	var events []string
	lastProgress := start
	for time.Since(start) < dur {
		for _, box := range []string{"a", "b"} {
			sm := l.statusSample(box)
			samples++
			if sm.s == nil {
				noAnswer++
				continue
			}
			now := seen{sm.s.Role, sm.s.Epoch, foText(sm.s)}
			maxEpoch = max(maxEpoch, sm.s.Epoch)
			if now != cur[box] {
				changes++
				falseFailovers = max(int(maxEpoch-startEpoch), 1)
				ev := fmt.Sprintf("%s (+%.1fs) box %s: %s epoch %d → %s epoch %d; last failover %s; load %s",
					sm.at.Format("15:04:05.000"), sm.at.Sub(start).Seconds(), box, cur[box].role, cur[box].epoch,
					now.role, now.epoch, now.fo, loadAvg())
				events = append(events, ev)
				if len(events) <= 20 {
					b.Logf("FALSE FAILOVER: %s", ev)
				}
				cur[box] = now
			}
		}
		if time.Since(lastProgress) >= time.Minute {
			lastProgress = time.Now()
			ld.mu.Lock()
			acked, maxGap := ld.acked, ld.maxGap
			ld.mu.Unlock()
			line := fmt.Sprintf("soak +%v: %d acknowledged, longest client gap %.1f ms, %d false failovers, load %s;",
				time.Since(start).Round(time.Second), acked, msf(maxGap), falseFailovers, loadAvg())
			for _, box := range []string{"a", "b"} {
				if h, err := readGapHist(l, box); err == nil {
					d := h.sub(before[box])
					line += fmt.Sprintf(" box %s gaps >20/30/40/50 ms: %d/%d/%d/%d;", box, d.above(20), d.above(30), d.above(40), d.above(50))
				}
			}
			b.Log(line)
		}
		time.Sleep(100 * time.Millisecond)
	}
	end := time.Now()
	dropped, passed := loss.Stats()
	after := map[string]*gapHist{}
	for _, box := range []string{"a", "b"} {
		h, err := readGapHist(l, box)
		if err != nil {
			b.Fatal(err)
		}
		after[box] = h
	}
	ld.Stop()
	lost, missing := ld.lostAcked()
	b.Logf("soak %v (%s → %s), load at the end %s", end.Sub(start).Round(time.Second), start.Format("15:04:05"), end.Format("15:04:05"), loadAvg())
	b.Logf("loss injector: %d of %d logging-link frames dropped (%.1f %%)", dropped, dropped+passed, 100*float64(dropped)/float64(max(dropped+passed, 1)))
	b.Logf("counter: %d workers, %d requests, %d acknowledged (%.0f/s), %d late, %d duplicate replies, %d errors, longest client gap %.1f ms at %s; lost acknowledged increments %d; final GET unanswered for %d",
		conc, ld.sent, ld.acked, float64(ld.acked)/end.Sub(start).Seconds(), ld.late, ld.dups, ld.errs, msf(ld.maxGap),
		ld.gapFrom.Format("15:04:05.000"), lost, missing)
	b.Logf("status samples: %d, unanswered %d; false failovers: %d (epoch %d → %d; %d status changes)", samples, noAnswer, falseFailovers, startEpoch, maxEpoch, changes)
	for i, e := range events {
		if i == 40 {
			b.Logf("  … %d more", len(events)-40)
			break
		}
		b.Logf("  %s", e)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(falseFailovers), "false_failovers")
	b.ReportMetric(float64(changes), "status_changes")
	b.ReportMetric(float64(lost), "lost_acked")
	b.ReportMetric(msf(ld.maxGap), "client_gap_max_ms")
	for _, box := range []string{"a", "b"} {
		d := after[box].sub(before[box])
		// gap_max_ms is since the daemon started: it is the soak's only if it grew.
		maxMS, maxNote := after[box].maxMS, "during the soak"
		if after[box].maxMS <= before[box].maxMS {
			maxMS, maxNote = d.highestBound(), fmt.Sprintf("bucket bound: the daemon's max %.1f ms predates the soak", after[box].maxMS)
		}
		role := cur[box].role
		b.Logf("box %s (%s; sees the peer's frames): %d gaps; p50 ≤%g p99 ≤%g p99.9 ≤%g ms, max %.1f ms (%s); over 20/30/40/50 ms: %d/%d/%d/%d; buckets %s",
			box, role, d.total(), d.quantileBound(.5), d.quantileBound(.99), d.quantileBound(.999), maxMS, maxNote,
			d.above(20), d.above(30), d.above(40), d.above(50), d)
		b.ReportMetric(d.quantileBound(.5), "peergap_p50_ms_"+box)
		b.ReportMetric(d.quantileBound(.99), "peergap_p99_ms_"+box)
		b.ReportMetric(d.quantileBound(.999), "peergap_p999_ms_"+box)
		b.ReportMetric(maxMS, "peergap_max_ms_"+box)
		for _, ms := range []float64{20, 30, 40, 50} {
			b.ReportMetric(float64(d.above(ms)), fmt.Sprintf("peergaps_over%g_%s", ms, box))
		}
		if m, err := l.Metrics(box); err == nil {
			b.Logf("box %s: Prometheus ftbox_peer_gap_seconds_count %g (status total %d)", box, m["ftbox_peer_gap_seconds_count"], after[box].total())
		}
	}
	if falseFailovers != 0 {
		b.Errorf("%d false failovers in the soak", falseFailovers)
	}
	if lost != 0 {
		b.Errorf("%d acknowledged increments lost: %q", lost, ld.regressions)
	}
}

// highestBound is the upper bound of the highest non-empty bucket (ms).
func (h *gapHist) highestBound() float64 {
	for i := len(h.counts) - 1; i >= 0; i-- {
		if h.counts[i] > 0 {
			if math.IsInf(h.bounds[i], 1) {
				return h.maxMS
			}
			return h.bounds[i]
		}
	}
	return 0
}
