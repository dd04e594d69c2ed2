package rv64

import (
	"bytes"
	"testing"

	"ftbox/guestvm/snap"
)

func TestNAPOTDecode(t *testing.T) {
	for _, tc := range []struct{ a, sa, ea uint64 }{
		{0x20000000, 0x80000000, 0x80000007}, // 8 bytes
		{0x200001ff, 0x80000000, 0x80000fff}, // 4 KiB
		{^uint64(0) >> 10, 0, 1<<57 - 1},     // firmware's "everything"
		{^uint64(0), 0, ^uint64(0)},          // all ones
		{^uint64(0) >> 3, 0, ^uint64(0)},     // 2^64 bytes and more
	} {
		if sa, ea := napot(tc.a); sa != tc.sa || ea != tc.ea {
			t.Errorf("napot(%#x) = %#x..%#x, want %#x..%#x", tc.a, sa, ea, tc.sa, tc.ea)
		}
	}
}

func setPMP(c *CPU, i int, cfg uint8, addr uint64) {
	c.pmpcfg[i], c.pmpaddr[i] = cfg, addr
	c.pmpUpdate()
	c.updateMMU()
}

func TestPMPMatching(t *testing.T) {
	c, _ := newTest(t)
	page := uint64(ramBaseT + 0x8000)
	if c.pmpAllows(page, 8, accLoad, PrivS) || !c.pmpAllows(page, 8, accLoad, PrivM) {
		t.Fatal("no entries: S must be denied, M allowed")
	}
	setPMP(c, 15, pmpNAP|pmpR|pmpW|pmpX, ^uint64(0)>>10)
	setPMP(c, 0, pmpNAP|pmpR, page>>2|0x1ff)               // page: R only
	setPMP(c, 1, 0, (page+0x1000)>>2)                      // TOR base
	setPMP(c, 2, pmpTOR, (page+0x1800)>>2)                 // [page+4K, +6K): nothing
	setPMP(c, 3, pmpNA4|pmpW, (page+0x2000)>>2)            // W without R, as stored
	setPMP(c, 4, pmpTOR|pmpR|pmpW|pmpX, (page+0x1000)>>2)  // empty: below entry 3's address
	setPMP(c, 5, pmpNAP|pmpL|pmpR, (page+0x3000)>>2|0x1ff) // locked R
	for _, tc := range []struct {
		pa   uint64
		n    uint64
		acc  int
		mode uint8
		ok   bool
	}{
		{page, 8, accLoad, PrivS, true},
		{page, 8, accStore, PrivU, false},
		{page, 8, accStore, PrivM, true},         // not locked
		{page + 0xffc, 8, accLoad, PrivS, false}, // partly in entry 0
		{page + 0x1000, 1, accLoad, PrivS, false},
		{page + 0x17ff, 1, accLoad, PrivS, false},
		{page + 0x1800, 8, accStore, PrivS, true}, // entry 15
		{page + 0x2000, 4, accStore, PrivS, true},
		{page + 0x2000, 4, accLoad, PrivS, false},
		{page + 0x2000, 8, accStore, PrivS, false}, // partly in the NA4 entry
		{page + 0x3000, 8, accLoad, PrivM, true},
		{page + 0x3000, 8, accStore, PrivM, false}, // locked applies to M
		{page + 0x3000, 4, accFetch, PrivM, false},
		{page + 0x4000, 4, accFetch, PrivU, true},
		{1 << 58, 4, accLoad, PrivS, false}, // beyond entry 15's 2^57 bytes
	} {
		if got := c.pmpAllows(tc.pa, tc.n, tc.acc, tc.mode); got != tc.ok {
			t.Errorf("pmpAllows(%#x, %d, %d, priv %d) = %v", tc.pa, tc.n, tc.acc, tc.mode, got)
		}
	}
	if !c.pmpLocked || c.pmpRules != 6 || c.pmpActive != 5 {
		t.Errorf("locked %v rules %d active %d", c.pmpLocked, c.pmpRules, c.pmpActive)
	}
	// Pages that one entry decides wholly may be cached; others not.
	if !c.pmpPage(page, accLoad, PrivS) || c.pmpPage(page, accStore, PrivS) ||
		c.pmpPage(page+0x1000, accLoad, PrivS) || c.pmpPage(page+0x2000, accStore, PrivS) ||
		!c.pmpPage(page+0x5000, accStore, PrivU) || c.pmpPage(page+0x3000, accStore, PrivM) {
		t.Error("pmpPage")
	}
}

