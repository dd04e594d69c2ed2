package bpf

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/songgao/water"
	"golang.org/x/sys/unix"

	"ftbox/tools/testenv"
)

// The real-device tests build, in a network namespace of their own:
//
//	ftgtap0 (TAP, held by the test as the guest) ──┐
//	                                               br0 ── va ══ vb (capture)
//
// Frames the test writes to the TAP enter ftgtap0's ingress, where the gate
// sits, and, if it lets them go, are flooded by br0 out of va to vb.

const (
	tapName  = "ftgtap0"
	testType = 0x88b6 // IEEE local experimental; the logging link uses 0x88b5
)

type gateLab struct {
	ns     string
	tap    *water.Interface
	cap    *capture // on vb, the far side
	tapCap *capture // on the TAP itself
}

func newGateLab(t *testing.T) *gateLab {
	t.Helper()
	ns := testenv.NetNS(t, "ftbpf")
	testenv.Tool(t, "tc")
	l := &gateLab{ns: ns}
	err := testenv.InNetNS(ns, func() error {
		tap, err := water.New(water.Config{DeviceType: water.TAP,
			PlatformSpecificParams: water.PlatformSpecificParams{Name: tapName}})
		l.tap = tap
		return err
	})
	if err != nil {
		t.Fatalf("create tap in %s: %v", ns, err)
	}
	t.Cleanup(func() { l.tap.Close() })
	for _, args := range [][]string{
		{"link", "add", "br0", "type", "bridge"},
		{"link", "add", "va", "type", "veth", "peer", "name", "vb"},
		{"link", "set", tapName, "master", "br0"},
		{"link", "set", "va", "master", "br0"},
		{"link", "set", "br0", "up"},
		{"link", "set", "va", "up"},
		{"link", "set", "vb", "up"},
		{"link", "set", tapName, "up"},
	} {
		testenv.Run(t, "ip", append([]string{"-n", ns}, args...)...)
	}
	l.cap = openCapture(t, ns, "vb")
	l.tapCap = openCapture(t, ns, tapName)
	return l
}

// inNS runs f in the lab's namespace and fails the test on error.
func (l *gateLab) inNS(t *testing.T, f func() error) {
	t.Helper()
	if err := testenv.InNetNS(l.ns, f); err != nil {
		t.Fatal(err)
	}
}

// send writes n test frames tagged with tag to the TAP, as the guest would.
func (l *gateLab) send(t *testing.T, tag string, n int) (frameLen int) {
	t.Helper()
	for i := 0; i < n; i++ {
		f := testFrame(tag, i)
		if _, err := l.tap.Write(f); err != nil {
			t.Fatalf("write to tap: %v", err)
		}
		frameLen = len(f)
	}
	return frameLen
}

func testFrame(tag string, i int) []byte {
	f := frame(14, testType)
	f = append(f, fmt.Sprintf("ftbox-bpf-test %s %04d", tag, i)...)
	for len(f) < 60 {
		f = append(f, 0)
	}
	return f
}

// capture is an AF_PACKET socket on one device that counts test frames.
type capture struct{ fd int }

func openCapture(t *testing.T, ns, ifname string) *capture {
	t.Helper()
	c := &capture{fd: -1}
	err := testenv.InNetNS(ns, func() error {
		proto := int(htons(unix.ETH_P_ALL))
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		c.fd = fd
		idx, err := ifindex(ifname)
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: idx}); err != nil {
			return fmt.Errorf("bind packet socket to %s: %w", ifname, err)
		}
		tv := unix.NsecToTimeval((50 * time.Millisecond).Nanoseconds())
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	})
	if c.fd >= 0 {
		t.Cleanup(func() { unix.Close(c.fd) })
	}
	if err != nil {
		t.Fatalf("capture on %s: %v", ifname, err)
	}
	return c
}

