// Package client is the lab's load: a UDP client of the netsvc guest's
// counter (port 7000: "INCR <name> <reqid>" → "<reqid> <value>") that keeps
// incrementing across a failover and measures what a client sees — the
// longest time without an acknowledgment (the client-visible gap) — and
// checks that no acknowledged increment was lost: the values it was told
// only ever grow, and the final value is at least the last one acknowledged.
//
// The counter service does not deduplicate, so a request that times out is
// never retried under the same reqid; a fresh request is sent instead. An
// increment the client never heard about may or may not have happened; one
// it heard about must survive.
package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Counter drives the UDP counter service.
type Counter struct {
	Conn     net.Conn      // a connected UDP socket to the guest's port 7000
	Name     string        // the counter's name (default "ftbox")
	Interval time.Duration // between requests (default 10ms)
	Timeout  time.Duration // how long to wait for a reply before the next request (default 25ms; later replies still count)
	// Progress, if set, is called about once a second while Run runs.
	Progress func(Result)
}

// Ack is one acknowledged increment.
type Ack struct {
	ReqID uint64
	Sent  time.Time
	At    time.Time // reply received
	Value uint64
}

// Result is what a run saw.
type Result struct {
	Start, End time.Time
	Sent       int    // INCR requests sent
	Acked      int    // of which answered
	Acks       []Ack  // in the order received
	Regressed  []Ack  // acknowledgments whose value did not exceed an earlier one: lost increments
	Final      uint64 // the counter after the run (GET), valid if FinalOK
	FinalOK    bool
	Errors     int // malformed or unexpected replies, socket errors

	// The longest span without an acknowledgment, from the last reply
	// before it to the first reply after it (or to End if none came).
	Gap            time.Duration
	GapFrom, GapTo time.Time
}

// LastValue is the largest acknowledged value, 0 if none.
func (r *Result) LastValue() uint64 {
	var v uint64
	for _, a := range r.Acks {
		v = max(v, a.Value)
	}
	return v
}

// LostAcked is the number of acknowledged increments that were lost: the
// acknowledgments that did not grow the counter, plus, if the final GET is
// below the last acknowledged value, the shortfall.
func (r *Result) LostAcked() int {
	n := len(r.Regressed)
	if r.FinalOK && r.Final < r.LastValue() {
		n += int(r.LastValue() - r.Final)
	}
	return n
}

// Summary is a one-paragraph report in `name: value unit` lines.
func (r *Result) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "requests: %d\n", r.Sent)
	fmt.Fprintf(&b, "acknowledged: %d\n", r.Acked)
	fmt.Fprintf(&b, "unanswered: %d\n", r.Sent-r.Acked)
	fmt.Fprintf(&b, "last_acked_value: %d\n", r.LastValue())
	if r.FinalOK {
		fmt.Fprintf(&b, "final_value: %d\n", r.Final)
	} else {
		fmt.Fprintf(&b, "final_value: unknown (GET unanswered)\n")
	}
	fmt.Fprintf(&b, "lost_acked_increments: %d\n", r.LostAcked())
	fmt.Fprintf(&b, "client_gap: %.1f ms\n", float64(r.Gap.Microseconds())/1000)
	if !r.GapFrom.IsZero() {
		fmt.Fprintf(&b, "client_gap_window: %s .. %s\n", r.GapFrom.Format("15:04:05.000000"), r.GapTo.Format("15:04:05.000000"))
	}
	return b.String()
}

func (c *Counter) defaults() {
	if c.Name == "" {
		c.Name = "ftbox"
	}
	if c.Interval == 0 {
		c.Interval = 10 * time.Millisecond
	}
	if c.Timeout == 0 {
		c.Timeout = 25 * time.Millisecond
	}
}

// parseReply reads "<reqid> <value>".
// ParseReply reads a counter reply, "REQID VALUE".
func ParseReply(b []byte) (reqid string, value uint64, err error) {
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return "", 0, fmt.Errorf("reply %q", b)
	}
	v, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("reply %q", b)
	}
	return f[0], v, nil
}

