package client

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ClosedLoop measures the counter service's throughput and latency with a
// fixed number of requests outstanding: each of Concurrency workers, on its
// own connected UDP socket, sends an INCR, waits for its reply and sends the
// next one at once. A request unanswered after Timeout is counted as timed
// out and replaced by a fresh one (the service does not deduplicate, so it is
// never resent); a reply that comes after that is discarded as late.
//
// Run first waits until the service answers (Ready), then runs the workers
// for Warmup without recording anything, then for Duration recording every
// request sent in the window and answered before it ends.
type ClosedLoop struct {
	// Dial opens one connected UDP socket to the service; it is called once
	// per worker, before any request is sent, from the goroutine that
	// called Run. Run closes the sockets.
	Dial        func() (net.Conn, error)
	Name        string        // the counter's name (default "bench")
	Concurrency int           // requests outstanding (default 1)
	Duration    time.Duration // the measured window (default 5s)
	Warmup      time.Duration // before it, unrecorded (default 200ms; negative: none)
	Timeout     time.Duration // a request unanswered this long is given up (default 500ms)
	Ready       time.Duration // how long to wait for a first answer (default 10s)
}

// LoadResult is what a closed-loop run measured.
type LoadResult struct {
	Concurrency int
	Window      time.Duration // the measured span
	Sent        int           // requests sent in the window
	Replies     int           // of which answered within the window
	Timeouts    int           // given up after Timeout
	Late        int           // replies that came after their request was given up
	Errors      int           // socket errors, malformed replies
	Regressed   int           // replies whose value did not exceed the worker's previous one (a lost increment)
	RPS         float64       // Replies per second of the window

	// Latency (send → reply) of the answered requests, nearest rank.
	Mean, P50, P90, P99, Max time.Duration
	Latencies                []time.Duration `json:"-"` // sorted
}

// Lines is the result as `name: value unit` lines, each name prefixed.
func (r *LoadResult) Lines(prefix string) string {
	var b strings.Builder
	us := func(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e3, 'f', 1, 64) }
	fmt.Fprintf(&b, "%srps: %.1f req/s\n", prefix, r.RPS)
	fmt.Fprintf(&b, "%sp50_us: %s us\n", prefix, us(r.P50))
	fmt.Fprintf(&b, "%sp90_us: %s us\n", prefix, us(r.P90))
	fmt.Fprintf(&b, "%sp99_us: %s us\n", prefix, us(r.P99))
	fmt.Fprintf(&b, "%smax_us: %s us\n", prefix, us(r.Max))
	fmt.Fprintf(&b, "%smean_us: %s us\n", prefix, us(r.Mean))
	fmt.Fprintf(&b, "%srequests: %d\n", prefix, r.Sent)
	fmt.Fprintf(&b, "%stimeouts: %d\n", prefix, r.Timeouts)
	if r.Late+r.Errors+r.Regressed > 0 {
		fmt.Fprintf(&b, "%slate: %d\n%serrors: %d\n%sregressed: %d\n", prefix, r.Late, prefix, r.Errors, prefix, r.Regressed)
	}
	return b.String()
}

// Percentile is the nearest-rank p-quantile (0 < p ≤ 1) of sorted, 0 if empty.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func (c *ClosedLoop) defaults() {
	if c.Name == "" {
		c.Name = "bench"
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 1
	}
	if c.Duration <= 0 {
		c.Duration = 5 * time.Second
	}
	if c.Warmup == 0 {
		c.Warmup = 200 * time.Millisecond
	}
	c.Warmup = max(c.Warmup, 0)
	if c.Timeout <= 0 {
		c.Timeout = 500 * time.Millisecond
	}
	if c.Ready <= 0 {
		c.Ready = 10 * time.Second
	}
}

// worker is one closed loop's socket and tallies.
type worker struct {
	id    int
	conn  net.Conn
	req   []byte
	buf   []byte
	seq   uint64
	last  uint64 // the last value this worker was told
	lat   []time.Duration
	r     LoadResult // counts only
	first bool       // a value has been seen
}

// outcome of one request.
type outcome int

const (
	replied  outcome = iota
	timedOut         // no reply by the deadline
	sendFailed
)

