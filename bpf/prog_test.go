package bpf

import (
	"encoding/binary"
	"testing"

	"github.com/cilium/ebpf"

	"ftbox/tools/testenv"
)

// frame is an Ethernet frame of n bytes (n >= 14) from the guest's MAC to
// broadcast with EtherType et.
func frame(n int, et uint16) []byte {
	f := make([]byte, n)
	copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56})
	binary.BigEndian.PutUint16(f[12:], et)
	for i := 14; i < n; i++ {
		f[i] = byte(i)
	}
	return f
}

// runSKB runs prog once on data through BPF_PROG_TEST_RUN with a zeroed
// __sk_buff and returns the verdict and the skb mark the program left.
func runSKB(t *testing.T, prog *ebpf.Program, data []byte) (ret uint32, mark uint32) {
	t.Helper()
	ctxIn := make([]byte, skbSize)
	ctxOut := make([]byte, skbSize)
	ret, err := prog.Run(&ebpf.RunOptions{Data: data, Context: ctxIn, ContextOut: ctxOut})
	if err != nil {
		t.Fatalf("test run on %d bytes: %v", len(data), err)
	}
	return ret, binary.NativeEndian.Uint32(ctxOut[skbMark:])
}

func loadGateT(t *testing.T, mark uint32) *gateObjects {
	t.Helper()
	testenv.Root(t)
	o, err := loadGate(mark)
	if err != nil {
		t.Fatalf("%v", err) // includes the verifier log
	}
	t.Cleanup(o.close)
	return o
}

func gateStatsT(t *testing.T, o *gateObjects) GateStats {
	t.Helper()
	s, err := gateStats(o.stats)
	if err != nil {
		t.Fatalf("gate stats: %v", err)
	}
	return s
}

func setRole(t *testing.T, o *gateObjects, v uint32) {
	t.Helper()
	if err := o.role.Update(uint32(0), v, ebpf.UpdateAny); err != nil {
		t.Fatalf("set role %d: %v", v, err)
	}
}

func TestGateInstructionsSmall(t *testing.T) {
	insns := gateInstructions(DefaultMark)
	t.Logf("gate: %d instructions\n%v", len(insns), insns)
	if len(insns) > 40 {
		t.Errorf("gate has %d instructions; keep it small", len(insns))
	}
	if n := len(lossInstructions()); n > 50 {
		t.Errorf("loss injector has %d instructions; keep it small", n)
	}
}

func TestGateDropsByDefault(t *testing.T) {
	o := loadGateT(t, DefaultMark)
	var role uint32 = 99
	if err := o.role.Lookup(uint32(0), &role); err != nil || role != RoleDrop {
		t.Fatalf("fresh role = %d, %v; want %d (DROP)", role, err, RoleDrop)
	}
	ret, mark := runSKB(t, o.prog, frame(60, 0x0800))
	if ret != ActShot {
		t.Errorf("fresh gate verdict %d, want TC_ACT_SHOT (%d)", ret, ActShot)
	}
	if mark != 0 {
		t.Errorf("dropped frame marked %#x", mark)
	}
	want := GateStats{DroppedFrames: 1, DroppedBytes: 60}
	if s := gateStatsT(t, o); s != want {
		t.Errorf("stats %+v, want %+v", s, want)
	}
}

func TestGatePassMarks(t *testing.T) {
	for _, m := range []uint32{DefaultMark, 0x1234, 0xffff_ffff} {
		o := loadGateT(t, m)
		setRole(t, o, RolePass)
		ret, mark := runSKB(t, o.prog, frame(98, 0x0800))
		if ret != ActOK {
			t.Errorf("mark %#x: PASS verdict %d, want TC_ACT_OK (0)", m, ret)
		}
		if mark != m {
			t.Errorf("passed frame mark %#x, want %#x", mark, m)
		}
		want := GateStats{PassedFrames: 1, PassedBytes: 98}
		if s := gateStatsT(t, o); s != want {
			t.Errorf("stats %+v, want %+v", s, want)
		}
	}
}

// Any role other than PASS drops: the gate fails closed.
func TestGateFailsClosed(t *testing.T) {
	o := loadGateT(t, DefaultMark)
	for _, v := range []uint32{2, 0xffff_ffff, 0x100} {
		setRole(t, o, v)
		if ret, _ := runSKB(t, o.prog, frame(64, 0x0800)); ret != ActShot {
			t.Errorf("role %#x: verdict %d, want TC_ACT_SHOT", v, ret)
		}
	}
}

