package e2e

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"ftbox/tools/client"
	"ftbox/tools/testenv"
	"ftbox/tools/verify"
)

// Helpers of the fault matrix (faultmatrix_test.go): a status monitor that
// checks the exit codes' truth at every sample, captures of the guest MAC's
// sources at the LAN bridge, a duplicator of logging-link frames, metrics.

// ---------------------------------------------------------------------------
// Status monitor

// sample is one `ftbox status --json` of one box.
type sample struct {
	at   time.Time
	s    *Status // nil: the daemon did not answer (dead, stopped, or starting)
	x    statusExtra
	code int
}

// statusExtra: fields of `ftbox status --json` the matrix reads besides Status's.
type statusExtra struct {
	Replication struct {
		Syncing bool `json:"syncing"`
	} `json:"replication"`
	Counters struct {
		Duplicates        uint64 `json:"duplicates"`
		LogFramesSent     uint64 `json:"log_frames_sent"`
		LogFramesReceived uint64 `json:"log_frames_received"`
	} `json:"counters"`
	Guest struct {
		ICount uint64 `json:"icount"`
	} `json:"guest"`
}

func (s sample) live() bool { return s.s != nil && s.s.Live() }

func (s sample) String() string {
	if s.s == nil {
		return fmt.Sprintf("no answer (exit %d)", s.code)
	}
	return fmt.Sprintf("%s epoch %d %s exit %d problems %q", s.s.Role, s.s.Epoch, s.s.Protection, s.code, s.s.Problems)
}

// monitor polls both boxes' status every few ms from its start to its stop
// and checks, at every sample, that the exit code tells the truth:
//
//   - exit 0 only for a PROTECTED box;
//   - a box serving the guest (PRIMARY, UNPROTECTED) that is not PROTECTED
//     exits 1 at least, never 0;
//   - a box that does not serve while its peer does not serve either (dead,
//     stopped, not live) exits 2 CRITICAL, once that has lasted longer than
//     noneLiveGrace (a failover passes through such a moment: detection and
//     go-live, well under it);
//   - while quiet is set (see Quiet), neither box exits 0.
type monitor struct {
	l       *Lab
	t       testing.TB
	stop    chan struct{}
	done    sync.WaitGroup
	mu      sync.Mutex
	last    map[string]sample
	samples map[string][]sample
	// noneLiveSince: since when, as sampled, neither box served (zero: one does).
	noneLiveSince time.Time
	quiet         bool      // neither box may exit 0
	quietFrom     time.Time // quiet checks apply from then
	quietSamples  int
	violations    []string
	nviol         map[string]int
}

// noneLiveGrace: how long neither box may serve before their status must
// say CRITICAL. The lab's failover (100 ms heartbeat timeout, a 500 ms
// arbiter timeout) takes well under it.
const noneLiveGrace = 1500 * time.Millisecond

func (l *Lab) Monitor() *monitor {
	m := &monitor{l: l, t: l.t, stop: make(chan struct{}), last: map[string]sample{}, samples: map[string][]sample{}, nviol: map[string]int{}}
	for _, box := range []string{"a", "b"} {
		m.done.Add(1)
		go func() {
			defer m.done.Done()
			for {
				select {
				case <-m.stop:
					return
				default:
				}
				sm := l.statusSample(box)
				m.record(box, sm)
				select {
				case <-m.stop:
					return
				case <-time.After(15 * time.Millisecond):
				}
			}
		}()
	}
	l.t.Cleanup(m.Stop)
	return m
}

// statusSample asks a box with a short timeout (a stopped daemon never answers).
func (l *Lab) statusSample(box string) sample {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, l.ftbox, "status", "--json", "--timeout", "400ms", "--socket", filepath.Join(l.state, box, "ftbox.sock"))
	out, err := cmd.Output()
	at := time.Now()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		return sample{at: at, code: 3}
	}
	var s Status
	var x statusExtra
	// Exit 3: the daemon did not answer (ftbox status still prints an UNKNOWN object).
	if code == 3 || json.Unmarshal(out, &s) != nil || s.SchemaVersion == 0 || s.Role == "" {
		return sample{at: at, code: code}
	}
	_ = json.Unmarshal(out, &x)
	return sample{at: at, s: &s, x: x, code: code}
}