// roundTrip sends one INCR and waits for its reply until deadline. at is
// when the reply came, or when the wait gave up.
func (w *worker) roundTrip(name string, deadline time.Time) (sent, at time.Time, o outcome) {
	w.seq++
	w.req = append(w.req[:0], "INCR "...)
	w.req = append(w.req, name...)
	w.req = append(w.req, " w"...)
	w.req = strconv.AppendInt(w.req, int64(w.id), 10)
	w.req = append(w.req, '-')
	w.req = strconv.AppendUint(w.req, w.seq, 10)
	reqid := w.req[len("INCR ")+len(name)+1:]
	sent = time.Now()
	if _, err := w.conn.Write(w.req); err != nil {
		w.r.Errors++
		time.Sleep(time.Millisecond) // e.g. ECONNREFUSED from an ICMP error: don't spin
		return sent, time.Now(), sendFailed
	}
	_ = w.conn.SetReadDeadline(deadline)
	for {
		n, err := w.conn.Read(w.buf)
		at = time.Now()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return sent, at, timedOut
			}
			w.r.Errors++
			if at.Before(deadline) {
				time.Sleep(time.Millisecond)
				continue
			}
			return sent, at, timedOut
		}
		rid, v, perr := ParseReply(w.buf[:n])
		if perr != nil {
			w.r.Errors++
			continue
		}
		if rid != string(reqid) {
			w.r.Late++
			continue
		}
		if w.first && v <= w.last {
			w.r.Regressed++
		}
		w.first, w.last = true, v
		return sent, at, replied
	}
}

// Run measures. It fails if a socket cannot be opened or the service does
// not answer within Ready; timeouts during the run are part of the result.
func (c *ClosedLoop) Run(ctx context.Context) (*LoadResult, error) {
	c.defaults()
	ws := make([]*worker, c.Concurrency)
	for i := range ws {
		conn, err := c.Dial()
		if err != nil {
			for _, w := range ws[:i] {
				w.conn.Close()
			}
			return nil, err
		}
		ws[i] = &worker{id: i, conn: conn, buf: make([]byte, 2048)}
	}
	defer func() {
		for _, w := range ws {
			w.conn.Close()
		}
	}()

	// Ready: one worker until the service answers (ARP, a guest still booting).
	readyBy := time.Now().Add(c.Ready)
	for {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if _, _, o := ws[0].roundTrip(c.Name, time.Now().Add(min(c.Timeout, 200*time.Millisecond))); o == replied {
			break
		}
		if time.Now().After(readyBy) {
			return nil, fmt.Errorf("the counter service did not answer within %v", c.Ready)
		}
	}
	ws[0].r = LoadResult{}

	start := time.Now().Add(c.Warmup)
	end := start.Add(c.Duration)
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				now := time.Now()
				if !now.Before(end) {
					return
				}
				sent, at, o := w.roundTrip(c.Name, now.Add(c.Timeout))
				switch {
				case sent.Before(start): // warming up
					w.r = LoadResult{}
				case at.After(end): // cut off by the window's end: not counted
				case o == replied:
					w.r.Sent++
					w.r.Replies++
					w.lat = append(w.lat, at.Sub(sent))
				case o == timedOut:
					w.r.Sent++
					w.r.Timeouts++
				}
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	r := &LoadResult{Concurrency: c.Concurrency, Window: c.Duration}
	var sum time.Duration
	for _, w := range ws {
		r.Sent += w.r.Sent
		r.Replies += w.r.Replies
		r.Timeouts += w.r.Timeouts
		r.Late += w.r.Late
		r.Errors += w.r.Errors
		r.Regressed += w.r.Regressed
		r.Latencies = append(r.Latencies, w.lat...)
	}
	slices.Sort(r.Latencies)
	for _, d := range r.Latencies {
		sum += d
	}
	if n := len(r.Latencies); n > 0 {
		r.Mean = sum / time.Duration(n)
		r.Max = r.Latencies[n-1]
	}
	r.P50 = Percentile(r.Latencies, 0.50)
	r.P90 = Percentile(r.Latencies, 0.90)
	r.P99 = Percentile(r.Latencies, 0.99)
	r.RPS = float64(r.Replies) / c.Duration.Seconds()
	return r, nil
}