func TestGateCountsFlip(t *testing.T) {
	o := loadGateT(t, DefaultMark)
	var want GateStats
	sizes := []int{14, 60, 1514, 3000, 333} // test runs take at most a page
	for round := 0; round < 3; round++ {
		for _, n := range sizes {
			ret, _ := runSKB(t, o.prog, frame(n, 0x88b6))
			if ret != ActShot {
				t.Fatalf("DROP: verdict %d", ret)
			}
			want.DroppedFrames++
			want.DroppedBytes += uint64(n)
		}
		setRole(t, o, RolePass)
		for _, n := range sizes {
			ret, mark := runSKB(t, o.prog, frame(n, 0x88b6))
			if ret != ActOK || mark != DefaultMark {
				t.Fatalf("PASS: verdict %d mark %#x", ret, mark)
			}
			want.PassedFrames++
			want.PassedBytes += uint64(n)
		}
		setRole(t, o, RoleDrop)
	}
	// Repeat runs the program many times in one call.
	if _, err := o.prog.Run(&ebpf.RunOptions{Data: frame(100, 0x0800), Repeat: 1000}); err != nil {
		t.Fatalf("repeat run: %v", err)
	}
	want.DroppedFrames += 1000
	want.DroppedBytes += 100 * 1000
	if s := gateStatsT(t, o); s != want {
		t.Errorf("stats %+v, want %+v", s, want)
	}
}

func loadLossT(t *testing.T, permille uint32, et uint16) *lossObjects {
	t.Helper()
	testenv.Root(t)
	o, err := loadLoss(permille, et)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(o.close)
	return o
}

func lossStatsT(t *testing.T, o *lossObjects) LossStats {
	t.Helper()
	s, err := lossStats(o.stats)
	if err != nil {
		t.Fatalf("loss stats: %v", err)
	}
	return s
}

// runN runs the loss program n times on data and returns how many it dropped.
func runN(t *testing.T, prog *ebpf.Program, data []byte, n int) (dropped int) {
	t.Helper()
	for i := 0; i < n; i++ {
		ret, err := prog.Run(&ebpf.RunOptions{Data: data})
		if err != nil {
			t.Fatalf("test run: %v", err)
		}
		switch int32(ret) {
		case ActShot:
			dropped++
		case ActUnspec:
		default:
			t.Fatalf("loss verdict %d, want TC_ACT_SHOT or TC_ACT_UNSPEC", int32(ret))
		}
	}
	return dropped
}

func TestLossRates(t *testing.T) {
	const n = 2000
	for _, tc := range []struct {
		permille uint32
		min, max int
	}{
		{0, 0, 0},
		{1000, n, n},
		{500, 800, 1200}, // p=0.5: sd ≈ 22, so ±200 is 9 sd
		{100, 100, 300},  // p=0.1: sd ≈ 13
	} {
		o := loadLossT(t, tc.permille, 0)
		d := runN(t, o.prog, frame(80, 0x88b5), n)
		if d < tc.min || d > tc.max {
			t.Errorf("%d‰: dropped %d of %d, want %d..%d", tc.permille, d, n, tc.min, tc.max)
		}
		want := LossStats{PassedFrames: uint64(n - d), DroppedFrames: uint64(d)}
		if s := lossStatsT(t, o); s != want {
			t.Errorf("%d‰: stats %+v, want %+v", tc.permille, s, want)
		}
	}
}

func TestLossEtherTypeFilter(t *testing.T) {
	o := loadLossT(t, 1000, 0x88b5)
	if d := runN(t, o.prog, frame(80, 0x0800), 100); d != 0 {
		t.Errorf("IPv4 frames dropped: %d, want 0 (filter is 0x88B5)", d)
	}
	if d := runN(t, o.prog, frame(80, 0x88b5), 100); d != 100 {
		t.Errorf("0x88B5 frames dropped: %d, want 100", d)
	}
	if d := runN(t, o.prog, frame(80, 0xb588), 50); d != 0 {
		t.Errorf("byte-swapped EtherType dropped: %d, want 0", d)
	}
	want := LossStats{DroppedFrames: 100, OtherFrames: 150}
	if s := lossStatsT(t, o); s != want {
		t.Errorf("stats %+v, want %+v", s, want)
	}
	// SetRate's update path: down to 0‰, the filter stays.
	if err := o.cfg.Update(uint32(0), lossConfig{Permille: 0, EtherTypeRaw: etherTypeRaw(0x88b5)}, ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
	if d := runN(t, o.prog, frame(80, 0x88b5), 100); d != 0 {
		t.Errorf("0‰: dropped %d", d)
	}
}

func TestLossRejectsRate(t *testing.T) {
	if _, err := loadLoss(1001, 0); err == nil {
		t.Fatal("1001‰ accepted")
	}
}