func (m *monitor) violate(kind, format string, args ...any) {
	m.nviol[kind]++
	if m.nviol[kind] <= 3 {
		m.violations = append(m.violations, fmt.Sprintf(format, args...))
	}
}

func (m *monitor) record(box string, sm sample) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.last[box] = sm
	m.samples[box] = append(m.samples[box], sm)
	ts := sm.at.Format("15:04:05.000")
	if s := sm.s; s != nil {
		if sm.code == 0 && s.Protection != "PROTECTED" {
			m.violate("ok-unprotected", "%s box %s: exit 0 OK while %s", ts, box, sm)
		}
		if s.Live() && s.Protection != "PROTECTED" && sm.code < 1 {
			m.violate("live-unprotected", "%s box %s serves %s but exits %d (want WARNING at least)", ts, box, s.Protection, sm.code)
		}
		if m.quiet && !sm.at.Before(m.quietFrom) {
			m.quietSamples++
			if sm.code == 0 {
				m.violate("quiet", "%s box %s: exit 0 OK (%s) while no failover could happen", ts, box, sm)
			}
		}
	}
	other := map[string]string{"a": "b", "b": "a"}[box]
	po, ok := m.last[other]
	// The peer's sample is recent enough to count (a silent peer's is its last attempt).
	noneLive := !sm.live() && (!ok || !po.live() || sm.at.Sub(po.at) > 3*time.Second)
	if !noneLive {
		m.noneLiveSince = time.Time{}
		return
	}
	if m.noneLiveSince.IsZero() {
		m.noneLiveSince = sm.at
		return
	}
	if sm.s != nil && sm.at.Sub(m.noneLiveSince) > noneLiveGrace && sm.code != 2 {
		m.violate("none-live", "%s box %s: %s, its peer (%s) not serving either for %.0f ms: want exit 2 CRITICAL",
			ts, box, sm, po, msf(sm.at.Sub(m.noneLiveSince)))
	}
}

// Quiet: from after grace on, until Unquiet, neither box may exit 0.
func (m *monitor) Quiet(grace time.Duration) {
	m.mu.Lock()
	m.quiet, m.quietFrom = true, time.Now().Add(grace)
	m.mu.Unlock()
}

// Unquiet ends Quiet and returns how many samples it checked.
func (m *monitor) Unquiet() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.quiet = false
	return m.quietSamples
}

// Stop ends the polling and reports the violations as errors (once).
func (m *monitor) Stop() {
	select {
	case <-m.stop:
		return
	default:
	}
	close(m.stop)
	m.done.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, v := range m.violations {
		m.t.Errorf("status: %s", v)
	}
	for kind, n := range m.nviol {
		if n > 3 {
			m.t.Errorf("status: %d violations of kind %s in all", n, kind)
		}
	}
	m.t.Logf("status monitor: %d samples of box a, %d of box b", len(m.samples["a"]), len(m.samples["b"]))
}

// Samples returns box's samples so far.
func (m *monitor) Samples(box string) []sample {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]sample(nil), m.samples[box]...)
}

// Last returns box's latest sample.
func (m *monitor) Last(box string) sample {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last[box]
}

// ---------------------------------------------------------------------------
// The guest MAC's sources, at the LAN bridge

// macSources captures, in the LAN's namespace, the frames from the guest's
// MAC that each box's port (lan-a, lan-b) brings into the bridge: what each
// box puts on the LAN, as the LAN sees it (a box whose cable is pulled puts
// nothing there).
type macSources struct{ a, b *Capture }

func (l *Lab) MACSources(name string) *macSources {
	return &macSources{
		a: l.Capture(name+"-lan-a", "ftlan", "lan-a", "-Q", "in", "ether", "src", guestMAC),
		b: l.Capture(name+"-lan-b", "ftlan", "lan-b", "-Q", "in", "ether", "src", guestMAC),
	}
}

