package client

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// fakeCounter answers like netsvc's counter on a loopback socket; after
// regressAt increments it forgets `forget` of them (a failover that lost
// acknowledged increments), and it drops every request in drop.
func fakeCounter(t *testing.T, regressAt, forget int, drop map[int]bool) string {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		var v uint64
		n := 0
		for {
			k, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			f := strings.Fields(string(buf[:k]))
			if len(f) != 3 {
				continue
			}
			if f[0] == "INCR" {
				n++
				if drop[n] {
					continue
				}
				v++
				if n == regressAt {
					v -= uint64(forget)
				}
			}
			fmt.Fprintf(pcWriter{pc, from}, "%s %d", f[2], v)
		}
	}()
	return pc.LocalAddr().String()
}

type pcWriter struct {
	pc net.PacketConn
	to net.Addr
}

func (w pcWriter) Write(b []byte) (int, error) { return w.pc.WriteTo(b, w.to) }

func run(t *testing.T, addr string) *Result {
	t.Helper()
	conn, err := Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	r, err := (&Counter{Conn: conn, Interval: 2 * time.Millisecond, Timeout: 10 * time.Millisecond}).Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCounterClean(t *testing.T) {
	r := run(t, fakeCounter(t, 0, 0, map[int]bool{5: true, 6: true}))
	if r.Acked == 0 || r.LostAcked() != 0 || !r.FinalOK || r.Final != r.LastValue() {
		t.Fatalf("clean run: %s", r.Summary())
	}
	if r.Sent-r.Acked != 2 {
		t.Fatalf("unanswered %d, want the 2 dropped", r.Sent-r.Acked)
	}
	if r.Gap < 10*time.Millisecond {
		t.Fatalf("gap %v: the two dropped requests should show", r.Gap)
	}
}

func TestCounterDetectsLostIncrements(t *testing.T) {
	r := run(t, fakeCounter(t, 10, 3, nil))
	if r.LostAcked() == 0 {
		t.Fatalf("a counter that went back by 3 passed: %s", r.Summary())
	}
}
