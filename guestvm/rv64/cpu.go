package rv64

// Bus is everything that is not RAM, addressed physically. size is 1, 2, 4
// or 8. ok=false makes the CPU raise an access fault. Implementations may
// call SetIRQ and RequestStop on the CPU from inside Read and Write.
type Bus interface {
	Read(addr uint64, size int) (val uint64, ok bool)
	Write(addr uint64, size int, val uint64) (ok bool)
}

// Stop tells why Run returned.
type Stop uint8

const (
	// StopBudget: exactly budget instructions were executed.
	StopBudget Stop = iota
	// StopIdle: a WFI retired with no interrupt pending and enabled.
	StopIdle
	// StopRequested: RequestStop was called during the last instruction.
	StopRequested
)

func (s Stop) String() string {
	switch s {
	case StopBudget:
		return "budget"
	case StopIdle:
		return "idle"
	case StopRequested:
		return "requested"
	}
	return "unknown"
}

// Privilege levels.
const (
	PrivU uint8 = 0
	PrivS uint8 = 1
	PrivM uint8 = 3
)

const (
	pageShift = 12
	pageSize  = 1 << pageShift
	slotsPer  = pageSize / 2
	tlbSize   = 256
	tlbMask   = tlbSize - 1
	noTag     = ^uint64(0)
)

// codePage is the decode cache of one physical RAM page: one slot per
// halfword, decoded lazily on first execution.
type codePage struct {
	slots [slotsPer]inst
	off   uint64 // RAM offset of the page
	gen   uint32 // equals CPU.codeGen when the slots are current
}

// tlbEntry maps a virtual page (tag = va>>12) to RAM: off = va + add.
type tlbEntry struct {
	tag uint64
	add uint64
}

// tlbSet caches translations for one effective privilege (U or S).
type tlbSet struct {
	r, w, x [tlbSize]tlbEntry
}

// CPU is one RV64IMAFDC hart with M/S/U modes and Sv39/48/57 paging.
type CPU struct {
	x    [256]uint64 // x[0..31]; x[sink] absorbs writes to x0; 256 so a uint8 index needs no bounds check
	pc   uint64
	priv uint8
	f    [32]uint64 // f registers; singles NaN-boxed
	fcsr uint64     // frm<<5 | fflags

	ram     []byte
	ramBase uint64
	ramSize uint64
	bus     Bus

	icount  uint64 // instructions retired before the executing one
	cur     uint64 // 1 while an instruction executes out of the fast path
	stopReq bool
	tmp     inst // instruction straddling a page boundary, decoded per execution

	// Machine CSRs.
	mstatus       uint64
	medeleg       uint64
	mideleg       uint64
	mie           uint64
	swip          uint64 // software-writable part of mip
	hwip          uint64 // lines driven by devices (SetIRQ)
	mtvec         uint64
	mscratch      uint64
	mepc          uint64
	mcause        uint64
	mtval         uint64
	mcounteren    uint64
	menvcfg       uint64
	mcountinhibit uint64
	cycleOff      uint64 // mcycle = icount + cycleOff (while not inhibited)
	instretOff    uint64
	cycleHeld     uint64 // value while inhibited
	instretHeld   uint64
	hpmcounter    [29]uint64
	hpmevent      [29]uint64
	pmpcfg        [pmpCount]uint8
	pmpaddr       [pmpCount]uint64

	// Debug triggers (QEMU 7.2's two, as CSR state only: they never fire).
	tselect uint64
	tdata1  [trigCount]uint64
	tdata2  [trigCount]uint64

	// Supervisor CSRs.
	stvec      uint64
	sscratch   uint64
	sepc       uint64
	scause     uint64
	stval      uint64
	satp       uint64
	scounteren uint64
	senvcfg    uint64

	// LR/SC reservation, QEMU style: address and loaded value.
	resAddr uint64
	resVal  uint64

	timeSrc func() uint64

	// Derived PMP state (recomputed by pmpUpdate).
	pmpSA, pmpEA [pmpCount]uint64 // byte range of each entry
	pmpOn        uint32           // entries that match something
	pmpActive    int              // number of bits in pmpOn
	pmpRules     int              // entries with A != OFF (QEMU's rule count)
	pmpLocked    bool             // some active entry is locked: M is checked too

	// Derived translation state (recomputed by updateMMU).
	dataPaging  bool
	fetchPaging bool
	dataTLB     bool      // data accesses go through dtlb (paging or PMP applies)
	fetchTLB    bool      // fetches go through itlb
	dtlb        *tlbSet   // data TLB for the effective data privilege
	itlb        *tlbSet   // fetch TLB for the current privilege
	tlbs        [3]tlbSet // U, S, M (M only while a PMP entry is locked)

	// Decode cache.
	code    []*codePage // per RAM page, nil until executed
	codeMap []uint8     // mapCode|mapTrack flags per RAM page; the store fast path leaves pages with any flag to the slow path
	codeGen uint32

	// Write tracking for incremental digests: a page with mapTrack set is
	// clean; the first store to it takes the slow path, which clears the
	// flag and records the page here. The fast path pays nothing.
	dirty []uint8
}

// codeMap flags.
const (
	mapCode  uint8 = 1 // code[i] != nil: stores must invalidate decoded slots
	mapTrack uint8 = 2 // page is clean: the next store marks it dirty
)