func TestPMPLockedWrites(t *testing.T) {
	c, _ := newTest(t)
	c.csrWrite(csrPmpaddr0+1, 0x1234)
	c.csrWrite(csrPmpcfg0, uint64(pmpL|pmpTOR)<<16|uint64(pmpL|pmpNAP)<<8)
	c.csrWrite(csrPmpcfg0, 0)
	c.csrWrite(csrPmpaddr0+1, 0x99) // locked itself
	c.csrWrite(csrPmpaddr0, 0x77)   // not locked
	c.csrWrite(csrPmpaddr0+2, 0x55) // entry 2 locked
	if v, _ := c.CSR(csrPmpcfg0); v != uint64(pmpL|pmpTOR)<<16|uint64(pmpL|pmpNAP)<<8 {
		t.Errorf("pmpcfg0 = %#x", v)
	}
	if c.pmpaddr[0] != 0x77 || c.pmpaddr[1] != 0x1234 || c.pmpaddr[2] != 0 {
		t.Errorf("pmpaddr %#x", c.pmpaddr[:3])
	}
	c.csrWrite(csrPmpcfg0, 0)
	c.csrWrite(csrPmpcfg0+2, 0)
	for _, n := range []uint16{0x3a1, 0x3a4, 0x3c0} { // QEMU 7.2: 16 entries
		if _, ok := c.CSR(n); ok {
			t.Errorf("CSR %#x exists", n)
		}
	}
	if _, ok := c.CSR(csrPmpaddr0 + 15); !ok {
		t.Error("pmpaddr15 missing")
	}
}

// TestPMPFlushesTLB: a page cached for S-mode loads (an identity entry: no
// paging) faults once PMP revokes it, on the fast path too.
func TestPMPFlushesTLB(t *testing.T) {
	c, _ := newTest(t, LD(1, 2, 0), LD(1, 2, 8), JAL(0, -8))
	c.x[2] = ramBaseT + 0x8000
	c.mtvec = ramBaseT + 0x4000
	putU64(c.ram[0x4000:], uint64(JAL(0, 0))) // the handler spins
	setPMP(c, 15, pmpNAP|pmpR|pmpW|pmpX, ^uint64(0)>>10)
	c.priv = PrivS
	c.updateMMU()
	c.Run(1000)
	if c.priv != PrivS || c.mcause != 0 {
		t.Fatalf("priv %d mcause %d", c.priv, c.mcause)
	}
	if e := c.dtlb.r[((ramBaseT+0x8000)>>pageShift)&tlbMask]; e.tag != (ramBaseT+0x8000)>>pageShift {
		t.Fatal("page not cached")
	}
	c.csrWrite(csrPmpaddr0, (ramBaseT+0x8000)>>2|0x1ff)
	c.csrWrite(csrPmpcfg0, pmpNAP) // no permissions
	c.Run(10)
	if c.priv != PrivM || c.mcause != excLoadAccess || c.mtval&^8 != ramBaseT+0x8000 {
		t.Fatalf("priv %d mcause %d mtval %#x", c.priv, c.mcause, c.mtval)
	}
}

func TestMretWithoutPMP(t *testing.T) {
	mret := uint32(0x30200073)
	c, _ := newTest(t, mret)
	c.mtvec = ramBaseT + 0x100
	c.mepc = ramBaseT + 0x40
	c.mstatus = c.mstatus&^msMPP | uint64(PrivS)<<11
	c.Run(1)
	if c.mcause != excIllegal || c.PC() != ramBaseT+0x100 {
		t.Fatalf("mcause %d pc %#x: QEMU 7.2 makes mret to S illegal with no PMP entry", c.mcause, c.PC())
	}
}

func TestTriggerCSRs(t *testing.T) {
	c, _ := newTest(t)
	if v := c.mustCSR(t, csrTdata1); v != trigType2 {
		t.Fatalf("tdata1 reset %#x", v)
	}
	for _, tc := range []struct{ w, want uint64 }{
		{^uint64(0), trigType2},                  // type 15 ignored
		{0, trigType2},                           // type 0 ignored
		{0x28000000000000ff, 0x200000000000005f}, // dmode, match dropped
		{0x2000000000030000, 0x2000000000030000}, // size 4 bytes
		{0x2000000000200000, trigType2},          // size 6 bytes unsupported
		{0x6000000001ffffff, 0x600000000180005f},
		{0x6000000000050000, 0x6000000000050000},
		{0x5000000000000000, 0x6000000000050000}, // type 5 ignored
	} {
		c.csrWrite(csrTdata1, tc.w)
		if v := c.mustCSR(t, csrTdata1); v != tc.want {
			t.Errorf("write %#x: tdata1 %#x, want %#x", tc.w, v, tc.want)
		}
	}
	c.csrWrite(csrTselect, 1)
	c.csrWrite(csrTdata2, 0x123)
	c.csrWrite(csrTselect, 2) // ignored
	c.csrWrite(csrTdata3, 5)  // ignored
	if c.mustCSR(t, csrTselect) != 1 || c.mustCSR(t, csrTdata1) != trigType2 || c.mustCSR(t, csrTdata2) != 0x123 ||
		c.mustCSR(t, csrTdata3) != 0 || c.mustCSR(t, csrTinfo) != 0x44 {
		t.Error("trigger 1")
	}
	// PMP and trigger state survive a snapshot.
	setPMP(c, 3, pmpNAP|pmpR, 0x20000fff)
	var b bytes.Buffer
	c.Save(snap.NewWriter(&b))
	d, _ := newTest(t)
	if err := d.Restore(snap.NewReader(b.Bytes())); err != nil {
		t.Fatal(err)
	}
	if d.tselect != 1 || d.tdata2[1] != 0x123 || d.tdata1[0] != c.tdata1[0] || d.pmpActive != 1 ||
		d.pmpSA[3] != c.pmpSA[3] || d.pmpEA[3] != c.pmpEA[3] {
		t.Error("state lost in snapshot")
	}
}