// count reads frames until want test frames tagged tag have arrived or quiet
// has passed since the last one, and returns how many arrived.
func (c *capture) count(t *testing.T, tag string, want int, quiet time.Duration) int {
	t.Helper()
	marker := []byte("ftbox-bpf-test " + tag + " ")
	buf := make([]byte, 2048)
	got := 0
	deadline := time.Now().Add(quiet)
	for time.Now().Before(deadline) && (want == 0 || got < want) {
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("capture: %v", err)
		}
		if bytes.Contains(buf[:n], marker) {
			got++
			deadline = time.Now().Add(quiet)
		}
	}
	return got
}

func htons(v uint16) uint16 { return binary.BigEndian.Uint16(binary.NativeEndian.AppendUint16(nil, v)) }

// ifindex finds a device in the calling thread's namespace.
func ifindex(name string) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, fmt.Errorf("find %s: %w", name, err)
	}
	return int(ifr.Uint32()), nil
}

// markProbe counts, at a device's egress, the frames carrying an skb mark.
type markProbe struct {
	prog *ebpf.Program
	m    *ebpf.Map
	l    link.Link
}

func attachMarkProbe(t *testing.T, ns, ifname string, mark uint32) *markProbe {
	t.Helper()
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "ftbox_t_probe", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		t.Fatalf("probe map: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	ld := asm.LoadMapPtr(asm.R1, 0)
	if err := ld.AssociateMap(m); err != nil {
		t.Fatal(err)
	}
	insns := asm.Instructions{
		asm.LoadMem(asm.R6, asm.R1, skbMark, asm.Word), // r6 = skb->mark
		asm.Mov.Imm32(asm.R7, int32(mark)),
		asm.JNE.Reg(asm.R6, asm.R7, "out"),
		asm.StoreImm(asm.RFP, -4, 0, asm.Word),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		ld,
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.Mov.Imm(asm.R1, 1),
		asm.AddAtomic.Mem(asm.R0, asm.R1, asm.DWord, 0),
		asm.Mov.Imm(asm.R0, ActUnspec).WithSymbol("out"),
		asm.Return(),
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "ftbox_t_probe", Type: ebpf.SchedCLS, License: "GPL", Instructions: insns})
	if err != nil {
		t.Fatalf("probe program: %v", err)
	}
	t.Cleanup(func() { prog.Close() })
	p := &markProbe{prog: prog, m: m}
	err = testenv.InNetNS(ns, func() error {
		idx, err := ifindex(ifname)
		if err != nil {
			return err
		}
		p.l, err = link.AttachTCX(link.TCXOptions{Interface: idx, Program: prog, Attach: ebpf.AttachTCXEgress})
		return err
	})
	if err != nil {
		t.Fatalf("attach mark probe to %s: %v", ifname, err)
	}
	t.Cleanup(func() { p.l.Close() })
	return p
}

// attachPassAll attaches at ifname's ingress a TCX program that passes
// every frame (TCX_PASS), ending the chain there.
func attachPassAll(t *testing.T, ns, ifname string) {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "ftbox_t_pass", Type: ebpf.SchedCLS, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, ActOK), asm.Return()}})
	if err != nil {
		t.Fatalf("pass-all program: %v", err)
	}
	t.Cleanup(func() { prog.Close() })
	var l link.Link
	err = testenv.InNetNS(ns, func() error {
		idx, err := ifindex(ifname)
		if err != nil {
			return err
		}
		l, err = link.AttachTCX(link.TCXOptions{Interface: idx, Program: prog, Attach: ebpf.AttachTCXIngress})
		return err
	})
	if err != nil {
		t.Fatalf("attach pass-all to %s: %v", ifname, err)
	}
	t.Cleanup(func() { l.Close() })
}

func (p *markProbe) count(t *testing.T) uint64 {
	t.Helper()
	var v uint64
	if err := p.m.Lookup(uint32(0), &v); err != nil {
		t.Fatalf("probe count: %v", err)
	}
	return v
}

// waitStats polls the gate until ok(stats) or two seconds pass.
func waitStats(t *testing.T, g *Gate, ok func(GateStats) bool) GateStats {
	t.Helper()
	var s GateStats
	for end := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var err error
		if s, err = g.Stats(); err != nil {
			t.Fatal(err)
		}
		if ok(s) || time.Now().After(end) {
			return s
		}
	}
}