// FinalValue reads name's value with GET, a few tries of timeout×3 each
// (after a failover the first may go unanswered); ok false if none came.
func FinalValue(conn net.Conn, name string, timeout time.Duration) (value uint64, ok bool) {
	buf := make([]byte, 512)
	for try := 0; try < 20; try++ {
		reqid := fmt.Sprintf("g%d", try)
		if _, err := fmt.Fprintf(conn, "GET %s %s", name, reqid); err != nil {
			time.Sleep(timeout)
			continue
		}
		_ = conn.SetReadDeadline(time.Now().Add(timeout * 3))
		for {
			n, err := conn.Read(buf)
			if err != nil {
				break
			}
			if rid, v, perr := ParseReply(buf[:n]); perr == nil && rid == reqid {
				return v, true
			}
		}
	}
	return 0, false
}

// Run increments until ctx is done, then reads the final value (GET, a few
// tries) and returns what it saw. Only socket setup failures are errors;
// timeouts are what is being measured.
func (c *Counter) Run(ctx context.Context) (*Result, error) {
	c.defaults()
	r := &Result{Start: time.Now()}
	buf := make([]byte, 2048)
	sent := map[string]time.Time{} // reqid → send time, for requests not yet answered
	var id uint64
	var lastAck time.Time // zero until the first reply: the gap is measured between replies
	lastProgress := r.Start
	record := func(reqid string, v uint64, at time.Time) {
		st, ok := sent[reqid]
		if !ok {
			r.Errors++ // a duplicate reply, or one to a request we did not send
			return
		}
		delete(sent, reqid)
		n, _ := strconv.ParseUint(strings.TrimPrefix(reqid, "q"), 10, 64)
		a := Ack{ReqID: n, Sent: st, At: at, Value: v}
		if len(r.Acks) > 0 && v <= r.LastValue() {
			r.Regressed = append(r.Regressed, a)
		}
		r.Acks = append(r.Acks, a)
		r.Acked++
		if gap := at.Sub(lastAck); !lastAck.IsZero() && gap > r.Gap {
			r.Gap, r.GapFrom, r.GapTo = gap, lastAck, at
		}
		lastAck = at
	}
	for ctx.Err() == nil {
		id++
		reqid := "q" + strconv.FormatUint(id, 10)
		now := time.Now()
		if _, err := fmt.Fprintf(c.Conn, "INCR %s %s", c.Name, reqid); err != nil {
			r.Errors++ // e.g. ECONNREFUSED from an ICMP error while nobody owns the address
		} else {
			sent[reqid] = now
			r.Sent++
		}
		// Wait for this reply (taking any late ones on the way) until the
		// timeout, then pace to the interval.
		deadline := now.Add(c.Timeout)
		for {
			_ = c.Conn.SetReadDeadline(deadline)
			n, err := c.Conn.Read(buf)
			if err != nil {
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					r.Errors++
					time.Sleep(time.Millisecond) // a refused send's error: don't spin
					if time.Now().Before(deadline) {
						continue
					}
				}
				break
			}
			rid, v, perr := ParseReply(buf[:n])
			if perr != nil {
				r.Errors++
				continue
			}
			record(rid, v, time.Now())
			if rid == reqid {
				break
			}
		}
		if wait := time.Until(now.Add(c.Interval)); wait > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
		if c.Progress != nil && time.Since(lastProgress) >= time.Second {
			lastProgress = time.Now()
			c.Progress(*r)
		}
	}
	r.End = time.Now()
	// Replies still in flight.
	_ = c.Conn.SetReadDeadline(time.Now().Add(c.Timeout))
	for {
		n, err := c.Conn.Read(buf)
		if err != nil {
			break
		}
		if rid, v, perr := ParseReply(buf[:n]); perr == nil {
			record(rid, v, time.Now())
		}
	}
	if lastAck.IsZero() {
		lastAck = r.Start
	}
	if gap := r.End.Sub(lastAck); gap > r.Gap {
		r.Gap, r.GapFrom, r.GapTo = gap, lastAck, r.End
	}
	r.Final, r.FinalOK = FinalValue(c.Conn, c.Name, c.Timeout)
	return r, nil
}

// Dial opens a connected UDP socket to addr (host:port).
func Dial(addr string) (net.Conn, error) {
	conn, err := net.Dial("udp4", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return conn, nil
}

// PrintProgress is a Progress function for command-line use: one line on stderr.
func PrintProgress(r Result) {
	fmt.Fprintf(os.Stderr, "counter: %5.1fs  sent %d  acked %d  value %d  longest gap %.1f ms\n",
		time.Since(r.Start).Seconds(), r.Sent, r.Acked, r.LastValue(), float64(r.Gap.Microseconds())/1000)
}