// New returns a CPU over guest RAM at ramBase (its length should be a whole
// number of pages) and bus for everything else. Call Reset before Run.
func New(ram []byte, ramBase uint64, bus Bus) *CPU {
	ram = ram[:len(ram)&^(pageSize-1)]
	c := &CPU{ram: ram, ramBase: ramBase, ramSize: uint64(len(ram)), bus: bus}
	np := len(ram) / pageSize
	c.code = make([]*codePage, np)
	c.codeMap = make([]uint8, np)
	c.dirty = make([]uint8, np)
	for i := range c.dirty {
		c.dirty[i] = 1 // untracked until TakeDirty arms the page
	}
	c.Reset(ramBase)
	return c
}

const (
	misaValue    = 2<<62 | 1<<0 | 1<<2 | 1<<3 | 1<<5 | 1<<8 | 1<<12 | 1<<18 | 1<<20 // RV64 A C D F I M S U
	mstatusReset = 2<<32 | 2<<34                                                    // UXL = SXL = 64-bit; FS Off
)

// Reset puts the hart in M-mode with every register and CSR at its reset
// value and PC at pc. RAM is untouched.
func (c *CPU) Reset(pc uint64) {
	ram, base, size, bus, ts := c.ram, c.ramBase, c.ramSize, c.bus, c.timeSrc
	code, cmap, dirty := c.code, c.codeMap, c.dirty
	*c = CPU{ram: ram, ramBase: base, ramSize: size, bus: bus, timeSrc: ts, code: code, codeMap: cmap, dirty: dirty}
	c.pc = pc
	c.priv = PrivM
	c.mstatus = mstatusReset
	c.resAddr = noTag
	for i := range c.tdata1 {
		c.tdata1[i] = trigType2
	}
	c.codeGen++ // every decoded page is stale
	for i := range c.code {
		if c.code[i] != nil {
			c.code[i].gen = 0
		}
	}
	c.pmpUpdate() // flushes the TLBs
	c.updateMMU()
}

// Reg returns x[i] (0 for i out of range).
func (c *CPU) Reg(i int) uint64 {
	if i <= 0 || i >= 32 {
		return 0
	}
	return c.x[i]
}

// SetReg sets x[i]; writes to x0 or out-of-range indices are ignored.
func (c *CPU) SetReg(i int, v uint64) {
	if i > 0 && i < 32 {
		c.x[i] = v
	}
}

// PC returns the address of the next instruction.
func (c *CPU) PC() uint64 { return c.pc }

// SetPC sets the address of the next instruction.
func (c *CPU) SetPC(pc uint64) { c.pc = pc &^ 1 }

// Priv returns the current privilege level (0 U, 1 S, 3 M).
func (c *CPU) Priv() uint8 { return c.priv }

// ICount returns the number of instructions executed since Reset. Called from
// inside a Bus callback it includes the instruction doing the access.
func (c *CPU) ICount() uint64 { return c.icount + c.cur }

// SetIRQ raises or lowers device-driven mip bits (MSIP, MTIP, SEIP, MEIP).
// Pending interrupts are taken at the next instruction boundary.
func (c *CPU) SetIRQ(mask uint64, level bool) {
	mask &= hwIRQMask
	if level {
		c.hwip |= mask
	} else {
		c.hwip &^= mask
	}
}

// RequestStop makes Run return StopRequested after the current instruction.
func (c *CPU) RequestStop() { c.stopReq = true }

// SetTimeSource sets the function giving the time CSR; it is called only when
// the guest reads time. Without one, time reads as the instruction count.
func (c *CPU) SetTimeSource(f func() uint64) { c.timeSrc = f }

// InterruptPending reports whether some interrupt is pending and locally
// enabled (mip & mie != 0), regardless of global enables: WFI's wake condition.
func (c *CPU) InterruptPending() bool { return c.mip()&c.mie != 0 }

// InvalidateCode drops decoded instructions covering physical [addr, addr+n),
// for writes to RAM that bypass the CPU (device DMA).
func (c *CPU) InvalidateCode(addr, n uint64) {
	if n == 0 || addr < c.ramBase {
		return
	}
	off := addr - c.ramBase
	if off >= c.ramSize {
		return
	}
	if n > c.ramSize-off {
		n = c.ramSize - off
	}
	for p := off >> pageShift; p <= (off+n-1)>>pageShift; p++ {
		if c.codeMap[p]&mapCode != 0 {
			c.code[p].gen = 0
		}
		c.markDirty(p)
	}
}

// markDirty records that RAM page p was written.
func (c *CPU) markDirty(p uint64) {
	c.codeMap[p] &^= mapTrack
	c.dirty[p] = 1
}

// TakeDirty calls f with the index of every RAM page written since the last
// call (or never reported yet), in ascending order, and starts tracking
// those pages again. RAM written outside the CPU must be reported with
// InvalidateCode, which also marks it dirty.
func (c *CPU) TakeDirty(f func(page uint64)) {
	for p, d := range c.dirty {
		if d != 0 {
			f(uint64(p))
			c.dirty[p] = 0
			c.codeMap[p] |= mapTrack
		}
	}
}

// Written reports whether RAM page p was written since TakeDirty last
// reported it (every page is, until the first TakeDirty).
func (c *CPU) Written(p uint64) bool { return c.dirty[p] != 0 }

// MarkAllDirty reports every page as written at the next TakeDirty (after a
// whole-RAM load or restore).
func (c *CPU) MarkAllDirty() {
	for p := range c.dirty {
		c.markDirty(uint64(p))
	}
}

func (c *CPU) mip() uint64 { return c.swip | c.hwip }
