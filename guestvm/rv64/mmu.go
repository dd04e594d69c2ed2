package rv64

import "encoding/binary"

// Access types for translation.
const (
	accFetch = iota
	accLoad
	accStore
)

// PTE bits.
const (
	pteV = 1 << 0
	pteR = 1 << 1
	pteW = 1 << 2
	pteX = 1 << 3
	pteU = 1 << 4
	pteA = 1 << 6
	pteD = 1 << 7
)

var faultCause = [3]uint64{excInstPage, excLoadPage, excStorePage}
var accessCause = [3]uint64{excInstAccess, excLoadAccess, excStoreAccess}

// dataPriv is the privilege data accesses are checked with (MPRV applies).
func (c *CPU) dataPriv() uint8 {
	p := c.priv
	if p == PrivM && c.mstatus&msMPRV != 0 {
		p = uint8((c.mstatus & msMPP) >> 11)
		if p == 2 {
			p = PrivS
		}
	}
	return p
}

// updateMMU recomputes the derived translation state after a change of
// privilege, satp or mstatus.
func (c *CPU) updateMMU() {
	bare := c.satp>>60 == 0
	c.fetchPaging = !bare && c.priv < PrivM
	dp := c.dataPriv()
	c.dataPaging = !bare && dp < PrivM
	c.fetchTLB = c.fetchPaging || c.pmpApplies(c.priv)
	c.dataTLB = c.dataPaging || c.pmpApplies(dp)
	c.dtlb = &c.tlbs[tlbIndex[dp]]
	c.itlb = &c.tlbs[tlbIndex[c.priv]]
}

// tlbIndex selects a privilege's TLB set.
var tlbIndex = [4]uint8{PrivU: 0, PrivS: 1, 2: 1, PrivM: 2}

func flushSet(t *[tlbSize]tlbEntry) {
	for i := range t {
		t[i].tag = noTag
	}
}

// flushTLB drops every cached translation.
func (c *CPU) flushTLB() {
	for i := range c.tlbs {
		flushSet(&c.tlbs[i].r)
		flushSet(&c.tlbs[i].w)
		flushSet(&c.tlbs[i].x)
	}
	c.updateMMU()
}

// translate walks the page table for va. It returns the physical address,
// or ok=false and the exception cause. priv is U or S.
func (c *CPU) translate(va uint64, acc int, priv uint8) (pa uint64, cause uint64, ok bool) {
	levels := int(c.satp>>60) - 5 // Sv39: 3, Sv48: 4, Sv57: 5
	vaBits := uint(12 + 9*levels)
	if int64(va<<(64-vaBits))>>(64-vaBits) != int64(va) {
		return 0, faultCause[acc], false
	}
	a := (c.satp & (1<<44 - 1)) << pageShift
	for i := levels - 1; i >= 0; i-- {
		shift := uint(pageShift + 9*i)
		pteAddr := a + ((va>>shift)&511)*8
		if !c.pmpAllows(pteAddr, 8, accLoad, PrivS) { // QEMU checks PTE reads as S-mode loads
			return 0, accessCause[acc], false
		}
		off := pteAddr - c.ramBase
		if pteAddr < c.ramBase || off > c.ramSize-8 {
			return 0, faultCause[acc], false // QEMU 7.2: failed PTE read is a page fault
		}
		pte := binary.LittleEndian.Uint64(c.ram[off:])
		if pte&pteV == 0 || pte>>54 != 0 { // no Svpbmt/Svnapot: high bits reserved
			return 0, faultCause[acc], false
		}
		ppn := (pte >> 10) & (1<<44 - 1)
		rwx := pte & (pteR | pteW | pteX)
		if rwx == 0 { // pointer to the next level
			if pte&(pteD|pteA|pteU) != 0 || i == 0 {
				return 0, faultCause[acc], false
			}
			a = ppn << pageShift
			continue
		}
		switch {
		case rwx == pteW || rwx == pteW|pteX:
			return 0, faultCause[acc], false
		case pte&pteU != 0 && priv != PrivU && (c.mstatus&msSUM == 0 || acc == accFetch):
			return 0, faultCause[acc], false
		case pte&pteU == 0 && priv != PrivS:
			return 0, faultCause[acc], false
		case ppn&(1<<(9*uint(i))-1) != 0: // misaligned superpage
			return 0, faultCause[acc], false
		}
		switch acc {
		case accLoad:
			if pte&pteR == 0 && (pte&pteX == 0 || c.mstatus&msMXR == 0) {
				return 0, faultCause[acc], false
			}
		case accStore:
			if pte&pteW == 0 {
				return 0, faultCause[acc], false
			}
		case accFetch:
			if pte&pteX == 0 {
				return 0, faultCause[acc], false
			}
		}
		// Hardware A/D update, as QEMU does.
		npte := pte | pteA
		if acc == accStore {
			npte |= pteD
		}
		if npte != pte {
			binary.LittleEndian.PutUint64(c.ram[off:], npte)
			c.noteWrite(off, 8)
		}
		span := uint64(1) << shift
		return ppn<<pageShift | va&(span-1), 0, true
	}
	return 0, faultCause[acc], false
}