// Check stops the captures and fails the test if the guest's MAC came from
// both boxes at once: in time order its source changes boxes more than
// failovers times.
func (ms *macSources) Check(t *testing.T, failovers int) *verify.SourceReport {
	t.Helper()
	time.Sleep(100 * time.Millisecond) // the last frames reach the files
	fa, fb := ms.a.Stop(), ms.b.Stop()
	mac, _ := net.ParseMAC(guestMAC)
	sr, err := verify.CheckSources([]string{"A (lan-a)", "B (lan-b)"}, [][]verify.Frame{fa, fb}, mac, failovers)
	t.Logf("guest MAC sources on the LAN bridge:\n%s", sr)
	if err != nil {
		t.Errorf("two sources of the guest MAC on the LAN: %v", err)
	}
	if sr.Count[0]+sr.Count[1] == 0 {
		t.Errorf("no frame from the guest's MAC on the LAN at all: the captures saw nothing")
	}
	return sr
}

// ---------------------------------------------------------------------------
// The counter

// checkNoLostAck fails on any acknowledged increment the counter lost: an
// acknowledged value that did not exceed an earlier one, or a final value
// below the highest acknowledged.
func checkNoLostAck(t *testing.T, r *client.Result, after time.Time) {
	t.Helper()
	checkCounter(t, r, after)
}

// ---------------------------------------------------------------------------
// Duplication of logging-link frames

// duplicator is a tc (TCX) egress program on a box's log0 that sends every
// frame of EtherType 0x88B5 twice: it clones each one back to the device's
// egress (bpf_clone_redirect) marked, and lets the marked clone through
// unchanged. (tc netem's duplicate would do, where the kernel has netem.)
type duplicator struct {
	prog  *ebpf.Program
	stats *ebpf.Map
	lnk   link.Link
}

const dupMark = 0x0f7d0b1e

func dupInstructions() asm.Instructions {
	et := binary.NativeEndian.Uint16(binary.BigEndian.AppendUint16(nil, logEther))
	return asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),               // r6 = skb
		asm.LoadMem(asm.R7, asm.R6, 8, asm.Word),  // r7 = skb->mark
		asm.JEq.Imm(asm.R7, dupMark, "clone"),     // our own copy: pass it
		asm.LoadMem(asm.R2, asm.R6, 76, asm.Word), // r2 = data
		asm.LoadMem(asm.R3, asm.R6, 80, asm.Word), // r3 = data_end
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, 14),
		asm.JGT.Reg(asm.R4, asm.R3, "next"),       // no Ethernet header
		asm.LoadMem(asm.R4, asm.R2, 12, asm.Half), // r4 = EtherType as loaded
		asm.JNE.Imm(asm.R4, int32(et), "next"),
		asm.Mov.Imm32(asm.R1, dupMark),
		asm.StoreMem(asm.R6, 8, asm.R1, asm.Word), // skb->mark = dupMark
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.LoadMem(asm.R2, asm.R6, 40, asm.Word), // r2 = skb->ifindex
		asm.Mov.Imm(asm.R3, 0),                    // to this device's egress
		asm.FnCloneRedirect.Call(),
		asm.StoreMem(asm.R6, 8, asm.R7, asm.Word), // skb->mark = as it was
		asm.JNE.Imm(asm.R0, 0, "next"),            // the clone failed: not counted
		asm.StoreImm(asm.RFP, -4, 0, asm.Word),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.LoadMapPtr(asm.R1, 0).WithReference("dup_stats"),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "next"),
		asm.Mov.Imm(asm.R1, 1),
		asm.AddAtomic.Mem(asm.R0, asm.R1, asm.DWord, 0), // duplicated += 1
		asm.Ja.Label("next"),
		asm.Mov.Imm32(asm.R1, 0).WithSymbol("clone"),
		asm.StoreMem(asm.R6, 8, asm.R1, asm.Word),  // the copy leaves unmarked
		asm.Mov.Imm(asm.R0, -1).WithSymbol("next"), // TCX_NEXT / TC_ACT_UNSPEC
		asm.Return(),
	}
}

