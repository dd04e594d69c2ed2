package client

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// slowCounter is a counter on 127.0.0.1 that answers each INCR after delay
// (concurrently, so that N outstanding requests overlap) and drops every
// dropEvery-th one (0: none). It returns the address and the number of
// INCRs it has seen.
func slowCounter(t *testing.T, delay time.Duration, dropEvery int64) (string, *atomic.Int64) {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	var n, v atomic.Int64
	go func() {
		buf := make([]byte, 512)
		for {
			k, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			f := strings.Fields(string(buf[:k]))
			if len(f) != 3 || f[0] != "INCR" {
				continue
			}
			if i := n.Add(1); dropEvery > 0 && i%dropEvery == 0 {
				continue
			}
			reqid := f[2]
			time.AfterFunc(delay, func() {
				fmt.Fprintf(pcWriter{pc, from}, "%s %d", reqid, v.Add(1))
			})
		}
	}()
	return pc.LocalAddr().String(), &n
}

func closedLoop(t *testing.T, addr string, conc int, d time.Duration) *LoadResult {
	t.Helper()
	c := &ClosedLoop{
		Dial:        func() (net.Conn, error) { return Dial(addr) },
		Concurrency: conc,
		Duration:    d,
		Warmup:      50 * time.Millisecond,
		Timeout:     50 * time.Millisecond,
	}
	r, err := c.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("concurrency %d:\n%s", conc, r.Lines(""))
	return r
}

func TestClosedLoopLatencyAndThroughput(t *testing.T) {
	const delay = 2 * time.Millisecond
	addr, _ := slowCounter(t, delay, 0)
	one := closedLoop(t, addr, 1, 400*time.Millisecond)
	if one.Replies == 0 || one.Timeouts != 0 || one.Regressed != 0 || one.Errors != 0 {
		t.Fatalf("clean run at concurrency 1: %+v", one)
	}
	if one.P50 < delay || one.Max < one.P99 || one.P99 < one.P90 || one.P90 < one.P50 {
		t.Fatalf("percentiles: p50 %v p90 %v p99 %v max %v (server delay %v)", one.P50, one.P90, one.P99, one.Max, delay)
	}
	// One outstanding request at a time: at most one per delay.
	if limit := 1.05 * float64(time.Second/delay); one.RPS > limit {
		t.Fatalf("%.0f req/s with one outstanding request of at least %v", one.RPS, delay)
	}
	if got := float64(one.Replies) / 0.4; got != one.RPS {
		t.Fatalf("rps %.1f, replies/window %.1f", one.RPS, got)
	}
	// Four outstanding overlap in the server: clearly more throughput.
	four := closedLoop(t, addr, 4, 400*time.Millisecond)
	if four.Regressed != 0 || four.RPS < 2*one.RPS {
		t.Fatalf("concurrency 4: %.0f req/s (%d regressed), concurrency 1: %.0f req/s", four.RPS, four.Regressed, one.RPS)
	}
}

func TestClosedLoopTimeouts(t *testing.T) {
	addr, seen := slowCounter(t, 0, 10)
	r := closedLoop(t, addr, 1, 300*time.Millisecond)
	if r.Timeouts == 0 || r.Replies == 0 || r.Sent != r.Replies+r.Timeouts {
		t.Fatalf("every 10th request dropped: sent %d, replies %d, timeouts %d", r.Sent, r.Replies, r.Timeouts)
	}
	if int64(r.Sent) > seen.Load() {
		t.Fatalf("counted %d requests, the server saw %d", r.Sent, seen.Load())
	}
}

func TestClosedLoopNoService(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0") // a silent server
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c := &ClosedLoop{
		Dial:  func() (net.Conn, error) { return Dial(pc.LocalAddr().String()) },
		Ready: 300 * time.Millisecond,
	}
	start := time.Now()
	if _, err := c.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("want a did-not-answer error, got %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("gave up after %v, Ready is 300ms", time.Since(start))
	}
}

func TestPercentile(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i))
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{0.5, 50}, {0.9, 90}, {0.99, 99}, {1, 100}, {0.001, 1}} {
		if got := Percentile(s, c.p); got != c.want {
			t.Errorf("p%v = %d, want %d", c.p, got, c.want)
		}
	}
	if Percentile(nil, 0.5) != 0 {
		t.Error("empty: want 0")
	}
}