// translateFor translates va for an access of n bytes (within one page) at
// the current data or fetch privilege (pa = va when translation is off) and
// checks PMP for the result.
func (c *CPU) translateFor(va uint64, acc int, n uint64) (uint64, uint64, bool) {
	pa, mode := va, c.priv
	paging := c.fetchPaging
	if acc != accFetch {
		mode, paging = c.dataPriv(), c.dataPaging
	}
	if paging {
		var cause uint64
		var ok bool
		if pa, cause, ok = c.translate(va, acc, mode); !ok {
			return 0, cause, false
		}
	}
	if c.pmpApplies(mode) && !c.pmpAllows(pa, n, acc, mode) {
		return 0, accessCause[acc], false
	}
	return pa, 0, true
}

// cacheable reports whether a translation to pa may go into a TLB for acc at
// the current privilege: PMP allows that access to the whole page.
func (c *CPU) cacheable(pa uint64, acc int) bool {
	mode := c.priv
	if acc != accFetch {
		mode = c.dataPriv()
	}
	return c.pmpPage(pa, acc, mode)
}

// ramOff returns the RAM offset of [pa, pa+n) when it lies wholly in RAM.
func (c *CPU) ramOff(pa uint64, n uint64) (uint64, bool) {
	off := pa - c.ramBase
	if pa < c.ramBase || off >= c.ramSize || n > c.ramSize-off {
		return 0, false
	}
	return off, true
}

// fillTLB caches a successful translation of a RAM page.
func (c *CPU) fillTLB(t *[tlbSize]tlbEntry, va, pa uint64) {
	if _, ok := c.ramOff(pa&^(pageSize-1), pageSize); !ok {
		return
	}
	e := &t[(va>>pageShift)&tlbMask]
	e.tag = va >> pageShift
	e.add = (pa &^ (pageSize - 1)) - c.ramBase - (va &^ (pageSize - 1))
}

// straddlesRAM reports whether an access of size bytes at pa is partly in
// RAM (it is never larger than RAM, so its first or last byte is in RAM).
func (c *CPU) straddlesRAM(pa uint64, size int) bool {
	_, a := c.ramOff(pa, 1)
	_, b := c.ramOff(pa+uint64(size)-1, 1)
	return a || b
}

// physRead reads size bytes at physical pa from RAM or the bus.
func (c *CPU) physRead(pa uint64, size int) (uint64, bool) {
	if off, ok := c.ramOff(pa, uint64(size)); ok {
		return readRAM(c.ram[off:], size), true
	}
	if size > 1 && c.straddlesRAM(pa, size) {
		var v uint64
		for i := 0; i < size; i++ {
			b, ok := c.physRead(pa+uint64(i), 1)
			if !ok {
				return 0, false
			}
			v |= b << (8 * i)
		}
		return v, true
	}
	if c.bus == nil {
		return 0, false
	}
	return c.bus.Read(pa, size)
}

