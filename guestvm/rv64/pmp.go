package rv64

// Physical memory protection, as QEMU 7.2 implements it for -cpu rv64 (no
// ePMP): 16 entries, pmpcfg0 and pmpcfg2, pmpaddr0..15. Every S- and U-mode
// access (after translation, and every page-table read as an S-mode load) is
// checked; M-mode accesses only against locked entries. The lowest-numbered
// active entry that contains any byte of the access decides: the access must
// lie wholly inside it and have its permission, else it raises an access
// fault. An access no entry matches succeeds in M-mode and fails in S and U
// (even when no entry is active: PMP is implemented). pmpcfg bytes are
// stored as written, the reserved W-without-R combination included (it then
// allows stores but not loads); pmpaddr holds all 64 bits written.
//
// Departures from QEMU 7.2, where QEMU departs from the spec: a TOR entry
// whose pmpaddr is not above the previous entry's matches nothing (QEMU
// matches only address 0, or, for pmpaddr = 0 after pmpaddr = 0, every
// address); the ranges always follow the current pmpaddr values (QEMU
// recomputes a TOR entry's range only when its own pmpcfg or pmpaddr is
// written, not when the previous pmpaddr is) and every PMP write takes
// effect at once (QEMU 7.2 flushes its TLB on pmpcfg writes only).
//
// The fast paths never see PMP: a page goes into a TLB only when one entry
// (or none) decides for all of it and allows the access type, and every PMP
// write flushes the TLBs. With PMP applying to the mode, even untranslated
// accesses go through the TLB (as identity entries), so the check is paid
// once per page, not per access.

const (
	pmpCount = 16

	pmpR   = 1 << 0
	pmpW   = 1 << 1
	pmpX   = 1 << 2
	pmpA   = 3 << 3
	pmpL   = 1 << 7
	pmpTOR = 1 << 3
	pmpNA4 = 2 << 3
	pmpNAP = 3 << 3
)

// pmpPerm maps an access type to the pmpcfg permission bit it needs.
var pmpPerm = [3]uint8{accFetch: pmpX, accLoad: pmpR, accStore: pmpW}

// pmpUpdate recomputes the derived PMP state (ranges, the number of active
// entries, whether any is locked) after a PMP CSR write or a restore, and
// drops every cached translation.
func (c *CPU) pmpUpdate() {
	c.pmpActive, c.pmpRules, c.pmpLocked = 0, 0, false
	for i := 0; i < pmpCount; i++ {
		cfg := c.pmpcfg[i]
		if cfg&pmpA != 0 {
			c.pmpRules++
		}
		a := c.pmpaddr[i]
		var sa, ea uint64
		on := true
		switch cfg & pmpA {
		case 0:
			on = false
		case pmpTOR:
			var prev uint64
			if i > 0 {
				prev = c.pmpaddr[i-1]
			}
			sa, ea = prev<<2, a<<2-1
			if prev<<2 >= a<<2 {
				on = false // empty
			}
		case pmpNA4:
			sa = a << 2
			ea = sa + 3
		case pmpNAP:
			sa, ea = napot(a)
		}
		c.pmpSA[i], c.pmpEA[i] = sa, ea
		if on {
			c.pmpOn |= 1 << i
			c.pmpActive++
			if cfg&pmpL != 0 {
				c.pmpLocked = true
			}
		} else {
			c.pmpOn &^= 1 << i
		}
	}
	c.flushTLB()
}

// napot decodes a NAPOT pmpaddr as QEMU does: the trailing ones give the
// size, all ones the whole address space.
func napot(a uint64) (sa, ea uint64) {
	t := uint(0)
	for t < 64 && a>>t&1 != 0 {
		t++
	}
	if t+3 >= 64 {
		return 0, ^uint64(0)
	}
	base := (a &^ (1<<t - 1)) << 2
	return base, base + 1<<(t+3) - 1
}

// pmpAllows reports whether PMP lets mode access [pa, pa+n) with acc.
func (c *CPU) pmpAllows(pa, n uint64, acc int, mode uint8) bool {
	if c.pmpActive == 0 {
		return mode == PrivM
	}
	last := pa + n - 1
	for i := 0; i < pmpCount; i++ {
		if c.pmpOn>>i&1 == 0 {
			continue
		}
		sa, ea := c.pmpSA[i], c.pmpEA[i]
		s := pa >= sa && pa <= ea
		e := last >= sa && last <= ea
		if s != e {
			return false // partly inside
		}
		if s {
			cfg := c.pmpcfg[i]
			if mode == PrivM && cfg&pmpL == 0 {
				return true
			}
			return cfg&pmpPerm[acc] != 0
		}
	}
	return mode == PrivM
}

// pmpPage reports whether every access of type acc by mode to the 4 KiB
// page holding pa is allowed, so that the page may be cached in a TLB.
func (c *CPU) pmpPage(pa uint64, acc int, mode uint8) bool {
	if mode == PrivM && !c.pmpLocked {
		return true
	}
	base := pa &^ (pageSize - 1)
	end := base + pageSize - 1
	for i := 0; i < pmpCount; i++ {
		if c.pmpOn>>i&1 == 0 {
			continue
		}
		sa, ea := c.pmpSA[i], c.pmpEA[i]
		if ea < base || sa > end {
			continue
		}
		if sa > base || ea < end {
			return false // decides for part of the page only
		}
		cfg := c.pmpcfg[i]
		if mode == PrivM && cfg&pmpL == 0 {
			return true
		}
		return cfg&pmpPerm[acc] != 0
	}
	return mode == PrivM
}

// pmpApplies reports whether accesses by mode are checked at all.
func (c *CPU) pmpApplies(mode uint8) bool { return mode < PrivM || c.pmpLocked }
