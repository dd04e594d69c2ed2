package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"ftbox/bpf"
	"ftbox/tools/client"
	"ftbox/tools/testenv"
)

// Helpers of the carrier-class benchmarks (carrier_bench_test.go, issue 7):
// load, loss and gap statistics; the lab itself comes from Up, as for the
// tests. The lab lock is TestMain's.

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// waitForTB polls box's status every 10 ms until ok; false after timeout.
func waitForTB(l *Lab, box string, timeout time.Duration, ok func(*Status, int) bool) (*Status, time.Time, bool) {
	deadline := time.Now().Add(timeout)
	var last *Status
	for time.Now().Before(deadline) {
		s, code, err := l.Status(box)
		if err == nil {
			last = s
			if ok(s, code) {
				return s, time.Now(), true
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return last, time.Now(), false
}

// waitPairProtected: both boxes exit 0 PROTECTED, one PRIMARY one BACKUP.
func waitPairProtected(l *Lab, timeout time.Duration) (map[string]*Status, error) {
	if st, ok := l.waitProtected(timeout); ok {
		return st, nil
	}
	return nil, fmt.Errorf("not PROTECTED on both boxes within %v: box a %s; box b %s", timeout, l.statusSample("a"), l.statusSample("b"))
}

// logLoss is the eBPF loss injector on log0's egress in both boxes.
type logLoss struct{ losses []*bpf.Loss }

// attachLogLoss drops permille/1000 of the logging link's frames leaving
// either box (the lab's kernel has no netem); detached at the latest when
// the test ends.
func attachLogLoss(tb testing.TB, permille uint32) *logLoss {
	tb.Helper()
	ll := &logLoss{}
	for _, ns := range []string{"ftboxa", "ftboxb"} {
		if err := testenv.InNetNS(ns, func() error {
			lo, err := bpf.AttachLoss("log0", bpf.Egress, permille, logEther)
			if err == nil {
				ll.losses = append(ll.losses, lo)
			}
			return err
		}); err != nil {
			ll.Detach()
			tb.Fatalf("loss injector in %s: %v", ns, err)
		}
	}
	tb.Cleanup(ll.Detach)
	return ll
}

// Stats sums both injectors' counters.
func (ll *logLoss) Stats() (dropped, passed uint64) {
	for _, lo := range ll.losses {
		if st, err := lo.Stats(); err == nil {
			dropped += st.DroppedFrames
			passed += st.PassedFrames
		}
	}
	return
}

// Detach removes the injectors (again: nothing).
func (ll *logLoss) Detach() {
	for _, lo := range ll.losses {
		lo.Close()
	}
	ll.losses = nil
}

// ---------------------------------------------------------------------------
// Load: the counter client's protocol, conc workers

// incrLoad is conc counter clients, each on its own UDP socket and its own
// counter name, as tools/client.Counter does it (INCR with a fresh reqid;
// a request unanswered after timeout is given up and a fresh one sent, a
// late reply still counts; pace to interval, 0 = closed loop). It keeps
// only what the benchmarks need: the merged acknowledgment times (if
// keepAcks; a 10-minute closed loop would not fit otherwise), the longest
// merged gap, and per worker the largest acknowledged value, to check that
// no acknowledged increment is lost (each worker's values only grow; the
// final GET is at least the largest acknowledged).
type incrLoad struct {
	conc              int
	interval, timeout time.Duration
	keepAcks          bool

	mu          sync.Mutex
	acks        []time.Time // merged, in arrival order (keepAcks)
	lastAck     time.Time
	maxGap      time.Duration
	gapFrom     time.Time
	sent        int
	acked       int
	late        int
	dups        int // replies to a request already answered (a failover may re-send outputs) or never sent
	errs        int
	regressed   int
	regressions []string // the first few, as text
	workers     []*incrWorker

	cancel context.CancelFunc
	done   sync.WaitGroup
}

type incrWorker struct {
	name    string
	conn    net.Conn
	maxVal  uint64
	pending map[string]time.Time // sent, not yet answered
	final   uint64
	finalOK bool
}

// startLoad starts conc workers from the client's namespace.
func startLoad(tb testing.TB, name string, conc int, interval, timeout time.Duration, keepAcks bool) *incrLoad {
	tb.Helper()
	ld := &incrLoad{conc: conc, interval: interval, timeout: timeout, keepAcks: keepAcks}
	for i := 0; i < conc; i++ {
		var conn net.Conn
		if err := testenv.InNetNS("ftclient", func() error {
			var err error
			conn, err = client.Dial(guestIP + ":7000")
			return err
		}); err != nil {
			tb.Fatal(err)
		}
		ld.workers = append(ld.workers, &incrWorker{name: fmt.Sprintf("%s-%d-w%d", name, time.Now().UnixNano()%1e6, i), conn: conn, pending: map[string]time.Time{}})
	}
	ctx, cancel := context.WithCancel(context.Background())
	ld.cancel = cancel
	for _, w := range ld.workers {
		ld.done.Add(1)
		go func() {
			defer ld.done.Done()
			ld.run(ctx, w)
		}()
	}
	tb.Cleanup(func() { ld.Stop() })
	return ld
}

func (ld *incrLoad) record(w *incrWorker, v uint64, at time.Time) {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	ld.acked++
	if w.maxVal != 0 && v <= w.maxVal {
		ld.regressed++
		if len(ld.regressions) < 10 {
			ld.regressions = append(ld.regressions, fmt.Sprintf("%s %s: value %d after %d", at.Format("15:04:05.000"), w.name, v, w.maxVal))
		}
	}
	w.maxVal = max(w.maxVal, v)
	if !ld.lastAck.IsZero() && at.Sub(ld.lastAck) > ld.maxGap {
		ld.maxGap, ld.gapFrom = at.Sub(ld.lastAck), ld.lastAck
	}
	if at.After(ld.lastAck) {
		ld.lastAck = at
	}
	if ld.keepAcks {
		ld.acks = append(ld.acks, at)
	}
}

func (ld *incrLoad) run(ctx context.Context, w *incrWorker) {
	buf := make([]byte, 2048)
	var id uint64
	for ctx.Err() == nil {
		id++
		reqid := "q" + strconv.FormatUint(id, 10)
		now := time.Now()
		if _, err := fmt.Fprintf(w.conn, "INCR %s %s", w.name, reqid); err != nil {
			ld.mu.Lock()
			ld.errs++
			ld.mu.Unlock()
		} else {
			w.pending[reqid] = now
			ld.mu.Lock()
			ld.sent++
			ld.mu.Unlock()
		}
		if len(w.pending) > 1000 { // requests lost in an outage: never answered
			for id, at := range w.pending {
				if now.Sub(at) > 10*time.Second {
					delete(w.pending, id)
				}
			}
		}
		deadline := now.Add(ld.timeout)
		for {
			_ = w.conn.SetReadDeadline(deadline)
			n, err := w.conn.Read(buf)
			if err != nil {
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					ld.mu.Lock()
					ld.errs++
					ld.mu.Unlock()
					time.Sleep(time.Millisecond)
					if time.Now().Before(deadline) {
						continue
					}
				}
				break
			}
			at := time.Now()
			rid, v, perr := client.ParseReply(buf[:n])
			if perr != nil {
				ld.mu.Lock()
				ld.errs++
				ld.mu.Unlock()
				continue
			}
			if _, ok := w.pending[rid]; !ok {
				ld.mu.Lock()
				ld.dups++
				ld.mu.Unlock()
				continue
			}
			delete(w.pending, rid)
			ld.record(w, v, at)
			if rid == reqid {
				break
			}
			ld.mu.Lock()
			ld.late++
			ld.mu.Unlock()
		}
		if wait := time.Until(now.Add(ld.interval)); wait > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
	}
	// Replies still in flight, then the final value.
	_ = w.conn.SetReadDeadline(time.Now().Add(ld.timeout))
	for {
		n, err := w.conn.Read(buf)
		if err != nil {
			break
		}
		if rid, v, perr := client.ParseReply(buf[:n]); perr == nil {
			if _, ok := w.pending[rid]; ok {
				delete(w.pending, rid)
				ld.record(w, v, time.Now())
			}
		}
	}
	w.final, w.finalOK = client.FinalValue(w.conn, w.name, ld.timeout)
	w.conn.Close()
}

// Stop ends the load (once) and waits for the final GETs.
func (ld *incrLoad) Stop() {
	ld.cancel()
	ld.done.Wait()
}

// lostAcked, after Stop: acknowledged values that did not grow a worker's
// counter, plus any final value below the largest acknowledged; and how
// many workers' final GET went unanswered.
func (ld *incrLoad) lostAcked() (lost int, finalMissing int) {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	lost = ld.regressed
	for _, w := range ld.workers {
		if !w.finalOK {
			finalMissing++
			continue
		}
		if w.final < w.maxVal {
			lost += int(w.maxVal - w.final)
		}
	}
	return
}

// ackCount is how many acknowledgments have been kept so far.
func (ld *incrLoad) ackCount() int {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	return len(ld.acks)
}

// firstAckAfter waits until an acknowledgment arrives after t, up to timeout.
func (ld *incrLoad) firstAckAfter(t time.Time, timeout time.Duration) (time.Time, bool) {
	deadline := time.Now().Add(timeout)
	for {
		ld.mu.Lock()
		last := ld.lastAck
		ld.mu.Unlock()
		if last.After(t) {
			return last, true
		}
		if time.Now().After(deadline) {
			return time.Time{}, false
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// gapAround is the longest span between consecutive kept acknowledgments
// with the later one in (from, to]: from its start (the last reply before
// the outage) to its end (the first one after).
func (ld *incrLoad) gapAround(from, to time.Time) (gap time.Duration, start, end time.Time) {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	acks := ld.acks
	i, _ := slices.BinarySearchFunc(acks, from, func(a, t time.Time) int { return a.Compare(t) })
	for i = max(i, 1); i < len(acks) && !acks[i].After(to); i++ {
		if d := acks[i].Sub(acks[i-1]); d > gap {
			gap, start, end = d, acks[i-1], acks[i]
		}
	}
	return
}

// ---------------------------------------------------------------------------
// Figures

// quantile is the nearest-rank p-quantile of sorted.
func quantile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// peerGaps is the part of `ftbox status --json` with the peer's frame gaps.
type peerGaps struct {
	Peer struct {
		GapMaxMS float64 `json:"gap_max_ms"`
		Gaps     []struct {
			LeMS  float64 `json:"le_ms"`
			Count uint64  `json:"count"`
		} `json:"gaps"`
	} `json:"peer"`
}

// gapHist is a histogram of peer-frame gaps: bounds[i] (ms, +Inf last) and
// the non-cumulative count in each.
type gapHist struct {
	bounds []float64
	counts []uint64
	maxMS  float64
}

func readGapHist(l *Lab, box string) (*gapHist, error) {
	out, err := exec.Command(l.ftbox, "status", "--json", "--timeout", "1s", "--socket", filepath.Join(l.state, box, "ftbox.sock")).Output()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return nil, err
	}
	var pg peerGaps
	if err := json.Unmarshal(out, &pg); err != nil {
		return nil, fmt.Errorf("status of box %s: %v", box, err)
	}
	h := &gapHist{maxMS: pg.Peer.GapMaxMS}
	var prev uint64
	for _, g := range pg.Peer.Gaps {
		b := g.LeMS
		if b < 0 {
			b = math.Inf(1)
		}
		h.bounds = append(h.bounds, b)
		h.counts = append(h.counts, g.Count-min(prev, g.Count))
		prev = g.Count
	}
	if len(h.bounds) == 0 {
		return nil, fmt.Errorf("box %s: no peer.gaps in its status", box)
	}
	return h, nil
}

// sub is h minus an earlier snapshot of the same daemon (nil: h).
func (h *gapHist) sub(earlier *gapHist) *gapHist {
	d := &gapHist{bounds: h.bounds, counts: slices.Clone(h.counts), maxMS: h.maxMS}
	if earlier == nil || len(earlier.counts) != len(h.counts) {
		return d
	}
	for i := range d.counts {
		d.counts[i] -= min(earlier.counts[i], d.counts[i])
	}
	return d
}

func (h *gapHist) total() uint64 {
	var n uint64
	for _, c := range h.counts {
		n += c
	}
	return n
}

// quantileBound is the upper bound (ms) of the bucket holding the
// p-quantile: "p of the gaps were at most this"; +Inf falls back to max.
func (h *gapHist) quantileBound(p float64) float64 {
	n := h.total()
	if n == 0 {
		return math.NaN()
	}
	rank := uint64(math.Ceil(p * float64(n)))
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= rank {
			if math.IsInf(h.bounds[i], 1) {
				return h.maxMS
			}
			return h.bounds[i]
		}
	}
	return h.maxMS
}

// above counts the gaps in buckets above ms (ms must be a bucket bound).
func (h *gapHist) above(ms float64) uint64 {
	var n uint64
	for i, c := range h.counts {
		if h.bounds[i] > ms {
			n += c
		}
	}
	return n
}

func (h *gapHist) String() string {
	var b strings.Builder
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		lo := 0.0
		if i > 0 {
			lo = h.bounds[i-1]
		}
		fmt.Fprintf(&b, " (%g,%g]:%d", lo, h.bounds[i], c)
	}
	return strings.TrimSpace(b.String())
}

// loadAvg is /proc/loadavg's first three fields.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
