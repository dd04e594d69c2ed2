package sim_test

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"ftbox/guestvm"
	"ftbox/tools/pkt"
)

var (
	clientHost = pkt.Host{MAC: net.HardwareAddr{0x02, 0, 0, 0, 0, 0x64}, IP: net.IPv4(10, 77, 0, 100)}
	guestHost  = pkt.Host{MAC: net.HardwareAddr(guestvm.DefaultMAC[:]), IP: net.IPv4(10, 77, 0, 10)}
)

// incrClient is a Jepsen-style workload against the guest's counter service
// (UDP 7000): INCR requests with unique ids spread over a few counters, each
// retried until answered; once every INCR is answered and the network had
// time to go quiet, a GET of every counter (retried too). It records every
// send and every reply with its time, and Check judges the history.
type incrClient struct {
	names  []string
	n      int // INCRs to send
	period time.Duration
	retry  time.Duration
	quiet  time.Duration // between the last INCR answer and the GETs

	next    time.Duration
	ops     []*op
	byID    map[string]*op
	pending []*op // unanswered, in id order
	gets    []*op
	getAt   time.Duration // when the GETs go out (0: not yet due)
	frames  int           // frames received
	junk    []string      // replies that make no sense
}

type op struct {
	id, name string
	get      bool
	sends    []time.Duration
	replies  []reply
}

type reply struct {
	at    time.Duration
	value uint64
}

func newIncr(n int) *incrClient {
	return &incrClient{names: []string{"a", "b", "c"}, n: n, period: 500 * time.Microsecond,
		retry: 20 * time.Millisecond, quiet: 10 * time.Millisecond, byID: map[string]*op{}}
}

func (c *incrClient) frame(o *op) []byte {
	verb := "INCR"
	if o.get {
		verb = "GET"
	}
	return pkt.UDP(clientHost, guestHost, 4000, 7000, fmt.Appendf(nil, "%s %s %s", verb, o.name, o.id))
}

// Next implements sim.Waker.
func (c *incrClient) Next() time.Duration {
	t := time.Duration(1<<63 - 1)
	if len(c.ops) < c.n {
		t = c.next
	}
	for _, o := range c.pending {
		t = min(t, o.sends[len(o.sends)-1]+c.retry)
	}
	if c.getAt != 0 && c.gets == nil {
		t = min(t, c.getAt)
	}
	return t
}

func (c *incrClient) Tick(now time.Duration) [][]byte {
	var out [][]byte
	if len(c.ops) < c.n && now >= c.next {
		o := &op{id: fmt.Sprintf("r%d", len(c.ops)+1), name: c.names[len(c.ops)%len(c.names)], sends: []time.Duration{now}}
		c.ops = append(c.ops, o)
		c.byID[o.id] = o
		c.pending = append(c.pending, o)
		c.next = now + c.period
		out = append(out, c.frame(o))
	}
	for _, o := range c.pending {
		if now >= o.sends[len(o.sends)-1]+c.retry {
			o.sends = append(o.sends, now)
			out = append(out, c.frame(o))
		}
	}
	if c.getAt != 0 && c.gets == nil && now >= c.getAt {
		for _, n := range c.names {
			o := &op{id: "get-" + n, name: n, get: true, sends: []time.Duration{now}}
			c.gets = append(c.gets, o)
			c.byID[o.id] = o
			c.pending = append(c.pending, o)
			out = append(out, c.frame(o))
		}
	}
	return out
}

func (c *incrClient) Receive(now time.Duration, f []byte) {
	c.frames++
	d := pkt.Decode(f)
	if d.UDP == nil || d.UDP.SrcPort != 7000 {
		return
	}
	if !d.ChecksumsOK {
		c.junk = append(c.junk, "bad checksum")
		return
	}
	fs := strings.Fields(string(d.Payload))
	o := (*op)(nil)
	if len(fs) == 2 {
		o = c.byID[fs[0]]
	}
	v, err := strconv.ParseUint(fs[len(fs)-1], 10, 64)
	if o == nil || err != nil {
		c.junk = append(c.junk, string(d.Payload))
		return
	}
	o.replies = append(o.replies, reply{now, v})
	if i := slices.Index(c.pending, o); i >= 0 {
		c.pending = slices.Delete(c.pending, i, i+1)
	}
	if len(c.ops) == c.n && len(c.pending) == 0 && c.getAt == 0 {
		c.getAt = now + c.quiet
	}
}

