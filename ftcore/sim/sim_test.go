package sim_test

import (
	"flag"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"ftbox/ftcore"
	"ftbox/ftcore/logwire"
	"ftbox/ftcore/sim"
	"ftbox/guestvm"
	"ftbox/tools/guests"
	"ftbox/tools/pkt"
)

var (
	seedFlag  = flag.Int64("seed", -1, "run only this simulation seed")
	seedCount = flag.Int("seeds", 12, "simulation seeds per scenario")
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

func newNetsvc() (ftcore.Machine, error) {
	img, err := guests.Image("netsvc")
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

var (
	clientHost = pkt.Host{MAC: net.HardwareAddr{0x02, 0, 0, 0, 0, 0x64}, IP: net.IPv4(10, 77, 0, 100)}
	guestHost  = pkt.Host{MAC: net.HardwareAddr(guestvm.DefaultMAC[:]), IP: net.IPv4(10, 77, 0, 10)}
)

// incrClient sends INCR requests with unique ids to UDP 7000 and retries
// unanswered ones, Jepsen-set style.
type incrClient struct {
	period, retry time.Duration
	max           int
	next          time.Duration
	sent          int
	pending       map[string]time.Duration // reqid → last sent
	values        map[string][]uint64      // reqid → values replied
	frames        int
	replies       []string
	first         map[string]time.Duration
	latency       []time.Duration
}

func newIncr(max int) *incrClient {
	return &incrClient{period: 500 * time.Microsecond, retry: 30 * time.Millisecond, max: max,
		pending: map[string]time.Duration{}, values: map[string][]uint64{}, first: map[string]time.Duration{}}
}

func (c *incrClient) req(id string) []byte {
	return pkt.UDP(clientHost, guestHost, 4000, 7000, fmt.Appendf(nil, "INCR c %s", id))
}

func (c *incrClient) Tick(now time.Duration) [][]byte {
	var out [][]byte
	if c.sent < c.max && now >= c.next {
		c.sent++
		id := fmt.Sprintf("r%d", c.sent)
		c.pending[id] = now
		c.first[id] = now
		c.next = now + c.period
		out = append(out, c.req(id))
	}
	for id, at := range c.pending {
		if now-at >= c.retry {
			c.pending[id] = now
			out = append(out, c.req(id))
		}
	}
	return out
}

func (c *incrClient) Receive(now time.Duration, f []byte) {
	c.frames++
	d := pkt.Decode(f)
	if d.UDP == nil || d.UDP.SrcPort != 7000 || !d.ChecksumsOK {
		return
	}
	c.replies = append(c.replies, string(d.Payload))
	fs := strings.Fields(string(d.Payload))
	if len(fs) != 2 {
		return
	}
	v, err := strconv.ParseUint(fs[1], 10, 64)
	if err != nil {
		return
	}
	if _, ok := c.pending[fs[0]]; ok {
		c.latency = append(c.latency, now-c.first[fs[0]])
	}
	delete(c.pending, fs[0])
	c.values[fs[0]] = append(c.values[fs[0]], v)
}

// check: no value the counter could not produce twice for different
// requests (that would be a lost increment replayed), every acknowledged
// request has a value, duplicates are exact repeats.
func (c *incrClient) check(t *testing.T, seed int64) (acked int) {
	t.Helper()
	owner := map[uint64]string{}
	for id, vs := range c.values {
		for _, v := range vs {
			if o, ok := owner[v]; ok && o != id {
				t.Fatalf("seed %d: value %d returned for %s and %s: an acknowledged increment was lost", seed, v, o, id)
			}
			owner[v] = id
		}
	}
	return len(c.values)
}

func seeds() []int64 {
	if *seedFlag >= 0 {
		return []int64{*seedFlag}
	}
	s := make([]int64, *seedCount)
	for i := range s {
		s[i] = int64(i)
	}
	return s
}

func world(t *testing.T, seed int64, c sim.Client, f sim.Faults) *sim.World {
	t.Helper()
	w, err := sim.New(sim.Options{
		Seed: uint64(seed), NewMachine: newNetsvc, Client: c,
		Config: ftcore.Config{DigestInterval: 20 * time.Millisecond},
		LogPB:  f, LogBP: f,
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestSimNetsvcNoFailure(t *testing.T) {
	c := newIncr(200)
	w := world(t, 1, c, sim.Faults{Loss: 0.1, Dup: 0.05, Reorder: 0.1})
	w.Run(400 * time.Millisecond)
	if _, err := w.Check(); err != nil {
		t.Fatal(err)
	}
	if n := c.check(t, 1); n != 200 {
		t.Fatalf("%d of 200 requests acknowledged", n)
	}
	ps, bs := w.P.Status(), w.B.Status()
	if bs.DigestsCompared == 0 || ps.Role != ftcore.RolePrimary {
		t.Fatalf("digests %d role %v", bs.DigestsCompared, ps.Role)
	}
	t.Logf("netsvc, 10%% loss: %d requests, log %d bytes for %d input bytes (%.1f log bytes per input byte), %d digests compared, %d retransmits, outputs %d",
		c.sent, w.LogBytes, ps.InputBytes, float64(w.LogBytes)/float64(ps.InputBytes), bs.DigestsCompared, ps.Retransmits, ps.OutputsReleased)
}

func TestSimNetsvcPrimaryCrash(t *testing.T) {
	var worstDetect, worstLive time.Duration
	var maxDup uint64
	for _, seed := range seeds() {
		c := newIncr(300)
		w := world(t, seed, c, sim.Faults{Loss: 0.05, Dup: 0.02, Reorder: 0.05})
		crashAt := 30*time.Millisecond + time.Duration(seed*7919%100)*time.Millisecond
		w.Run(crashAt)
		w.Crash(0)
		if !w.RunUntil(crashAt+time.Second, func() bool { return w.B.Role() == ftcore.RoleUnprotected }) {
			t.Fatalf("seed %d: backup did not go live (%v)", seed, w.B.Role())
		}
		w.Run(w.Now + 400*time.Millisecond)
		dup, err := w.Check()
		if err != nil {
			t.Fatalf("seed %d: %v (reproduce: go test ./ftcore/sim -run NetsvcPrimaryCrash -seed %d)", seed, err, seed)
		}
		if n := c.check(t, seed); n != 300 {
			t.Fatalf("seed %d: %d of 300 acknowledged after failover (pending %v)", seed, n, c.pending)
		}
		bs := w.B.Status()
		worstDetect = max(worstDetect, bs.FailureDetected-crashAt)
		worstLive = max(worstLive, bs.WentLive-crashAt)
		maxDup = max(maxDup, dup)
	}
	t.Logf("netsvc primary crash: worst detection %v, worst go-live %v after the crash, largest duplicate window %d frames",
		worstDetect, worstLive, maxDup)
}

// TestSimNetsvcFaults runs a random fault schedule per seed: a crash or a
// pause of either box, or a partition of the logging link, at a random time,
// over a lossy, duplicating, reordering, corrupting link with forged frames.
func TestSimNetsvcFaults(t *testing.T) {
	counts := map[string]int{}
	for _, seed := range seeds() {
		r := uint64(seed)*0x9e3779b97f4a7c15 + 1
		rnd := func(n uint64) uint64 { r ^= r << 13; r ^= r >> 7; r ^= r << 17; return r % n }
		c := newIncr(300)
		f := sim.Faults{Loss: float64(rnd(11)) / 100, Dup: 0.02, Reorder: 0.05, Corrupt: 0.01}
		w, err := sim.New(sim.Options{
			Seed: uint64(seed), NewMachine: newNetsvc, Client: c,
			Config: ftcore.Config{DigestInterval: 20 * time.Millisecond},
			LogPB:  f, LogBP: f, Forge: 0.01,
		})
		if err != nil {
			t.Fatal(err)
		}
		at := time.Duration(20+rnd(120)) * time.Millisecond
		w.Run(at)
		kinds := []string{"crash-primary", "crash-backup", "pause-primary", "pause-backup", "partition", "none"}
		kind := kinds[rnd(uint64(len(kinds)))]
		counts[kind]++
		switch kind {
		case "crash-primary":
			w.Crash(0)
		case "crash-backup":
			w.Crash(1)
		case "pause-primary":
			w.Pause(0, 150*time.Millisecond)
		case "pause-backup":
			w.Pause(1, 150*time.Millisecond)
		case "partition":
			pb, bp := w.Links()
			pb.Down, bp.Down = true, true
		}
		w.Run(at + 700*time.Millisecond)
		repro := fmt.Sprintf("(%s at %v; reproduce: go test ./ftcore/sim -run NetsvcFaults -seed %d)", kind, at, seed)
		if _, err := w.Check(); err != nil {
			t.Fatalf("seed %d: %v %s", seed, err, repro)
		}
		if n := c.check(t, seed); n != 300 {
			t.Fatalf("seed %d: %d of 300 acknowledged; roles %v %v %s", seed, n, w.P.Role(), w.B.Role(), repro)
		}
		live := 0
		for i, r := range []ftcore.Role{w.P.Role(), w.B.Role()} {
			if !w.Boxes[i].Dead && (r == ftcore.RoleUnprotected || r == ftcore.RolePrimary) {
				live++
			}
		}
		if live != 1 {
			t.Fatalf("seed %d: %d boxes serve (%v, %v) %s", seed, live, w.P.Role(), w.B.Role(), repro)
		}
	}
	t.Logf("fault kinds run: %v", counts)
}

// TestSimNetsvcFigures reports the figures of the note on a quiet
// link with the default settings.
func TestSimNetsvcFigures(t *testing.T) {
	c := newIncr(300)
	w := world(t, 7, c, sim.Faults{})
	w.Run(200 * time.Millisecond)
	ps := w.P.Status()
	var sum, worst time.Duration
	for _, l := range c.latency {
		sum += l
		worst = max(worst, l)
	}
	t.Logf("quiet link: %d requests, %d input bytes, %d log-link bytes (%.2f per input byte; %d entry bytes = %.2f), frames sent %d, retransmits %d",
		c.sent, ps.InputBytes, w.LogBytes, float64(w.LogBytes)/float64(ps.InputBytes), ps.LogEntryBytes,
		float64(ps.LogEntryBytes)/float64(ps.InputBytes), ps.FramesSent, ps.Retransmits)
	t.Logf("request→reply latency (output held until acked): mean %v, worst %v over %d replies; outputs produced %d released %d held now %d",
		sum/time.Duration(max(1, len(c.latency))), worst, len(c.latency), ps.OutputsProduced, ps.OutputsReleased, ps.OutputsHeld)
	crashAt := w.Now
	w.Crash(0)
	w.RunUntil(crashAt+time.Second, func() bool { return w.B.Role() == ftcore.RoleUnprotected })
	w.Run(w.Now + 300*time.Millisecond)
	dup, err := w.Check()
	if err != nil {
		t.Fatal(err)
	}
	bs := w.B.Status()
	t.Logf("failover: detected %v after the crash, live %v after the crash, %d duplicate frames, backup released %d at go-live",
		bs.FailureDetected-crashAt, bs.WentLive-crashAt, dup, bs.OutputsReleased)
	if n := c.check(t, 7); n != 300 {
		t.Fatalf("%d of 300 acknowledged", n)
	}
}
