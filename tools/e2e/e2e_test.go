// Package e2e runs the pair end to end on real kernel networking: tools/lab
// builds the boxes as network namespaces, ftbox run serves the netsvc guest
// from both on real TAP devices with the real eBPF gate, and a client in the
// client's namespace pings and counts across failures. Needs root, ip(8),
// tcpdump, jq; with CI=true nothing skips. The lab's namespace names are
// fixed, so the tests run one after another, never alongside a demo.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"ftbox/tools/client"
	"ftbox/tools/lablock"
	"ftbox/tools/testenv"
	"ftbox/tools/verify"
)

const (
	guestIP  = "10.77.0.10"
	guestMAC = "52:54:00:12:34:56"
	logEther = 0x88B5
)

var (
	repo     string
	ftboxBin string
	buildErr error
	buildMu  sync.Once
)

var labRelease func()

func TestMain(m *testing.M) {
	// The lab's namespace names are fixed: hold the lab lock for the whole
	// run, so `ftbox bench ft`'s test in another package (go test ./...
	// runs packages in parallel) waits instead of colliding.
	// The lock is an flock: exiting releases it. Keep the release func (and
	// so the lock file) reachable, or a finalizer could close it mid-run.
	if os.Geteuid() == 0 {
		var err error
		if labRelease, err = lablock.Acquire(context.Background(), func() {
			fmt.Fprintln(os.Stderr, "e2e: waiting for the lab lock", lablock.Path)
		}); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	if ftboxBin != "" && os.Getenv("FTBOX") == "" {
		os.RemoveAll(filepath.Dir(ftboxBin))
	}
	os.Exit(code)
}

// build compiles ftbox once per test binary (or takes $FTBOX).
func build(t testing.TB) string {
	t.Helper()
	buildMu.Do(func() {
		wd, err := os.Getwd()
		if err != nil {
			buildErr = err
			return
		}
		repo = filepath.Clean(filepath.Join(wd, "../.."))
		if b := os.Getenv("FTBOX"); b != "" { // a prebuilt ftbox
			ftboxBin, buildErr = filepath.Abs(b)
			return
		}
		dir, err := os.MkdirTemp("", "ftbox-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		ftboxBin = filepath.Join(dir, "ftbox")
		cmd := exec.Command("go", "build", "-o", ftboxBin, "./cmd/ftbox")
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "PATH=/usr/local/go/bin:"+os.Getenv("PATH"))
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/ftbox: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return ftboxBin
}

// Status is the part of `ftbox status --json` (schema_version 1) the tests read.
type Status struct {
	SchemaVersion int      `json:"schema_version"`
	Box           string   `json:"box"`
	Role          string   `json:"role"`
	Epoch         uint64   `json:"epoch"`
	Protection    string   `json:"protection"`
	ExitCode      int      `json:"exit_code"`
	Problems      []string `json:"problems"`
	Notes         []string `json:"notes"`
	Replication   struct {
		LogApplied      uint64 `json:"log_applied"`
		DigestsCompared uint64 `json:"digests_compared"`
		DigestMismatch  uint64 `json:"digest_mismatches"`
	} `json:"replication"`
	Gate struct {
		Hook          string `json:"hook"`
		Pass          bool   `json:"pass"`
		DroppedFrames uint64 `json:"dropped_frames"`
	} `json:"gate"`
	Counters struct {
		Retransmits       uint64            `json:"retransmits"`
		LogFramesSent     uint64            `json:"log_frames_sent"`
		Yields            uint64            `json:"yields"`
		LogFramesRejected map[string]uint64 `json:"log_frames_rejected"`
	} `json:"counters"`
	LastFailover *struct {
		Reason      string  `json:"reason"`
		Result      string  `json:"result"`
		FromEpoch   uint64  `json:"from_epoch"`
		ToEpoch     uint64  `json:"to_epoch"`
		DetectionMS float64 `json:"detection_ms"`
		GoLiveMS    float64 `json:"go_live_ms"`
		Released    uint64  `json:"released"`
	} `json:"last_failover"`
}

// Live reports whether the box serves the guest to the LAN.
func (s *Status) Live() bool { return s.Role == "PRIMARY" || s.Role == "UNPROTECTED" }

// Lab is a running tools/lab.
type Lab struct {
	t     testing.TB
	state string
	ftbox string
}

func (l *Lab) run(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(repo, "tools/lab"), args...)
	cmd.Env = append(os.Environ(), "FTBOX="+l.ftbox, "FTBOX_LAB_STATE="+l.state, "PATH=/usr/local/go/bin:"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Up brings the lab up (tools/lab up ARGS...) and registers its teardown.
// Tests and benchmarks share it.
func Up(t testing.TB, args ...string) *Lab {
	t.Helper()
	testenv.Root(t)
	for _, tool := range []string{"ip", "tcpdump", "ping", "jq", "ss", "setsid"} {
		testenv.Tool(t, tool)
	}
	bin := build(t)
	// Short enough for a unix socket path.
	state, err := os.MkdirTemp("/run", "ftbox-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	l := &Lab{t: t, state: state, ftbox: bin}
	t.Cleanup(func() {
		if t.Failed() {
			l.dumpLogs()
		}
		if out, err := l.run("down"); err != nil {
			t.Errorf("tools/lab down: %v\n%s", err, out)
		}
		os.RemoveAll(state)
	})
	start := time.Now()
	out, err := l.run(append([]string{"up"}, args...)...)
	if err != nil {
		t.Fatalf("tools/lab up: %v\n%s", err, out)
	}
	t.Logf("lab up in %v (heartbeat interval %s, timeout %s)", time.Since(start).Round(time.Millisecond),
		envOr("FTBOX_LAB_HB_INTERVAL", "10ms"), envOr("FTBOX_LAB_HB_TIMEOUT", "100ms"))
	return l
}

func (l *Lab) dumpLogs() {
	for _, f := range []string{"a/ftbox.log", "b/ftbox.log", "arb/arbiter.log"} {
		b, err := os.ReadFile(filepath.Join(l.state, f))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > 60 {
			lines = lines[len(lines)-60:]
		}
		l.t.Logf("----- %s (last %d lines)\n%s", f, len(lines), strings.Join(lines, "\n"))
	}
}

// Status asks a box (a or b); the error is set if the daemon did not answer.
func (l *Lab) Status(box string) (*Status, int, error) {
	cmd := exec.Command(l.ftbox, "status", "--json", "--socket", filepath.Join(l.state, box, "ftbox.sock"))
	out, err := cmd.Output()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		return nil, 3, err
	}
	var s Status
	if jerr := json.Unmarshal(out, &s); jerr != nil {
		return nil, code, fmt.Errorf("status %s (exit %d): %v: %q", box, code, jerr, out)
	}
	return &s, code, nil
}

func (l *Lab) mustStatus(box string) *Status {
	l.t.Helper()
	s, _, err := l.Status(box)
	if err != nil {
		l.t.Fatalf("ftbox status on box %s: %v", box, err)
	}
	return s
}

func (l *Lab) Kill(box string) time.Time {
	l.t.Helper()
	at := time.Now()
	if out, err := l.run("kill", box, "KILL"); err != nil {
		l.t.Fatalf("tools/lab kill %s: %v\n%s", box, err, out)
	}
	return at
}

// WaitFor polls box's status until ok, or fails the test after timeout.
func (l *Lab) WaitFor(box string, timeout time.Duration, what string, ok func(*Status, int) bool) (*Status, time.Time) {
	l.t.Helper()
	deadline := time.Now().Add(timeout)
	var last *Status
	var lastErr error
	for time.Now().Before(deadline) {
		s, code, err := l.Status(box)
		if err == nil && ok(s, code) {
			return s, time.Now()
		}
		last, lastErr = s, err
		time.Sleep(10 * time.Millisecond)
	}
	l.t.Fatalf("box %s: not %s after %v (last status %+v, error %v)", box, what, timeout, last, lastErr)
	return nil, time.Time{}
}

// Counter runs the UDP counter client from the client's namespace until ctx ends.
func (l *Lab) Counter(ctx context.Context, name string) <-chan *client.Result {
	l.t.Helper()
	var conn net.Conn
	if err := testenv.InNetNS("ftclient", func() error {
		var err error
		conn, err = client.Dial(guestIP + ":7000")
		return err
	}); err != nil {
		l.t.Fatal(err)
	}
	ch := make(chan *client.Result, 1)
	go func() {
		defer conn.Close()
		c := &client.Counter{Conn: conn, Name: name, Interval: 10 * time.Millisecond, Timeout: 25 * time.Millisecond}
		r, _ := c.Run(ctx)
		ch <- r
	}()
	return ch
}

// Capture is tcpdump writing a pcap in one namespace.
type Capture struct {
	Path string
	cmd  *exec.Cmd
}

func (l *Lab) Capture(name, ns, dev string, filter ...string) *Capture {
	l.t.Helper()
	path := filepath.Join(l.state, name+".pcap")
	args := append([]string{"netns", "exec", ns, "tcpdump", "-i", dev, "--immediate-mode", "-U", "-n", "-s", "0", "-w", path}, filter...)
	cmd := exec.Command("ip", args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		l.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening on") {
				ready <- nil
				for sc.Scan() {
				}
				return
			}
		}
		ready <- errors.New("tcpdump exited before listening")
	}()
	select {
	case err := <-ready:
		if err != nil {
			l.t.Fatalf("tcpdump on %s/%s: %v", ns, dev, err)
		}
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		l.t.Fatalf("tcpdump on %s/%s did not start", ns, dev)
	}
	c := &Capture{Path: path, cmd: cmd}
	l.t.Cleanup(func() { c.Stop() })
	return c
}

// Stop ends the capture and returns its frames.
func (c *Capture) Stop() []verify.Frame {
	if c.cmd.ProcessState == nil {
		_ = c.cmd.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() { c.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			c.cmd.Process.Kill()
			<-done
		}
	}
	frames, _ := verify.ReadFile(c.Path)
	return frames
}

// Ping runs ping -D -O from the client for d at interval 10 ms.
type PingResult struct {
	Sent, Received int
	Replies        []time.Time
	Gap            time.Duration
}

var pingLine = regexp.MustCompile(`^\[(\d+\.\d+)\] \d+ bytes from`)
var pingStats = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

func (l *Lab) Ping(d time.Duration) <-chan PingResult {
	ch := make(chan PingResult, 1)
	go func() {
		out, _ := exec.Command("ip", "netns", "exec", "ftclient", "ping", "-D", "-O", "-n", "-i", "0.01",
			"-w", strconv.Itoa(int(math.Ceil(d.Seconds()))), guestIP).Output()
		var r PingResult
		for _, line := range strings.Split(string(out), "\n") {
			if m := pingLine.FindStringSubmatch(line); m != nil {
				f, _ := strconv.ParseFloat(m[1], 64)
				at := time.Unix(0, int64(f*1e9))
				if n := len(r.Replies); n > 0 && at.Sub(r.Replies[n-1]) > r.Gap {
					r.Gap = at.Sub(r.Replies[n-1])
				}
				r.Replies = append(r.Replies, at)
			}
			if m := pingStats.FindStringSubmatch(line); m != nil {
				r.Sent, _ = strconv.Atoi(m[1])
				r.Received, _ = strconv.Atoi(m[2])
			}
		}
		ch <- r
	}()
	return ch
}

func msf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// labHeartbeatTimeout is the lab's heartbeat.timeout (FTBOX_LAB_HB_TIMEOUT, default 100ms).
func labHeartbeatTimeout(t *testing.T) time.Duration {
	v := os.Getenv("FTBOX_LAB_HB_TIMEOUT")
	if v == "" {
		return 100 * time.Millisecond
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("FTBOX_LAB_HB_TIMEOUT=%q: %v", v, err)
	}
	return d
}

// checkCounter fails on lost acknowledged increments and on a client that
// heard nothing after the event at `after`.
func checkCounter(t *testing.T, r *client.Result, after time.Time) {
	t.Helper()
	t.Logf("UDP counter: %d requests, %d acknowledged, last value %d, final %d (ok %v), client-visible gap %.1f ms",
		r.Sent, r.Acked, r.LastValue(), r.Final, r.FinalOK, msf(r.Gap))
	if !r.FinalOK {
		t.Errorf("the final GET went unanswered")
	}
	if n := r.LostAcked(); n != 0 {
		t.Errorf("%d acknowledged increments lost (regressions %v)", n, r.Regressed)
	}
	late := 0
	for _, a := range r.Acks {
		if a.At.After(after) {
			late++
		}
	}
	if late == 0 {
		t.Errorf("no increment acknowledged after %s: the service did not carry on", after.Format("15:04:05.000"))
	}
}

// TestFailoverKillPrimary: kill -9 the primary under ping and the UDP
// counter; the backup goes live; no acknowledged increment is lost; the LAN
// capture shows one reply per request outside the failover window and the
// guest MAC never sourced by both boxes.
func TestFailoverKillPrimary(t *testing.T) {
	l := Up(t)
	if s := l.mustStatus("a"); s.Role != "PRIMARY" || s.Protection != "PROTECTED" {
		t.Fatalf("box a: role %s protection %s, want PRIMARY PROTECTED", s.Role, s.Protection)
	}
	if s := l.mustStatus("b"); s.Role != "BACKUP" || s.Protection != "PROTECTED" {
		t.Fatalf("box b: role %s protection %s, want BACKUP PROTECTED", s.Role, s.Protection)
	}
	lan := l.Capture("lan", "ftlan", "lan-cl")
	aOut := l.Capture("a-out", "ftboxa", "lan0", "-Q", "out")
	bOut := l.Capture("b-out", "ftboxb", "lan0", "-Q", "out")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counter := l.Counter(ctx, "kill-primary")
	ping := l.Ping(5 * time.Second)
	time.Sleep(1500 * time.Millisecond)
	killAt := l.Kill("a")
	sb, liveAt := l.WaitFor("b", 5*time.Second, "live", func(s *Status, _ int) bool { return s.Live() })
	t.Logf("box b live (%s) %.1f ms after the kill, as polled", sb.Role, msf(liveAt.Sub(killAt)))
	r := <-counter
	p := <-ping
	time.Sleep(300 * time.Millisecond)
	lanFrames, aFrames, bFrames := lan.Stop(), aOut.Stop(), bOut.Stop()

	checkCounter(t, r, liveAt)
	t.Logf("ping every 10 ms: %d sent, %d answered, longest gap between replies %.1f ms", p.Sent, p.Received, msf(p.Gap))
	if len(p.Replies) == 0 || !p.Replies[len(p.Replies)-1].After(liveAt) {
		t.Errorf("ping: no reply after box b went live")
	}
	s := l.mustStatus("b")
	if !s.Live() {
		t.Errorf("box b: role %s after the failover, want live", s.Role)
	}
	if s.LastFailover == nil {
		t.Errorf("box b: no last_failover in its status")
	} else {
		f := s.LastFailover
		t.Logf("box b: failover %q → %q, epoch %d → %d, detection %.1f ms, go-live %.1f ms, %d buffered outputs released",
			f.Reason, f.Result, f.FromEpoch, f.ToEpoch, f.DetectionMS, f.GoLiveMS, f.Released)
		if f.ToEpoch <= f.FromEpoch || f.GoLiveMS < 0 {
			t.Errorf("box b: last failover %+v: want a later epoch and a go-live time", f)
		}
		// The lab runs the second heartbeat path: a dead primary silences
		// both paths at once, so detection stays the heartbeat timeout
		// (plus scheduling), as without it.
		if timeout := labHeartbeatTimeout(t); f.DetectionMS > msf(timeout)*3/2+50 {
			t.Errorf("box b: detection took %.1f ms with a %v heartbeat timeout", f.DetectionMS, timeout)
		}
	}

	lr, err := verify.CheckLAN(lanFrames, verify.LANOptions{GuestIP: net.ParseIP(guestIP),
		Window: verify.Window{From: killAt.Add(-200 * time.Millisecond), To: liveAt.Add(500 * time.Millisecond)}})
	t.Logf("LAN capture:\n%s", lr)
	if err != nil {
		t.Errorf("LAN capture: %v", err)
	}
	mac, _ := net.ParseMAC(guestMAC)
	sr, err := verify.CheckSources([]string{"A", "B"}, [][]verify.Frame{aFrames, bFrames}, mac, 1)
	t.Logf("sources:\n%s", sr)
	if err != nil {
		t.Errorf("guest MAC sources: %v", err)
	}
	if sr != nil && sr.Count[1] == 0 {
		t.Errorf("box b never sourced the guest MAC after going live")
	}
}

// TestBackupKilled: kill -9 the backup; the primary goes UNPROTECTED once
// the arbiter lets it go on alone, and keeps serving.
func TestBackupKilled(t *testing.T) {
	l := Up(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	counter := l.Counter(ctx, "kill-backup")
	time.Sleep(1 * time.Second)
	killAt := l.Kill("b")
	s, aloneAt := l.WaitFor("a", 3*time.Second, "UNPROTECTED and live", func(s *Status, code int) bool {
		return s.Live() && s.Protection == "UNPROTECTED" && code == 1
	})
	t.Logf("box a: role %s, %s %.1f ms after the backup was killed (exit code 1)", s.Role, s.Protection, msf(aloneAt.Sub(killAt)))
	r := <-counter
	checkCounter(t, r, aloneAt)
	if s := l.mustStatus("a"); !s.Live() {
		t.Errorf("box a: role %s at the end, want live", s.Role)
	}
}

// TestLogLinkCut: the logging link's cable is pulled with both boxes alive
// and the LAN up. The lab runs the second heartbeat path (lan.heartbeat_
// interface = br0), so, as ftcore specifies ("The second path"), this is no
// failover: the primary, whose logging link fell silent, wins the next
// epoch and goes on UNPROTECTED; the backup, which still heard the primary
// on the LAN, claims only once both paths were silent (the primary stops
// its heartbeats after claiming), loses, halts and rejoins as a joining
// backup. Before the second path either box could end up serving; now it
// must be box A, box B must never be live, and the LAN capture must never
// show both sourcing the guest's MAC. Once the cable is back, box B takes
// box A's state and the pair is PROTECTED again.
func TestLogLinkCut(t *testing.T) {
	l := Up(t)
	lan := l.Capture("lan", "ftlan", "lan-cl")
	aOut := l.Capture("a-out", "ftboxa", "lan0", "-Q", "out")
	bOut := l.Capture("b-out", "ftboxb", "lan0", "-Q", "out")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counter := l.Counter(ctx, "link-cut")
	time.Sleep(1 * time.Second)
	cutAt := time.Now()
	if out, err := l.run("link", "cut"); err != nil {
		t.Fatalf("tools/lab link cut: %v\n%s", err, out)
	}
	// Settle: box A goes on alone, box B halts (and rejoins). At every
	// sample box A is live and box B is not.
	var sa, sb *Status
	settled := false
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		var erra, errb error
		sa, _, erra = l.Status("a")
		sb, _, errb = l.Status("b")
		if erra != nil || errb != nil {
			t.Fatalf("after the cut: a daemon stopped answering: %v %v", erra, errb)
		}
		if !sa.Live() || sb.Live() || sb.Gate.Pass {
			t.Fatalf("after the cut: box a %s (gate pass %v), box b %s (gate pass %v): want box a live and box b not",
				sa.Role, sa.Gate.Pass, sb.Role, sb.Gate.Pass)
		}
		// Box b either claimed once both paths were silent, lost and
		// halted, or (an unprotected primary says hello on the LAN path
		// too) heard box a live in its new epoch and yielded at once.
		if sa.Role == "UNPROTECTED" && (sb.LastFailover != nil && strings.HasPrefix(sb.LastFailover.Result, "halted") || sb.Counters.Yields > 0) {
			settled = true
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	settledAt := time.Now()
	if !settled {
		t.Fatalf("not settled 3 s after the cut: box a %+v, box b %+v", sa, sb)
	}
	bWhat := fmt.Sprintf("yielded %d times", sb.Counters.Yields)
	if sb.LastFailover != nil {
		bWhat = sb.LastFailover.Result
	}
	t.Logf("after the cut: box a %s epoch %d (%q), box b %s (%s), settled %.1f ms after the cut",
		sa.Role, sa.Epoch, sa.LastFailover.Reason, sb.Role, bWhat, msf(settledAt.Sub(cutAt)))
	if !strings.Contains(sa.LastFailover.Reason, "peer still heard on the LAN") {
		t.Errorf("box a's failover reason %q: want the logging link silent with the peer heard on the LAN", sa.LastFailover.Reason)
	}
	r := <-counter
	time.Sleep(300 * time.Millisecond)
	lanFrames, aFrames, bFrames := lan.Stop(), aOut.Stop(), bOut.Stop()
	for i := 0; i < 5; i++ {
		sa, sb = l.mustStatus("a"), l.mustStatus("b")
		if !sa.Live() || sb.Live() {
			t.Fatalf("after the cut: box a %s, box b %s: want exactly box a live", sa.Role, sb.Role)
		}
		time.Sleep(100 * time.Millisecond)
	}
	checkCounter(t, r, settledAt)

	mac, _ := net.ParseMAC(guestMAC)
	sr, err := verify.CheckSources([]string{"A", "B"}, [][]verify.Frame{aFrames, bFrames}, mac, 0)
	t.Logf("sources:\n%s", sr)
	if err != nil {
		t.Errorf("guest MAC sources: %v", err)
	}
	if sr != nil && sr.Count[1] != 0 {
		t.Errorf("box b sourced %d frames from the guest's MAC: it went live", sr.Count[1])
	}
	lr, err := verify.CheckLAN(lanFrames, verify.LANOptions{GuestIP: net.ParseIP(guestIP),
		Window: verify.Window{From: cutAt.Add(-200 * time.Millisecond), To: settledAt.Add(500 * time.Millisecond)}})
	t.Logf("LAN capture:\n%s", lr)
	if err != nil {
		t.Errorf("LAN capture: %v", err)
	}

	// The cable back: box B rejoins by state transfer.
	if out, err := l.run("link", "heal"); err != nil {
		t.Fatalf("tools/lab link heal: %v\n%s", err, out)
	}
	l.WaitFor("b", 15*time.Second, "BACKUP PROTECTED again", func(s *Status, code int) bool { return s.Role == "BACKUP" && s.Protection == "PROTECTED" })
	sa, _ = l.WaitFor("a", 5*time.Second, "PRIMARY PROTECTED again", func(s *Status, code int) bool { return s.Role == "PRIMARY" && s.Protection == "PROTECTED" })
	t.Logf("link healed: box a %s epoch %d, box b rejoined as its backup", sa.Role, sa.Epoch)
}

// TestLogLinkLoss: 10 % of the logging link's frames dropped both ways (the
// eBPF loss injector) for a few seconds under load: retransmission copes,
// nobody fails over, nothing acknowledged is lost.
func TestLogLinkLoss(t *testing.T) {
	l := Up(t)
	epoch := l.mustStatus("a").Epoch
	loss := attachLogLoss(t, 100)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counter := l.Counter(ctx, "lossy")
	ping := l.Ping(5 * time.Second)
	start := time.Now()
	for time.Since(start) < 5*time.Second {
		for _, box := range []string{"a", "b"} {
			s, _, err := l.Status(box)
			if err != nil {
				t.Fatalf("box %s: %v", box, err)
			}
			want := map[string]string{"a": "PRIMARY", "b": "BACKUP"}[box]
			if s.Role != want || s.Epoch != epoch || s.LastFailover != nil {
				t.Fatalf("false failover under 10%% loss: box %s role %s epoch %d (was %d), last failover %+v",
					box, s.Role, s.Epoch, epoch, s.LastFailover)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	r := <-counter
	p := <-ping
	t.Logf("10%% loss from %s to %s: no failover", start.Format("15:04:05.000"), time.Now().Format("15:04:05.000"))
	dropped, passed := loss.Stats()
	loss.Detach()
	t.Logf("loss injectors detached at %s", time.Now().Format("15:04:05.000"))
	sa := l.mustStatus("a")
	t.Logf("loss injector: %d of %d log frames dropped (%.1f %%); primary retransmits %d",
		dropped, dropped+passed, 100*float64(dropped)/float64(max(dropped+passed, 1)), sa.Counters.Retransmits)
	t.Logf("ping every 10 ms: %d sent, %d answered, longest gap %.1f ms", p.Sent, p.Received, msf(p.Gap))
	checkCounter(t, r, start)
	if dropped == 0 {
		t.Errorf("the loss injector dropped nothing")
	}
	if p.Received < p.Sent*9/10 {
		t.Errorf("ping: %d of %d answered under 10%% log-link loss", p.Received, p.Sent)
	}
	l.WaitFor("a", 5*time.Second, "PROTECTED again", func(s *Status, code int) bool { return code == 0 && s.Role == "PRIMARY" })
}

// TestVerifyScript runs the README's tcpdump verification (tools/verify/
// verify.sh) against a fresh lab: the backup's tap0 shows the replica's
// replies, as many as the gate dropped; the logging-link capture decodes
// with ftbox dump; one reply per request on the LAN; one source of the
// guest's MAC.
func TestVerifyScript(t *testing.T) {
	l := Up(t)
	cmd := exec.Command(filepath.Join(repo, "tools/verify/verify.sh"), "--out", filepath.Join(l.state, "captures"))
	cmd.Env = append(os.Environ(), "FTBOX_LAB_STATE="+l.state, "PATH=/usr/local/go/bin:"+os.Getenv("PATH"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	t.Logf("tools/verify/verify.sh:\n%s", out.String())
	if err != nil {
		t.Fatalf("verify.sh: %v", err)
	}
}

// TestOldPrimaryRestarted: after a failover the old primary's daemon is
// started again; it never preempts the survivor (it sources no frame from
// the guest's MAC, and never claims a later epoch) and should rejoin as its
// backup.
func TestOldPrimaryRestarted(t *testing.T) {
	l := Up(t)
	l.Kill("a")
	_, liveAt := l.WaitFor("b", 5*time.Second, "live", func(s *Status, _ int) bool { return s.Live() })
	aOut := l.Capture("a-out", "ftboxa", "lan0", "-Q", "out", "ether", "src", guestMAC)
	ctx, cancel := context.WithCancel(context.Background())
	counter := l.Counter(ctx, "restart")
	if out, err := l.run("start", "a"); err != nil {
		cancel()
		t.Fatalf("tools/lab start a: %v\n%s", err, out)
	}
	var sa *Status
	var lastA *Status
	deadline := time.Now().Add(30 * time.Second)
	for sa == nil && time.Now().Before(deadline) {
		s, code, err := l.Status("a")
		sb, _, errb := l.Status("b")
		if errb != nil || !sb.Live() {
			t.Errorf("box b stopped serving after box a restarted: %+v %v", sb, errb)
			break
		}
		if err == nil {
			lastA = s
			// A restarted box may call itself PRIMARY of its old epoch until it
			// hears the live one; it must never be live in the survivor's epoch or later.
			if s.Live() && s.Epoch >= sb.Epoch {
				t.Errorf("the restarted box a is %s in epoch %d, box b %s in epoch %d: preempted", s.Role, s.Epoch, sb.Role, sb.Epoch)
				break
			}
			if s.Role == "BACKUP" && code == 0 {
				sa = s
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	r := <-counter
	frames := aOut.Stop()
	checkCounter(t, r, liveAt)
	if len(frames) > 0 {
		t.Errorf("the restarted box a put %d frames from the guest's MAC on the LAN (first at %s): it preempted box b",
			len(frames), frames[0].At.Format("15:04:05.000"))
	}
	if sa == nil {
		if lastA != nil {
			t.Fatalf("box a did not rejoin as backup within 30 s: role %s epoch %d %s, problems %q", lastA.Role, lastA.Epoch, lastA.Protection, lastA.Problems)
		}
		t.Fatalf("box a did not rejoin as backup within 30 s")
	}
	sb := l.mustStatus("b")
	if sb.Role != "PRIMARY" || sb.Protection != "PROTECTED" {
		t.Errorf("box b: role %s %s after a rejoined, want PRIMARY PROTECTED", sb.Role, sb.Protection)
	}
	t.Logf("box a rejoined as %s in epoch %d; box b %s", sa.Role, sa.Epoch, sb.Role)
}