// attachDuplicator duplicates every logging-link frame box's log0 sends.
func attachDuplicator(t *testing.T, ns string) *duplicator {
	t.Helper()
	spec := &ebpf.CollectionSpec{
		Maps: map[string]*ebpf.MapSpec{
			"dup_stats": {Name: "dup_stats", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1},
		},
		Programs: map[string]*ebpf.ProgramSpec{
			"ftbox_e2e_dup": {Name: "ftbox_e2e_dup", Type: ebpf.SchedCLS, License: "GPL", Instructions: dupInstructions()},
		},
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatalf("load the duplicator: %v", err)
	}
	d := &duplicator{prog: coll.DetachProgram("ftbox_e2e_dup"), stats: coll.DetachMap("dup_stats")}
	coll.Close()
	if err := testenv.InNetNS(ns, func() error {
		ifc, err := net.InterfaceByName("log0")
		if err != nil {
			return err
		}
		d.lnk, err = link.AttachTCX(link.TCXOptions{Interface: ifc.Index, Program: d.prog, Attach: ebpf.AttachTCXEgress, Anchor: link.Tail()})
		return err
	}); err != nil {
		d.prog.Close()
		d.stats.Close()
		t.Fatalf("attach the duplicator to %s/log0: %v", ns, err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// Duplicated is how many frames it sent twice.
func (d *duplicator) Duplicated() uint64 {
	var n uint64
	if d.stats != nil {
		_ = d.stats.Lookup(uint32(0), &n)
	}
	return n
}

func (d *duplicator) Close() {
	if d.lnk != nil {
		d.lnk.Close()
		d.lnk = nil
		d.prog.Close()
		d.stats.Close()
		d.stats = nil
	}
}

// ---------------------------------------------------------------------------
// Metrics and the lab's commands

// Metrics reads box's Prometheus metrics (tools/lab runs each box with
// --metrics 127.0.0.1:9477 in its namespace) as name{labels} → value.
func (l *Lab) Metrics(box string) (map[string]float64, error) {
	var conn net.Conn
	if err := testenv.InNetNS(map[string]string{"a": "ftboxa", "b": "ftboxb"}[box], func() error {
		var err error
		conn, err = net.DialTimeout("tcp", "127.0.0.1:9477", time.Second)
		return err
	}); err != nil {
		return nil, fmt.Errorf("metrics of box %s: %w", box, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	fmt.Fprintf(conn, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, fmt.Errorf("metrics of box %s: %w", box, err)
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m, sc.Err()
}

// mustRun runs tools/lab ARGS and fails the test if it fails.
func (l *Lab) mustRun(args ...string) string {
	l.t.Helper()
	out, err := l.run(args...)
	if err != nil {
		l.t.Fatalf("tools/lab %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// waitProtected waits until both boxes exit 0 PROTECTED, one PRIMARY and one
// BACKUP, and returns their statuses.
func (l *Lab) waitProtected(timeout time.Duration) (map[string]*Status, bool) {
	deadline := time.Now().Add(timeout)
	var sa, sb sample
	for time.Now().Before(deadline) {
		sa, sb = l.statusSample("a"), l.statusSample("b")
		if sa.s != nil && sb.s != nil && sa.code == 0 && sb.code == 0 &&
			sa.s.Protection == "PROTECTED" && sb.s.Protection == "PROTECTED" &&
			((sa.s.Role == "PRIMARY" && sb.s.Role == "BACKUP") || (sa.s.Role == "BACKUP" && sb.s.Role == "PRIMARY")) {
			return map[string]*Status{"a": sa.s, "b": sb.s}, true
		}
		time.Sleep(50 * time.Millisecond)
	}
	l.t.Errorf("not back to PROTECTED (exit 0) on both boxes within %v: box a %s; box b %s", timeout, sa, sb)
	return map[string]*Status{"a": sa.s, "b": sb.s}, false
}

// fileExists reports whether path exists.
func fileExists(path string) bool { _, err := os.Stat(path); return err == nil }