func TestGateOnTapTCX(t *testing.T) { testGateOnTap(t, false) }
func TestGateOnTapTC(t *testing.T)  { testGateOnTap(t, true) }

func testGateOnTap(t *testing.T, forceTC bool) {
	l := newGateLab(t)
	probe := attachMarkProbe(t, l.ns, "va", DefaultMark)
	if !forceTC {
		// A program that passes everything, already at the TAP's ingress:
		// the gate must go before it.
		attachPassAll(t, l.ns, tapName)
	}
	var g *Gate
	l.inNS(t, func() (err error) {
		g, err = AttachGate(tapName, GateOptions{ForceTC: forceTC})
		return err
	})
	closed := false
	t.Cleanup(func() {
		if !closed {
			g.Close()
		}
	})
	wantHook := HookTCX
	if forceTC {
		wantHook = HookTC
		out := testenv.Run(t, "tc", "-n", l.ns, "filter", "show", "dev", tapName, "ingress")
		if !strings.Contains(out, GateProgName) || !strings.Contains(out, "direct-action") {
			t.Errorf("tc filter show: no direct-action %s filter:\n%s", GateProgName, out)
		}
	}
	if g.Hook() != wantHook {
		t.Fatalf("hook %q, want %q", g.Hook(), wantHook)
	}
	if pass, err := g.Role(); err != nil || pass {
		t.Fatalf("fresh gate role pass=%v, %v; want DROP", pass, err)
	}

	const n = 20
	// DROP: the replica's frames are counted and go nowhere.
	size := l.send(t, "drop1", n)
	s := waitStats(t, g, func(s GateStats) bool { return s.DroppedFrames >= n })
	if want := (GateStats{DroppedFrames: n, DroppedBytes: n * uint64(size)}); s != want {
		t.Errorf("after %d frames in DROP: stats %+v, want %+v", n, s, want)
	}
	if got := l.cap.count(t, "drop1", 0, 300*time.Millisecond); got != 0 {
		t.Errorf("DROP: %d of %d frames reached the far side", got, n)
	}
	// A capture on the TAP itself (tcpdump -i tap0) sees the dropped replica
	// frames: packet taps run before the ingress hook.
	if got := l.tapCap.count(t, "drop1", n, 2*time.Second); got != n {
		t.Errorf("DROP: a capture on %s saw %d of %d frames, want all", tapName, got, n)
	}

	// PASS (promotion): they reach the LAN side, marked.
	if err := g.SetPass(true); err != nil {
		t.Fatal(err)
	}
	if pass, err := g.Role(); err != nil || !pass {
		t.Fatalf("role after SetPass(true): pass=%v, %v", pass, err)
	}
	bpftoolCheck(t, g, RolePass)
	l.send(t, "pass", n)
	if got := l.cap.count(t, "pass", n, 2*time.Second); got != n {
		t.Errorf("PASS: %d of %d frames reached the far side", got, n)
	}
	s = waitStats(t, g, func(s GateStats) bool { return s.PassedFrames >= n })
	if want := (GateStats{PassedFrames: n, PassedBytes: n * uint64(size), DroppedFrames: n, DroppedBytes: n * uint64(size)}); s != want {
		t.Errorf("after PASS: stats %+v, want %+v", s, want)
	}
	if c := probe.count(t); c < n {
		t.Errorf("mark probe at va egress counted %d frames marked %#x, want >= %d", c, DefaultMark, n)
	}

	// And back to DROP.
	if err := g.SetPass(false); err != nil {
		t.Fatal(err)
	}
	l.send(t, "drop2", n)
	waitStats(t, g, func(s GateStats) bool { return s.DroppedFrames >= 2*n })
	if got := l.cap.count(t, "drop2", 0, 300*time.Millisecond); got != 0 {
		t.Errorf("DROP again: %d of %d frames reached the far side", got, n)
	}

	// Close detaches: frames flow ungated and no tc state is left.
	if err := g.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	closed = true
	if err := g.SetPass(true); !errors.Is(err, ErrClosed) {
		t.Errorf("SetPass after Close: %v, want ErrClosed", err)
	}
	l.send(t, "closed", n)
	if got := l.cap.count(t, "closed", n, 2*time.Second); got != n {
		t.Errorf("after Close: %d of %d frames reached the far side", got, n)
	}
	if out := testenv.Run(t, "tc", "-n", l.ns, "qdisc", "show", "dev", tapName); strings.Contains(out, "clsact") {
		t.Errorf("clsact qdisc left behind:\n%s", out)
	}
	if out := testenv.Run(t, "tc", "-n", l.ns, "filter", "show", "dev", tapName, "ingress"); strings.TrimSpace(out) != "" {
		t.Errorf("tc filter left behind:\n%s", out)
	}
}

