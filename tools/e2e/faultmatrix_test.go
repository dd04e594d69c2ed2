package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ftbox/tools/client"
)

// TestFaultMatrix runs each fault of issue 7's matrix on the real lab, under
// load (the UDP counter client incrementing every 10 ms), and checks for
// each one:
//
//  1. no lost acknowledged increment: the counter never goes below the
//     highest value acknowledged (except after the announced cold start of
//     a double failure, where it restarts from 0, and the client must see
//     it restart);
//  2. at most one source of the guest's MAC on the LAN at a time: captures
//     of each box's port into the LAN bridge (lan-a, lan-b in ftlan), whose
//     source may change boxes at most once per failover;
//  3. `ftbox status` exit codes that tell the truth: before the fault both
//     0 (PROTECTED); during it, at every sample, a serving box that is not
//     PROTECTED exits 1 at least (never 0), a box not serving while its peer
//     does not serve either exits 2 CRITICAL, and exit 0 means PROTECTED;
//     after it, both 0 PROTECTED again (except a cold start's alarm, which
//     stays until `ftbox ack`).
//
// Each fault gets a fresh lab (tools/lab up, about a second).
func TestFaultMatrix(t *testing.T) {
	start := time.Now()
	for _, f := range []struct {
		name string
		run  func(*testing.T, *faultRun)
	}{
		{"kill9-primary", faultKillPrimary},
		{"sigstop-primary-300ms", func(t *testing.T, f *faultRun) { faultStopPrimary(t, f, 300*time.Millisecond) }},
		{"sigstop-primary-2s", func(t *testing.T, f *faultRun) { faultStopPrimary(t, f, 2*time.Second) }},
		{"arbiter-down", faultArbiterDown},
		{"arbiter-state-lost", faultArbiterStateLost},
		{"log-link-cut", faultLogLinkCut},
		{"partition-primary", faultPartition},
		{"log-link-loss-10pct", faultLogLinkLoss},
		{"log-link-duplicate-100pct", faultLogLinkDuplicate},
		{"cold-double-failure", faultColdDoubleFailure},
	} {
		t.Run(f.name, func(t *testing.T) {
			fr := beginFault(t, f.name)
			f.run(t, fr)
		})
	}
	t.Logf("fault matrix: %v wall time", time.Since(start).Round(100*time.Millisecond))
}

// faultRun is one fault's lab, load, captures and status monitor.
type faultRun struct {
	t       *testing.T
	l       *Lab
	m       *monitor
	mac     *macSources
	cancel  context.CancelFunc
	counter <-chan *client.Result
	result  *client.Result
	before  map[string]*Status
}

// beginFault: a fresh lab; both boxes exit 0 PROTECTED (A primary, B
// backup); the captures, the status monitor and the counter started; a
// second of load before the fault.
func beginFault(t *testing.T, name string) *faultRun {
	l := Up(t)
	f := &faultRun{t: t, l: l, before: map[string]*Status{}}
	for box, role := range map[string]string{"a": "PRIMARY", "b": "BACKUP"} {
		s, code, err := l.Status(box)
		if err != nil {
			t.Fatalf("before the fault: box %s: %v", box, err)
		}
		if code != 0 || s.Protection != "PROTECTED" || s.Role != role {
			t.Fatalf("before the fault: box %s %s %s exit %d (problems %q): want %s PROTECTED exit 0",
				box, s.Role, s.Protection, code, s.Problems, role)
		}
		f.before[box] = s
	}
	f.mac = l.MACSources(name)
	f.m = l.Monitor()
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	t.Cleanup(cancel)
	f.counter = l.Counter(ctx, name)
	time.Sleep(time.Second)
	// Nothing has happened yet: a failover now is a false one (and the fault
	// below would hit the wrong box).
	for box, role := range map[string]string{"a": "PRIMARY", "b": "BACKUP"} {
		if sm := l.statusSample(box); sm.s == nil || sm.s.Role != role || sm.s.Epoch != f.before[box].Epoch {
			t.Fatalf("false failover under load before any fault: box %s %s (was %s epoch %d)", box, sm, role, f.before[box].Epoch)
		}
	}
	return f
}