// Done reports whether every INCR and every GET was answered.
func (c *incrClient) Done() bool {
	return c.gets != nil && len(c.pending) == 0
}

// Check judges the history like Jepsen's set checker, for counters:
//   - every INCR was acknowledged and every GET answered (after the faults
//     healed), and no reply was malformed or for a request never made;
//   - per counter, no value was returned for two different requests (an
//     applied increment lost, e.g. by a new primary that did not have it);
//   - the final GET G is at least every value returned and at least the
//     number of distinct acknowledged requests (no acknowledged increment
//     lost), and at most the number of INCR datagrams sent, each possibly
//     duplicated once by the network (no increment from nowhere);
//   - real-time order: a request sent after a reply with value v was
//     received returns values above v (the counter never goes back).
func (c *incrClient) Check() error { return c.check(true) }

// CheckSafe checks what Check does except completeness: for a run in
// which the service died for good, some requests stay unanswered and there
// is no final GET, but no two requests got the same value and no counter
// went back.
func (c *incrClient) CheckSafe() error { return c.check(false) }

func (c *incrClient) check(complete bool) error {
	if len(c.junk) > 0 {
		return fmt.Errorf("client: %d replies make no sense, first %q", len(c.junk), c.junk[0])
	}
	if complete && !c.Done() {
		var ids []string
		for _, o := range c.pending[:min(len(c.pending), 5)] {
			ids = append(ids, o.id)
		}
		return fmt.Errorf("client: %d of %d requests unanswered (%v…), GETs sent %v", len(c.pending), len(c.ops)+len(c.gets), ids, c.gets != nil)
	}
	for i, name := range c.names {
		final := uint64(1<<64 - 1)
		if complete {
			final = c.gets[i].replies[0].value
		}
		owner := map[uint64]string{}
		sends := 0
		acked := 0
		type ev struct {
			at    time.Duration
			send  bool
			o     *op
			value uint64
		}
		var evs []ev
		for _, o := range c.ops {
			if o.name != name {
				continue
			}
			sends += len(o.sends)
			acked++
			evs = append(evs, ev{at: o.sends[0], send: true, o: o})
			for _, r := range o.replies {
				if w, ok := owner[r.value]; ok && w != o.id {
					return fmt.Errorf("client: counter %s value %d returned for %s and %s: an acknowledged increment was lost", name, r.value, w, o.id)
				}
				owner[r.value] = o.id
				if r.value > final {
					return fmt.Errorf("client: counter %s: %s got %d but the final GET says %d", name, o.id, r.value, final)
				}
				evs = append(evs, ev{at: r.at, o: o, value: r.value})
			}
		}
		if complete && uint64(acked) > final {
			return fmt.Errorf("client: counter %s: %d increments acknowledged, final GET %d", name, acked, final)
		}
		if complete && final > uint64(2*sends) {
			return fmt.Errorf("client: counter %s: final GET %d from only %d INCR datagrams", name, final, sends)
		}
		slices.SortStableFunc(evs, func(a, b ev) int {
			if a.at != b.at {
				return int(a.at - b.at)
			}
			if a.send != b.send { // a reply received at the same instant as a send may not have preceded it
				if a.send {
					return -1
				}
				return 1
			}
			return 0
		})
		var seen uint64
		floor := map[*op]uint64{}
		for _, e := range evs {
			if e.send {
				floor[e.o] = seen
				continue
			}
			if e.value <= floor[e.o] {
				return fmt.Errorf("client: counter %s went back: %s returned %d after %d had been returned before it was sent", name, e.o.id, e.value, floor[e.o])
			}
			seen = max(seen, e.value)
		}
		if final < seen {
			return fmt.Errorf("client: counter %s: final GET %d below a value returned earlier, %d", name, final, seen)
		}
	}
	return nil
}
