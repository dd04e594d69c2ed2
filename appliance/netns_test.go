package appliance

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"ftbox/ftcore"
	"ftbox/tools/guests"
	"ftbox/tools/testenv"
)

// lab is the end-to-end topology, built with ip(8) in network namespaces:
//
//	            ns L: bridge "lan"
//	   ┌───────────┼────────────┐
//	  vA          vB           vC
//	   │           │            │
//	ns A: eth0    ns B: eth0   ns C: eth0 10.77.0.100/24 (the client)
//	   br0 ─ tap0  br0 ─ tap0
//	   log0 ═══════ log0        (veth: the logging link)
type lab struct {
	l, a, b, c string
	key        string
}

func newLab(t *testing.T) *lab {
	t.Helper()
	testenv.Root(t)
	lb := &lab{l: testenv.NetNS(t, "ftel"), a: testenv.NetNS(t, "ftea"), b: testenv.NetNS(t, "fteb"), c: testenv.NetNS(t, "ftec")}
	ip := func(args ...string) { testenv.Run(t, "ip", args...) }
	for _, ns := range []string{lb.l, lb.a, lb.b, lb.c} {
		testenv.Run(t, "ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	}
	ip("-n", lb.l, "link", "add", "lan", "type", "bridge")
	ip("-n", lb.l, "link", "set", "lan", "up")
	for v, ns := range map[string]string{"vA": lb.a, "vB": lb.b, "vC": lb.c} {
		ip("-n", lb.l, "link", "add", v, "type", "veth", "peer", "name", "eth0", "netns", ns)
		ip("-n", lb.l, "link", "set", v, "master", "lan", "up")
		ip("-n", ns, "link", "set", "eth0", "up")
	}
	for _, ns := range []string{lb.a, lb.b} {
		ip("-n", ns, "link", "add", "br0", "type", "bridge")
		ip("-n", ns, "link", "set", "eth0", "master", "br0")
		ip("-n", ns, "link", "set", "br0", "up")
	}
	ip("-n", lb.a, "link", "add", "log0", "address", "02:00:00:00:00:0a", "type", "veth", "peer", "name", "log0", "address", "02:00:00:00:00:0b", "netns", lb.b)
	ip("-n", lb.a, "link", "set", "log0", "up")
	ip("-n", lb.b, "link", "set", "log0", "up")
	ip("-n", lb.c, "addr", "add", "10.77.0.100/24", "dev", "eth0")
	lb.key = filepath.Join(t.TempDir(), "pair.key")
	if err := GenerateKey(lb.key); err != nil {
		t.Fatal(err)
	}
	return lb
}

func labConfig(t *testing.T, name, role, peer, key string) *Config {
	t.Helper()
	c, err := ParseConfig(fmt.Appendf(nil, `
[box]
name = %q
preferred_role = %q
control_socket = %q
[lan]
bridge = "br0"
tap = "tap0"
[log_link]
interface = "log0"
peer_mac = %q
key_file = %q
[guest]
image = "netsvc"
mac = "52:54:00:12:34:56"
memory = "%s"
[arbiter]
address = "127.0.0.1:1"
[heartbeat]
interval = "10ms"
timeout = %q
`, name, role, filepath.Join(t.TempDir(), "ftbox.sock"), peer, key, e2eMemory(), e2eTimeout()))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startBox opens a box's devices in its namespace and runs it.
func startBox(t *testing.T, ns string, cfg *Config, arb Arbiter, connect time.Duration) *Box {
	t.Helper()
	img, err := guests.Image("netsvc")
	if err != nil {
		t.Fatal(err)
	}
	var b *Box
	if err := testenv.InNetNS(ns, func() error {
		var err error
		b, err = NewBox(cfg, BoxOptions{Image: img, Arbiter: arb, Log: testLog(t),
			Notify: func(string) error { return nil }, ConnectTimeout: connect})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := b.Run(context.Background()); err != nil {
			t.Errorf("%s: %v", cfg.Box.Name, err)
		}
	}()
	t.Cleanup(func() { b.Close(); <-done })
	return b
}

// incrClient is the UDP counter's client in the client namespace: requests
// with unique ids, one at a time, resent every retry until answered.
type incrClient struct {
	conn   *net.UDPConn
	mu     sync.Mutex
	values map[string][]uint64 // reqid → values replied
	acks   []time.Time         // when each reply arrived
}

func newIncrClient(t *testing.T, ns string) *incrClient {
	t.Helper()
	var conn *net.UDPConn
	if err := testenv.InNetNS(ns, func() error {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 77, 0, 100)})
		conn = c
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &incrClient{conn: conn, values: map[string][]uint64{}}
}

// incr sends INCR for id until a reply comes (or give up) and returns it.
func (c *incrClient) incr(id string, retry, giveUp time.Duration) (uint64, error) {
	dst := &net.UDPAddr{IP: net.IPv4(10, 77, 0, 10), Port: 7000}
	end := time.Now().Add(giveUp)
	buf := make([]byte, 1500)
	for time.Now().Before(end) {
		if _, err := c.conn.WriteToUDP([]byte("INCR c "+id), dst); err != nil {
			return 0, err
		}
		_ = c.conn.SetReadDeadline(time.Now().Add(retry))
		for {
			n, _, err := c.conn.ReadFromUDP(buf)
			if err != nil {
				break // timeout: resend
			}
			fs := strings.Fields(string(buf[:n]))
			if len(fs) != 2 {
				continue
			}
			v, err := strconv.ParseUint(fs[1], 10, 64)
			if err != nil {
				continue
			}
			c.mu.Lock()
			c.values[fs[0]] = append(c.values[fs[0]], v)
			if fs[0] == id {
				c.acks = append(c.acks, time.Now())
			}
			c.mu.Unlock()
			if fs[0] == id {
				return v, nil
			}
		}
	}
	return 0, fmt.Errorf("no reply to %s within %v", id, giveUp)
}

// check: no value returned for two different requests (that would be an
// acknowledged increment lost and its value handed out again).
func (c *incrClient) check(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	owner := map[uint64]string{}
	for id, vs := range c.values {
		for _, v := range vs {
			if o, ok := owner[v]; ok && o != id {
				t.Fatalf("value %d returned for %s and %s: an acknowledged increment was lost", v, o, id)
			}
			owner[v] = id
		}
	}
}

func statusText(s *Status) string {
	var sb strings.Builder
	_ = s.WriteText(&sb)
	return sb.String()
}

// TestEndToEndFailover runs a primary and a backup on real TAPs with the
// eBPF gate and a veth logging link, serves a client through the primary,
// kills the primary and checks that the backup takes over with no
// acknowledged increment lost.
func TestEndToEndFailover(t *testing.T) {
	lb := newLab(t)
	arb := &ftcore.MemArbiter{}
	a := startBox(t, lb.a, labConfig(t, "A", "primary", "02:00:00:00:00:0b", lb.key), CoreArbiter{arb}, 0)
	b := startBox(t, lb.b, labConfig(t, "B", "backup", "02:00:00:00:00:0a", lb.key), CoreArbiter{arb}, 0)
	waitStatus(t, a, "PROTECTED", func(s *Status) bool { return s.Protection == Protected })
	waitStatus(t, b, "PROTECTED", func(s *Status) bool { return s.Protection == Protected })

	out := testenv.Run(t, "ip", "netns", "exec", lb.c, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.77.0.10")
	if !strings.Contains(out, " 0% packet loss") && !strings.Contains(out, "3 received") {
		t.Fatalf("ping through the primary:\n%s", out)
	}
	cl := newIncrClient(t, lb.c)
	for i := 1; i <= 20; i++ {
		if _, err := cl.incr(fmt.Sprintf("a%d", i), 50*time.Millisecond, 3*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	sb := waitStatus(t, b, "dropping replica replies", func(s *Status) bool { return s.Gate.DroppedFrames >= 20 })
	if sb.Gate.Pass || sb.Gate.Hook == "" {
		t.Fatalf("backup gate: %+v", sb.Gate)
	}
	sa, _ := a.Status(context.Background())
	t.Logf("before the failure:\n%s%s", statusText(sa), statusText(sb))

	// A client that keeps counting while the primary dies.
	var (
		stopClient = make(chan struct{})
		clientErr  = make(chan error, 1)
		lastID     int
	)
	go func() {
		defer close(clientErr)
		for i := 1; ; i++ {
			select {
			case <-stopClient:
				return
			default:
			}
			if _, err := cl.incr(fmt.Sprintf("b%d", i), 20*time.Millisecond, 10*time.Second); err != nil {
				clientErr <- err
				return
			}
			lastID = i
			time.Sleep(2 * time.Millisecond)
		}
	}()
	time.Sleep(300 * time.Millisecond)
	kill := time.Now()
	a.Close() // no goodbye: to the backup this is a crash
	waitStatus(t, b, "live", func(s *Status) bool {
		return s.Role == "UNPROTECTED" && s.Gate.Pass && s.Counters.Announcements >= 5
	})
	time.Sleep(300 * time.Millisecond)
	close(stopClient)
	if err := <-clientErr; err != nil {
		t.Fatal(err)
	}
	cl.check(t)
	v, err := cl.incr("final", 50*time.Millisecond, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cl.mu.Lock()
	acked := len(cl.values)
	var gap time.Duration
	for i := 1; i < len(cl.acks); i++ {
		if cl.acks[i].After(kill) && cl.acks[i-1].Before(kill.Add(2*time.Second)) {
			gap = max(gap, cl.acks[i].Sub(cl.acks[i-1]))
		}
	}
	cl.mu.Unlock()
	if v < uint64(acked) {
		t.Fatalf("final value %d below the %d acknowledged increments", v, acked)
	}
	s, _ := b.Status(context.Background())
	t.Logf("after the failover:\n%s", statusText(s))
	f := s.LastFailover
	if f == nil || f.Result != "went live" || s.Epoch != 2 {
		t.Fatalf("failover record: %+v", f)
	}
	fmt.Fprintf(os.Stderr, "e2e failover: client-visible gap %.1f ms (detection %.1f ms, go-live %.1f ms after detection); %d requests acknowledged (%d during the failover run), final value %d\n",
		ms(gap), f.DetectionMS, f.GoLiveMS, acked, lastID, v)

	// The old primary restarts (preferring primary): it must not preempt
	// the live box. The arbiter says the peer holds epoch 2, so it starts
	// as a joining backup, takes B's snapshot while B keeps serving
	// (SYNCING), and the pair is PROTECTED again; then B is killed and the
	// rejoined box takes over without losing an acknowledged increment.
	restart := time.Now()
	a2 := startBox(t, lb.a, labConfig(t, "A", "primary", "02:00:00:00:00:0b", lb.key), CoreArbiter{arb}, 3*hbTimeout(t))
	stopClient, clientErr = make(chan struct{}), make(chan error, 1)
	go func() {
		defer close(clientErr)
		for i := 1; ; i++ {
			select {
			case <-stopClient:
				return
			default:
			}
			if _, err := cl.incr(fmt.Sprintf("r%d", i), 20*time.Millisecond, 10*time.Second); err != nil {
				clientErr <- err
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	h := waitStatus(t, a2, "BACKUP and PROTECTED", func(s *Status) bool { return s.Role == "BACKUP" && s.Protection == Protected })
	synced := time.Since(restart)
	t.Logf("rejoined old primary:\n%s", statusText(h))
	pb := waitStatus(t, b, "PRIMARY and PROTECTED", func(s *Status) bool { return s.Role == "PRIMARY" && s.Protection == Protected })
	if h.Gate.Pass || h.Epoch != 2 || pb.Epoch != 2 || !pb.Gate.Pass {
		t.Fatalf("after the rejoin: A %s epoch %d gate pass %v, B %s epoch %d gate pass %v", h.Role, h.Epoch, h.Gate.Pass, pb.Role, pb.Epoch, pb.Gate.Pass)
	}
	if r := pb.Replication; r.SnapshotBytes == 0 {
		t.Fatalf("no snapshot recorded: %+v", r)
	}
	fmt.Fprintf(os.Stderr, "e2e rejoin: guest memory %s, snapshot %d bytes, transfer %.1f ms, restarted box start → PROTECTED %.1f ms\n",
		e2eMemory(), pb.Replication.SnapshotBytes, pb.Replication.SyncTransferMS, ms(synced))
	time.Sleep(200 * time.Millisecond)
	close(stopClient)
	if err := <-clientErr; err != nil {
		t.Fatal(err)
	}
	cl.check(t)

	// Now the new primary dies: the rejoined box takes over.
	b.Close()
	s = waitStatus(t, a2, "live again", func(s *Status) bool {
		return s.Role == "UNPROTECTED" && s.Gate.Pass && s.Epoch == 3
	})
	cl.mu.Lock()
	acked = len(cl.values)
	cl.mu.Unlock()
	v, err = cl.incr("after-second-failover", 50*time.Millisecond, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if v < uint64(acked) {
		t.Fatalf("after the second failover: value %d below the %d acknowledged increments", v, acked)
	}
	cl.check(t)
	t.Logf("rejoined box after the second failover:\n%s", statusText(s))
}

// e2eMemory is the guest's RAM in the end-to-end test: 4M, or
// FTBOX_E2E_MEMORY (e.g. 128M to measure the state transfer of a
// production-sized guest).
func e2eMemory() string {
	if m := os.Getenv("FTBOX_E2E_MEMORY"); m != "" {
		return m
	}
	return "4M"
}

// e2eTimeout is the heartbeat timeout of the end-to-end test: the
// production default, except under the race detector.
func e2eTimeout() string {
	if testHeartbeatTimeout == "3s" {
		return "3s"
	}
	return "100ms"
}

func hbTimeout(t *testing.T) time.Duration {
	d, err := time.ParseDuration(e2eTimeout())
	if err != nil {
		t.Fatal(err)
	}
	return d
}