// A clsact qdisc that was there before the gate stays after Close.
func TestGateTCKeepsForeignClsact(t *testing.T) {
	l := newGateLab(t)
	testenv.Run(t, "tc", "-n", l.ns, "qdisc", "add", "dev", tapName, "clsact")
	var g *Gate
	l.inNS(t, func() (err error) {
		g, err = AttachGate(tapName, GateOptions{ForceTC: true, TCPriority: 7})
		return err
	})
	if out := testenv.Run(t, "tc", "-n", l.ns, "filter", "show", "dev", tapName, "ingress"); !strings.Contains(out, "pref 7") {
		t.Errorf("no filter at priority 7:\n%s", out)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if out := testenv.Run(t, "tc", "-n", l.ns, "qdisc", "show", "dev", tapName); !strings.Contains(out, "clsact") {
		t.Errorf("the pre-existing clsact qdisc was removed:\n%s", out)
	}
	if out := testenv.Run(t, "tc", "-n", l.ns, "filter", "show", "dev", tapName, "ingress"); strings.TrimSpace(out) != "" {
		t.Errorf("tc filter left behind:\n%s", out)
	}
}

func TestAttachGateNoDevice(t *testing.T) {
	ns := testenv.NetNS(t, "ftbpf")
	err := testenv.InNetNS(ns, func() error {
		g, err := AttachGate("nosuchdev0", GateOptions{})
		if err == nil {
			g.Close()
		}
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "attach gate to nosuchdev0") {
		t.Fatalf("attach to a missing device: %v", err)
	}
}

// bpftoolCheck dumps the role map by name with bpftool and checks it holds
// role among the ftbox_gate maps (other gates may be loaded on this host).
func bpftoolCheck(t *testing.T, g *Gate, role uint32) {
	t.Helper()
	testenv.Tool(t, "bpftool")
	out, err := exec.Command("bpftool", "-j", "map", "show", "name", GateMapName).CombinedOutput()
	if err != nil {
		t.Fatalf("bpftool map show name %s: %v\n%s", GateMapName, err, out)
	}
	if !bytes.Contains(out, []byte(fmt.Sprintf(`"id":%d,`, g.MapID()))) {
		t.Errorf("bpftool map show name %s does not list map id %d:\n%s", GateMapName, g.MapID(), out)
	}
	if out, err := exec.Command("bpftool", "map", "dump", "name", GateMapName).CombinedOutput(); err != nil {
		t.Errorf("bpftool map dump name %s: %v\n%s", GateMapName, err, out)
	}
	out, err = exec.Command("bpftool", "-j", "map", "dump", "id", fmt.Sprint(g.MapID())).CombinedOutput()
	if err != nil {
		t.Fatalf("bpftool map dump id %d: %v\n%s", g.MapID(), err, out)
	}
	var entries []struct {
		Formatted struct { // the map's BTF makes bpftool print this
			Key   uint32 `json:"key"`
			Value uint32 `json:"value"`
		} `json:"formatted"`
	}
	if err := json.Unmarshal(out, &entries); err != nil || len(entries) != 1 || entries[0].Formatted.Value != role {
		t.Errorf("bpftool map dump id %d = %s (%v); want one entry with value %d", g.MapID(), out, err, role)
	}
}

// The loss injector on a veth pair: the test sends from va (egress, where
// the injector sits) and counts at vb.
func TestLossOnVeth(t *testing.T) {
	ns := testenv.NetNS(t, "ftbpf")
	testenv.Run(t, "ip", "-n", ns, "link", "add", "va", "type", "veth", "peer", "name", "vb")
	testenv.Run(t, "ip", "-n", ns, "link", "set", "va", "up")
	testenv.Run(t, "ip", "-n", ns, "link", "set", "vb", "up")
	capt := openCapture(t, ns, "vb")
	var lo *Loss
	var sendFd, vaIdx int
	err := testenv.InNetNS(ns, func() (err error) {
		if lo, err = AttachLoss("va", Egress, 1000, 0x88b5); err != nil {
			return err
		}
		if vaIdx, err = ifindex("va"); err != nil {
			return err
		}
		sendFd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sendFd)
	defer lo.Close()
	if lo.Hook() != HookTCX {
		t.Errorf("loss hook %q, want tcx", lo.Hook())
	}
	// send sends n frames and returns how many the kernel reported dropped:
	// a frame dropped at egress fails its send with ENOBUFS.
	send := func(tag string, et uint16, n int) (dropped int) {
		t.Helper()
		for i := 0; i < n; i++ {
			f := testFrame(tag, i)
			binary.BigEndian.PutUint16(f[12:], et)
			err := unix.Sendto(sendFd, f, 0, &unix.SockaddrLinklayer{Ifindex: vaIdx, Halen: 6, Protocol: htons(et)})
			switch {
			case errors.Is(err, unix.ENOBUFS):
				dropped++
			case err != nil:
				t.Fatalf("send on va: %v", err)
			}
		}
		return dropped
	}
	const n = 50
	if d := send("log", 0x88b5, n); d != n {
		t.Errorf("1000‰: %d of %d sends of 0x88B5 failed with ENOBUFS, want all", d, n)
	}
	if d := send("other", testType, n); d != 0 {
		t.Errorf("1000‰ for 0x88B5: %d sends of another EtherType failed with ENOBUFS", d)
	}
	if got := capt.count(t, "other", n, 2*time.Second); got != n {
		t.Errorf("1000‰ for 0x88B5: %d of %d other frames arrived, want all", got, n)
	}
	if got := capt.count(t, "log", 0, 200*time.Millisecond); got != 0 {
		t.Errorf("1000‰: %d of %d 0x88B5 frames arrived, want none", got, n)
	}
	s, err := lo.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.DroppedFrames != n || s.PassedFrames != 0 || s.OtherFrames < n {
		t.Errorf("stats %+v, want %d dropped, 0 passed, >= %d other", s, n, n)
	}
	if err := lo.SetRate(0); err != nil {
		t.Fatal(err)
	}
	if err := lo.SetRate(1001); err == nil {
		t.Error("SetRate(1001) accepted")
	}
	if d := send("log0", 0x88b5, n); d != 0 {
		t.Errorf("0‰: %d sends failed with ENOBUFS", d)
	}
	if got := capt.count(t, "log0", n, 2*time.Second); got != n {
		t.Errorf("0‰: %d of %d 0x88B5 frames arrived, want all", got, n)
	}
	if s, _ := lo.Stats(); s.PassedFrames != n {
		t.Errorf("0‰: passed %d, want %d", s.PassedFrames, n)
	}
	if err := lo.Close(); err != nil {
		t.Fatal(err)
	}
}

// Closing a gate whose device is already gone succeeds, by either hook.
func TestGateCloseAfterDeviceGone(t *testing.T) {
	ns := testenv.NetNS(t, "ftbpf")
	testenv.Tool(t, "tc")
	for _, forceTC := range []bool{false, true} {
		testenv.Run(t, "ip", "-n", ns, "link", "add", "va", "type", "veth", "peer", "name", "vb")
		var g *Gate
		if err := testenv.InNetNS(ns, func() (err error) {
			g, err = AttachGate("va", GateOptions{ForceTC: forceTC})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		testenv.Run(t, "ip", "-n", ns, "link", "del", "va")
		if err := g.Close(); err != nil {
			t.Errorf("%s: close after the device went: %v", g.Hook(), err)
		}
	}
}