// physWrite writes size bytes at physical pa to RAM or the bus.
func (c *CPU) physWrite(pa uint64, size int, v uint64) bool {
	if off, ok := c.ramOff(pa, uint64(size)); ok {
		writeRAM(c.ram[off:], size, v)
		c.noteWrite(off, uint64(size))
		return true
	}
	if size > 1 && c.straddlesRAM(pa, size) {
		for i := 0; i < size; i++ {
			if !c.physWrite(pa+uint64(i), 1, v>>(8*i)) {
				return false
			}
		}
		return true
	}
	if c.bus == nil {
		return false
	}
	return c.bus.Write(pa, size, v)
}

func readRAM(b []byte, size int) uint64 {
	switch size {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(binary.LittleEndian.Uint16(b))
	case 4:
		return uint64(binary.LittleEndian.Uint32(b))
	}
	return binary.LittleEndian.Uint64(b)
}

func writeRAM(b []byte, size int, v uint64) {
	switch size {
	case 1:
		b[0] = byte(v)
	case 2:
		binary.LittleEndian.PutUint16(b, uint16(v))
	case 4:
		binary.LittleEndian.PutUint32(b, uint32(v))
	default:
		binary.LittleEndian.PutUint64(b, v)
	}
}

// noteWrite invalidates decoded instructions overlapping RAM [off, off+n).
func (c *CPU) noteWrite(off, n uint64) {
	for n > 0 {
		p := off >> pageShift
		o := off & (pageSize - 1)
		k := pageSize - o
		if k > n {
			k = n
		}
		if m := c.codeMap[p]; m != 0 {
			if m&mapCode != 0 {
				c.invalidate(off, k)
			}
			if m&mapTrack != 0 {
				c.markDirty(p)
			}
		}
		off += k
		n -= k
	}
}

// invalidate marks the slots of instructions that may overlap RAM
// [off, off+n) (within one page) for re-decoding.
func (c *CPU) invalidate(off, n uint64) {
	pg := c.code[off>>pageShift]
	o := off & (pageSize - 1)
	lo := uint64(0)
	if o >= 2 {
		lo = (o - 2) / 2
	}
	hi := (o + n - 1) / 2
	if hi >= slotsPer {
		hi = slotsPer - 1
	}
	for i := lo; i <= hi; i++ {
		pg.slots[i].op = opDecode
	}
}

// access translates and checks one data access of size bytes at va,
// returning per-page physical addresses (pa2 is used when the access
// crosses a page). On failure it returns the cause and tval.
func (c *CPU) access(va uint64, size int, acc int) (pa, pa2 uint64, cause, tval uint64, ok bool) {
	n1 := uint64(size)
	cross := va&(pageSize-1)+uint64(size) > pageSize
	if cross {
		n1 = pageSize - va&(pageSize-1)
	}
	pa, cause, ok = c.translateFor(va, acc, n1)
	if !ok {
		return 0, 0, cause, va, false
	}
	if cross {
		next := (va | (pageSize - 1)) + 1
		pa2, cause, ok = c.translateFor(next, acc, uint64(size)-n1)
		if !ok {
			return 0, 0, cause, next, false
		}
	}
	return pa, pa2, 0, 0, true
}

// load is the slow path of every load: translation, TLB fill, page-crossing
// and MMIO. On failure the trap has been taken and ok is false.
func (c *CPU) load(va uint64, size int) (uint64, bool) {
	pa, pa2, cause, tval, ok := c.access(va, size, accLoad)
	if !ok {
		c.trap(cause, tval)
		return 0, false
	}
	var v uint64
	if va&(pageSize-1)+uint64(size) > pageSize {
		n1 := int(pageSize - va&(pageSize-1))
		lo, ok1 := c.physRead2(pa, n1)
		hi, ok2 := c.physRead2(pa2, size-n1)
		if !ok1 || !ok2 {
			c.trap(excLoadAccess, va)
			return 0, false
		}
		return lo | hi<<(8*n1), true
	}
	if c.dataTLB && c.cacheable(pa, accLoad) {
		c.fillTLB(&c.dtlb.r, va, pa)
	}
	if _, inRAM := c.ramOff(pa, uint64(size)); inRAM || pa&uint64(size-1) == 0 {
		if v, ok = c.physRead(pa, size); !ok {
			c.trap(excLoadAccess, va)
			return 0, false
		}
		return v, true
	}
	// Misaligned outside RAM: like QEMU 7.2, two aligned accesses of the
	// same size, the lower first (its address is mtval if it fails).
	mis := pa & uint64(size-1)
	a1 := pa - mis
	r1, ok := c.physRead(a1, size)
	if !ok {
		c.trap(excLoadAccess, va-mis)
		return 0, false
	}
	r2, ok := c.physRead(a1+uint64(size), size)
	if !ok {
		c.trap(excLoadAccess, va-mis+uint64(size))
		return 0, false
	}
	sh := 8 * mis
	v = r1>>sh | r2<<(8*uint64(size)-sh)
	if size < 8 {
		v &= 1<<(8*uint64(size)) - 1
	}
	return v, true
}