// stopLoad ends the counter client and returns what it saw.
func (f *faultRun) stopLoad() *client.Result {
	if f.result == nil {
		f.cancel()
		f.result = <-f.counter
	}
	return f.result
}

// finish: the counter stopped and checked (no lost acknowledged increment,
// the service carried on after `after`), the MAC sources checked (at most
// failovers handovers), the status monitor's violations reported.
func (f *faultRun) finish(after time.Time, failovers int) {
	f.t.Helper()
	r := f.stopLoad()
	checkNoLostAck(f.t, r, after)
	f.mac.Check(f.t, failovers)
	f.m.Stop()
}

// after: both boxes back to exit 0 PROTECTED within timeout.
func (f *faultRun) after(timeout time.Duration) map[string]*Status {
	f.t.Helper()
	st, ok := f.l.waitProtected(timeout)
	if ok {
		f.t.Logf("after: box a %s epoch %d, box b %s epoch %d, both PROTECTED exit 0", st["a"].Role, st["a"].Epoch, st["b"].Role, st["b"].Epoch)
	}
	return st
}

// noFailover fails the test if either box changed role or epoch, or handled
// a failover, since beginFault.
func (f *faultRun) noFailover(what string) bool {
	f.t.Helper()
	ok := true
	for _, box := range []string{"a", "b"} {
		sm := f.m.Last(box)
		if sm.s == nil {
			f.t.Errorf("%s: box %s does not answer", what, box)
			ok = false
			continue
		}
		b := f.before[box]
		if sm.s.Role != b.Role || sm.s.Epoch != b.Epoch || sm.s.LastFailover != nil {
			f.t.Errorf("%s: false failover: box %s %s epoch %d (was %s epoch %d), last failover %+v",
				what, box, sm.s.Role, sm.s.Epoch, b.Role, b.Epoch, sm.s.LastFailover)
			ok = false
		}
	}
	return ok
}

// kill -9 of the primary under load; the backup goes live; the old primary
// is started again and rejoins as backup.
func faultKillPrimary(t *testing.T, f *faultRun) {
	killAt := f.l.Kill("a")
	sb, liveAt := f.l.WaitFor("b", 5*time.Second, "live", func(s *Status, _ int) bool { return s.Live() })
	t.Logf("box b %s epoch %d %.1f ms after the kill", sb.Role, sb.Epoch, msf(liveAt.Sub(killAt)))
	time.Sleep(500 * time.Millisecond)
	t.Log(strings.TrimSpace(f.l.mustRun("start", "a")))
	f.after(30 * time.Second)
	f.finish(liveAt, 1)
}

// SIGSTOP of the primary for d, then SIGCONT: the backup may take over; the
// resumed old primary must not serve again (one source of the guest MAC)
// and must rejoin.
func faultStopPrimary(t *testing.T, f *faultRun, d time.Duration) {
	f.l.mustRun("kill", "a", "STOP")
	stopAt := time.Now()
	time.Sleep(d)
	f.l.mustRun("kill", "a", "CONT")
	t.Logf("box a stopped for %v", time.Since(stopAt).Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond)
	sa, sb := f.m.Last("a"), f.m.Last("b")
	t.Logf("500 ms after SIGCONT: box a %s; box b %s", sa, sb)
	f.after(30 * time.Second)
	f.finish(stopAt.Add(d), 1)
}