// physRead2 reads n (1..7) bytes, which need not be a power of two.
func (c *CPU) physRead2(pa uint64, n int) (uint64, bool) {
	switch n {
	case 1, 2, 4:
		return c.physRead(pa, n)
	}
	var v uint64
	for i := 0; i < n; i++ {
		b, ok := c.physRead(pa+uint64(i), 1)
		if !ok {
			return 0, false
		}
		v |= b << (8 * i)
	}
	return v, true
}

// store is the slow path of every store.
func (c *CPU) store(va uint64, size int, v uint64) bool {
	pa, pa2, cause, tval, ok := c.access(va, size, accStore)
	if !ok {
		c.trap(cause, tval)
		return false
	}
	if va&(pageSize-1)+uint64(size) > pageSize {
		n1 := int(pageSize - va&(pageSize-1))
		for i := 0; i < size; i++ {
			p := pa + uint64(i)
			if i >= n1 {
				p = pa2 + uint64(i-n1)
			}
			if !c.physWrite(p, 1, v>>(8*i)) {
				c.trap(excStoreAccess, va)
				return false
			}
		}
		return true
	}
	if c.dataTLB && c.cacheable(pa, accStore) {
		c.fillTLB(&c.dtlb.w, va, pa)
	}
	if !c.physWrite(pa, size, v) {
		c.trap(excStoreAccess, va)
		return false
	}
	return true
}

// fetchPage returns the decode cache of the page holding pc, or takes an
// instruction fault and returns nil.
func (c *CPU) fetchPage(pc uint64) *codePage {
	var off uint64
	e := &c.itlb.x[(pc>>pageShift)&tlbMask]
	if c.fetchTLB && e.tag == pc>>pageShift {
		off = pc + e.add
	} else {
		pa, cause, ok := c.translateFor(pc, accFetch, 2)
		if !ok {
			c.trap(cause, pc)
			return nil
		}
		o, ok := c.ramOff(pa, 2)
		if !ok {
			c.trap(excInstAccess, pc)
			return nil
		}
		off = o
		if c.fetchTLB && c.cacheable(pa, accFetch) {
			c.fillTLB(&c.itlb.x, pc, pa)
		}
	}
	pn := off >> pageShift
	pg := c.code[pn]
	if pg == nil {
		pg = &codePage{off: pn << pageShift, gen: c.codeGen}
		c.code[pn] = pg
		c.codeMap[pn] |= mapCode
	} else if pg.gen != c.codeGen {
		pg.slots = [slotsPer]inst{}
		pg.gen = c.codeGen
	}
	return pg
}

// fetchCross decodes a 32-bit instruction whose upper half lies on the next
// page. It is not cached: the next page may map elsewhere tomorrow.
func (c *CPU) fetchCross(pc uint64, lo uint16) (*inst, bool) {
	next := pc + 2
	pa, cause, ok := c.translateFor(next, accFetch, 2)
	if !ok {
		c.trap(cause, next)
		return nil, false
	}
	off, ok := c.ramOff(pa, 2)
	if !ok {
		c.trap(excInstAccess, next)
		return nil, false
	}
	c.tmp = decode(lo, binary.LittleEndian.Uint16(c.ram[off:]))
	return &c.tmp, true
}

// flushCode makes every decoded page stale (FENCE.I).
func (c *CPU) flushCode() {
	c.codeGen++
	if c.codeGen == 0 {
		c.codeGen = 1
		for _, pg := range c.code {
			if pg != nil {
				pg.gen = 0
			}
		}
	}
}