// The arbiter killed: the pair goes on serving, but no failover could
// happen, so neither box may say OK; then it is started again (on its state
// file, as an operator would) and both are OK again.
func faultArbiterDown(t *testing.T, f *faultRun) {
	f.l.mustRun("kill", "arb")
	downAt := time.Now()
	// A box notices a dead arbiter by asking it; give it 4 s (the lab's
	// arbiter timeout is 500 ms), then 4 s in which no sample may exit 0.
	const grace = 4 * time.Second
	f.m.Quiet(grace)
	time.Sleep(grace + 4*time.Second)
	n := f.m.Unquiet()
	t.Logf("arbiter down for %v; %d status samples in its last 4 s", time.Since(downAt).Round(time.Millisecond), n)
	if n == 0 {
		t.Errorf("no status sample while the arbiter was down")
	}
	f.noFailover("arbiter down")
	for _, box := range []string{"a", "b"} {
		if sm := f.m.Last(box); sm.s != nil {
			t.Logf("box %s with the arbiter down: %s", box, sm)
		}
	}
	t.Log(strings.TrimSpace(f.l.mustRun("start", "arb")))
	f.after(15 * time.Second)
	f.finish(downAt, 0)
}

// The arbiter's state file lost: it must refuse to start without --init;
// started with --init while the primary is stopped, it grants the backup
// the next epoch; the resumed old primary must not become a second primary
// and the counter must not go backwards.
func faultArbiterStateLost(t *testing.T, f *faultRun) {
	stateFile := filepath.Join(f.l.state, "arb", "arbiter.state")
	f.l.mustRun("kill", "arb")
	if err := os.Remove(stateFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	out, err := f.l.run("start", "arb")
	logb, _ := os.ReadFile(filepath.Join(f.l.state, "arb", "arbiter.log"))
	if err == nil {
		t.Errorf("the arbiter started without its state file and without --init; it must refuse:\n%s", out)
		f.l.mustRun("kill", "arb")
		os.Remove(stateFile)
	} else if tail := lastLines(string(logb), 5); !strings.Contains(out+tail, "--init") {
		t.Errorf("the arbiter refused to start without its state file, but its error does not mention --init:\n%s\n%s", out, tail)
	} else {
		t.Logf("without its state file the arbiter refuses: %s", strings.TrimSpace(lastLines(string(logb), 1)))
	}

	f.l.mustRun("kill", "a", "STOP")
	stopAt := time.Now()
	out, err = f.l.run("start", "arb", "--init")
	if err != nil {
		t.Errorf("tools/lab start arb --init: %v\n%s", err, out)
		// An ftbox without --init: an arbiter started empty all the same, so
		// that the rest of the fault still runs.
		if out2, err2 := f.l.run("start", "arb"); err2 != nil {
			f.l.mustRun("kill", "a", "CONT")
			t.Fatalf("tools/lab start arb: %v\n%s", err2, out2)
		}
	} else {
		t.Log(strings.TrimSpace(out))
		if !fileExists(stateFile) {
			t.Errorf("ftbox arbiter --init did not create its state file %s", stateFile)
		}
	}
	sb, liveAt := f.l.WaitFor("b", 5*time.Second, "live", func(s *Status, _ int) bool { return s.Live() })
	f.l.mustRun("kill", "a", "CONT")
	t.Logf("box a stopped for %v; box b went live (%s epoch %d) %.1f ms after the stop", time.Since(stopAt).Round(time.Millisecond),
		sb.Role, sb.Epoch, msf(liveAt.Sub(stopAt)))
	// The resumed box a must never be live in box b's epoch or a later one.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		sa, sb := f.l.statusSample("a"), f.l.statusSample("b")
		if sa.live() && sb.live() {
			t.Errorf("the resumed box a (%s) and box b (%s) both serve: two primaries", sa, sb)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.after(30 * time.Second)
	f.finish(liveAt, 1)
}

// The logging link's cable pulled with both boxes up, then back.
func faultLogLinkCut(t *testing.T, f *faultRun) {
	f.l.mustRun("link", "cut")
	cutAt := time.Now()
	time.Sleep(3 * time.Second)
	sa, sb := f.m.Last("a"), f.m.Last("b")
	t.Logf("3 s after the cut: box a %s; box b %s", sa, sb)
	f.l.mustRun("link", "heal")
	f.after(30 * time.Second)
	f.finish(cutAt.Add(time.Second), 1)
}

// The primary partitioned: its LAN cable (lan-a on the LAN bridge) and the
// logging link both pulled. The backup, which still reaches the arbiter and
// the clients, takes over; once the cables are back the old primary must
// not serve again, and rejoins.
func faultPartition(t *testing.T, f *faultRun) {
	f.l.mustRun("lan", "cut", "a")
	f.l.mustRun("link", "cut")
	cutAt := time.Now()
	sb, liveAt := f.l.WaitFor("b", 5*time.Second, "live", func(s *Status, _ int) bool { return s.Live() })
	t.Logf("box b %s epoch %d %.1f ms after the partition", sb.Role, sb.Epoch, msf(liveAt.Sub(cutAt)))
	time.Sleep(2 * time.Second)
	t.Logf("partitioned box a: %s", f.m.Last("a"))
	f.l.mustRun("lan", "heal", "a")
	f.l.mustRun("link", "heal")
	time.Sleep(time.Second) // the MAC captures cover the heal
	f.after(30 * time.Second)
	f.finish(liveAt, 1)
}

// netem adds a tc netem qdisc on log0 in both boxes, if the kernel has
// netem; it reports false (and adds nothing) if not.
func (f *faultRun) netem(args ...string) bool {
	for i, ns := range []string{"ftboxa", "ftboxb"} {
		out, err := exec.Command("ip", append([]string{"netns", "exec", ns, "tc", "qdisc", "add", "dev", "log0", "root", "netem"}, args...)...).CombinedOutput()
		if err != nil {
			if i == 1 {
				exec.Command("ip", "netns", "exec", "ftboxa", "tc", "qdisc", "del", "dev", "log0", "root").Run()
			}
			f.t.Logf("no tc netem (%s): %v %s", ns, err, strings.TrimSpace(string(out)))
			return false
		}
	}
	f.t.Cleanup(f.netemOff)
	return true
}

func (f *faultRun) netemOff() {
	for _, ns := range []string{"ftboxa", "ftboxb"} {
		exec.Command("ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", "log0", "root").Run()
	}
}

// holdNoFailover samples for d that neither box fails over.
func (f *faultRun) holdNoFailover(d time.Duration, what string) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !f.noFailover(what) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// 10 % of the logging link's frames lost both ways for 20 s: no false failover.
func faultLogLinkLoss(t *testing.T, f *faultRun) {
	start := time.Now()
	loss := &logLoss{}
	if f.netem("loss", "10%") {
		t.Log("tc netem loss 10% on log0 in both boxes")
	} else {
		// No netem in this kernel: the eBPF loss injector, egress of log0 in both boxes.
		loss = attachLogLoss(t, 100)
		t.Log("eBPF loss injector: 10% of log0's 0x88B5 frames dropped, egress of both boxes")
	}
	detach := func() {
		f.netemOff()
		if dropped, passed := loss.Stats(); dropped+passed > 0 {
			t.Logf("loss injector: %d of %d frames dropped", dropped, dropped+passed)
		}
		loss.Detach()
	}
	t.Cleanup(detach)
	f.holdNoFailover(20*time.Second, "10% loss on the logging link")
	detach()
	if sa := f.m.Last("a"); sa.s != nil {
		t.Logf("primary after 20 s of loss: retransmits %d", sa.s.Counters.Retransmits)
	}
	f.after(10 * time.Second)
	f.finish(start, 0)
}

// Every logging-link frame duplicated both ways: no failover, nothing lost.
func faultLogLinkDuplicate(t *testing.T, f *faultRun) {
	start := time.Now()
	s0 := map[string]sample{"a": f.l.statusSample("a"), "b": f.l.statusSample("b")}
	var dups []*duplicator
	if f.netem("duplicate", "100%") {
		t.Log("tc netem duplicate 100% on log0 in both boxes")
	} else {
		for _, ns := range []string{"ftboxa", "ftboxb"} {
			dups = append(dups, attachDuplicator(t, ns))
		}
		t.Log("eBPF duplicator: every 0x88B5 frame sent twice, egress of log0 in both boxes")
	}
	f.holdNoFailover(6*time.Second, "every logging-link frame duplicated")
	f.netemOff()
	for i, d := range dups {
		t.Logf("duplicator in box %c: %d frames sent twice", 'a'+i, d.Duplicated())
		if d.Duplicated() == 0 {
			t.Errorf("the duplicator in box %c duplicated nothing", 'a'+i)
		}
		d.Close()
	}
	for _, box := range []string{"a", "b"} {
		if sm := f.l.statusSample(box); sm.s != nil && s0[box].s != nil {
			t.Logf("box %s: log frames sent %d, received %d, duplicates %d, rejected %v while duplicated; %s", box,
				sm.x.Counters.LogFramesSent-s0[box].x.Counters.LogFramesSent, sm.x.Counters.LogFramesReceived-s0[box].x.Counters.LogFramesReceived,
				sm.x.Counters.Duplicates-s0[box].x.Counters.Duplicates, sm.s.Counters.LogFramesRejected, sm)
		}
	}
	f.after(10 * time.Second)
	f.finish(start, 0)
}

// A cold double failure: the backup restarted, and the primary killed -9
// while the restarted backup is taking its state (or right after it
// starts): nobody holds the guest's state any more. Neither box may serve
// an old epoch's guest; the status must be CRITICAL while nobody serves;
// the dead primary started again, the pair comes back with a fresh guest in
// a new epoch, announced: CRITICAL with a "COLD START" problem until `ftbox
// ack`, counted by ftbox_cold_starts_total. The counter restarts from 0, and
// only here.
func faultColdDoubleFailure(t *testing.T, f *faultRun) {
	epoch0 := f.before["a"].Epoch
	f.l.Kill("b")
	t.Log(strings.TrimSpace(f.l.mustRun("start", "b")))
	// Right after the backup's daemon starts, before it can have taken the
	// guest's state from box a (its daemon needs a few hundred ms to come up):
	// now nobody will hold it.
	killAt := f.l.Kill("a")
	t.Logf("box a killed -9 right after box b's restart (box b then: %s)", f.l.statusSample("b"))
	time.Sleep(noneLiveGrace + time.Second) // the monitor sees box b alone, not serving
	t.Logf("box b alone: %s", f.m.Last("b"))
	t.Log(strings.TrimSpace(f.l.mustRun("start", "a")))
	startAt := time.Now()

	// The pair back: one box serving a new epoch, the other its backup, and the
	// serving one's status CRITICAL with a COLD START problem.
	var live string
	var ls *Status
	var lastA, lastB sample
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && live == ""; time.Sleep(50 * time.Millisecond) {
		lastA, lastB = f.l.statusSample("a"), f.l.statusSample("b")
		for box, sm := range map[string]sample{"a": lastA, "b": lastB} {
			other := map[string]sample{"a": lastB, "b": lastA}[box]
			if sm.s != nil && other.s != nil && sm.s.Role == "PRIMARY" && other.s.Role == "BACKUP" &&
				sm.s.Protection == "PROTECTED" && other.s.Protection == "PROTECTED" {
				live, ls = box, sm.s
			}
		}
	}
	if live == "" {
		f.stopLoad()
		t.Fatalf("the pair did not come back within 30 s of box a's restart: box a %s; box b %s", lastA, lastB)
	}
	t.Logf("the pair is back %.0f ms after box a's restart: box %s PRIMARY epoch %d (the lost guest's: %d), guest icount %d",
		msf(time.Since(startAt)), live, ls.Epoch, epoch0, map[string]sample{"a": lastA, "b": lastB}[live].x.Guest.ICount)
	if ls.Epoch <= epoch0 {
		t.Errorf("the cold-started guest runs in epoch %d, not a new one (the lost guest's was %d)", ls.Epoch, epoch0)
	}
	alarmed := func(sm sample) bool {
		if sm.s == nil || sm.code != 2 {
			return false
		}
		for _, p := range sm.s.Problems {
			if strings.Contains(strings.ToUpper(p), "COLD START") {
				return true
			}
		}
		return false
	}
	// The alarm is there on the serving box (and maybe on its backup too),
	// and stays until acknowledged: 2 s of samples.
	other := map[string]string{"a": "b", "b": "a"}[live]
	raised := map[string]bool{}
	for i := 0; i < 20; i++ {
		for _, box := range []string{live, other} {
			sm := f.l.statusSample(box)
			switch {
			case alarmed(sm):
				raised[box] = true
			case box == live || raised[box]:
				t.Errorf("box %s after a cold start: %s: want exit 2 CRITICAL with a COLD START problem until acknowledged", box, sm)
				raised[box] = false
				i = 20
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("COLD START alarm held 2 s on: %v (serving box %s, its backup %s: %s)", raised, live, other, f.l.statusSample(other))
	if m, err := f.l.Metrics(live); err != nil {
		t.Errorf("metrics: %v", err)
	} else if v, ok := m["ftbox_cold_starts_total"]; !ok || v < 1 {
		t.Errorf("box %s: ftbox_cold_starts_total = %v (present %v), want at least 1", live, v, ok)
	} else {
		t.Logf("box %s: ftbox_cold_starts_total %v", live, v)
	}
	// Acknowledge on each box that shows it: ftbox ack, or ftbox status --ack.
	acked := true
	for _, box := range []string{live, other} {
		if !raised[box] {
			continue
		}
		sock := filepath.Join(f.l.state, box, "ftbox.sock")
		var ackOut []byte
		var ackErr error
		for _, args := range [][]string{{"ack", "--socket", sock}, {"status", "--ack", "--socket", sock}} {
			ackOut, ackErr = exec.Command(f.l.ftbox, args...).CombinedOutput()
			if ackErr == nil {
				t.Logf("box %s: ftbox %s: %s", box, args[0], firstLine(string(ackOut)))
				break
			}
		}
		if ackErr != nil {
			t.Errorf("box %s: ftbox ack / ftbox status --ack: %v\n%s", box, ackErr, ackOut)
			acked = false
		}
	}
	if acked {
		f.after(10 * time.Second)
	}

	r := f.stopLoad()
	checkColdRestart(t, r, killAt)
	f.mac.Check(t, 1)
	f.m.Stop()
}

// checkColdRestart: the client saw the counter restart (an acknowledged
// value after the kill below the highest one before it), and from that
// restart on lost no acknowledged increment.
func checkColdRestart(t *testing.T, r *client.Result, killAt time.Time) {
	t.Helper()
	var before uint64
	for _, a := range r.Acks {
		if a.At.Before(killAt) {
			before = max(before, a.Value)
		}
	}
	restart := -1
	for i, a := range r.Acks {
		if !a.At.Before(killAt) && a.Value < before {
			restart = i
			break
		}
	}
	t.Logf("UDP counter: %d requests, %d acknowledged, highest before the double failure %d, final %d (ok %v)",
		r.Sent, r.Acked, before, r.Final, r.FinalOK)
	if restart < 0 {
		t.Errorf("the client never saw the counter restart after the cold start (highest before %d, acknowledged after: %s)",
			before, ackValuesAfter(r, killAt))
		return
	}
	t.Logf("the counter restarted: %d at %s", r.Acks[restart].Value, r.Acks[restart].At.Format("15:04:05.000"))
	top, lost := r.Acks[restart].Value, 0
	for _, a := range r.Acks[restart+1:] {
		if a.Value <= top {
			lost++
		}
		top = max(top, a.Value)
	}
	if lost > 0 {
		t.Errorf("%d acknowledged increments lost after the cold start", lost)
	}
	if !r.FinalOK {
		t.Errorf("the final GET went unanswered")
	} else if r.Final < top {
		t.Errorf("final value %d below the highest acknowledged after the restart, %d", r.Final, top)
	}
}

func ackValuesAfter(r *client.Result, at time.Time) string {
	var vs []string
	for _, a := range r.Acks {
		if !a.At.Before(at) {
			vs = append(vs, fmt.Sprint(a.Value))
			if len(vs) == 10 {
				vs = append(vs, "...")
				break
			}
		}
	}
	return strings.Join(vs, " ")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
