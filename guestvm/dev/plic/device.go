// Package plic is the SiFive PLIC of QEMU 7.2's virt machine, configured for
// one hart with two contexts: 0 = hart 0 M-mode (drives MEIP), 1 = hart 0
// S-mode (drives SEIP).
//
// Register layout (as QEMU's virt: priority base 0x4 so source n's priority
// is at 4n, pending at 0x1000, enables at 0x2000 + 0x80*ctx, threshold and
// claim/complete at 0x200000 + 0x1000*ctx). Accesses must be 32-bit and
// aligned (else an access fault); unimplemented registers inside the region
// read 0 and ignore writes, like QEMU.
//
// Sources are level-triggered behind a gateway: a high line makes the source
// pending unless it is claimed; a low line clears pending; claiming clears
// pending and marks the source in service; completing it re-pends it if the
// line is still high.
package plic

import (
	"math/bits"

	"ftbox/guestvm/dev"
)

// Layout and sizes.
const (
	Base = 0xc000000
	Size = 0x600000

	// NumSources counts source ids 0..95 (riscv,ndev = 96 in QEMU's dtb is
	// the same number); id 0 means "no interrupt" and never pends.
	NumSources  = 96
	NumContexts = 2
	MaxPriority = 7

	words = (NumSources + 31) / 32

	pendingBase   = 0x1000
	enableBase    = 0x2000
	enableStride  = 0x80
	contextBase   = 0x200000
	contextStride = 0x1000
)

// validMask[i] has a bit for every usable source (1..NumSources-1) in word i.
var validMask = func() (m [words]uint32) {
	for s := 1; s < NumSources; s++ {
		m[s/32] |= 1 << (s % 32)
	}
	return m
}()

// PLIC is the platform-level interrupt controller.
type PLIC struct {
	cpu dev.Lines

	priority  [NumSources]uint32
	level     [words]uint32 // input line levels
	pending   [words]uint32
	claimed   [words]uint32 // in service: claimed, not yet completed
	enable    [NumContexts][words]uint32
	threshold [NumContexts]uint32
}

var ctxLine = [NumContexts]uint64{dev.MEIP, dev.SEIP}

// New returns a PLIC in its reset state (everything zero).
func New(cpu dev.Lines) *PLIC {
	p := &PLIC{cpu: cpu}
	p.update()
	return p
}

// Reset clears priorities, enables, thresholds, pending and in-service bits.
// Line levels are kept (devices own them); high lines pend again.
func (p *PLIC) Reset() {
	lv := p.level
	*p = PLIC{cpu: p.cpu, level: lv, pending: lv}
	p.update()
}

// SetLevel implements dev.IRQSink. Source ids outside 1..NumSources-1 are
// ignored.
func (p *PLIC) SetLevel(source int, level bool) {
	if source <= 0 || source >= NumSources {
		return
	}
	w, b := source/32, uint32(1)<<(source%32)
	if level {
		p.level[w] |= b
		if p.claimed[w]&b == 0 {
			p.pending[w] |= b
		}
	} else {
		p.level[w] &^= b
		p.pending[w] &^= b
	}
	p.update()
}

// best returns the highest-priority pending, enabled, unclaimed source of
// ctx whose priority exceeds the threshold (lowest id wins ties), or 0.
func (p *PLIC) best(ctx int) uint32 {
	maxPrio := p.threshold[ctx]
	var maxIRQ uint32
	for i := 0; i < words; i++ {
		cand := p.pending[i] &^ p.claimed[i] & p.enable[ctx][i]
		for cand != 0 {
			j := bits.TrailingZeros32(cand)
			cand &^= 1 << j
			irq := uint32(i*32 + j)
			if pr := p.priority[irq]; pr > maxPrio {
				maxPrio, maxIRQ = pr, irq
			}
		}
	}
	return maxIRQ
}

func (p *PLIC) update() {
	for ctx := 0; ctx < NumContexts; ctx++ {
		p.cpu.SetIRQ(ctxLine[ctx], p.best(ctx) != 0)
	}
}

// Pending reports whether source is pending (for tests and debugging).
func (p *PLIC) Pending(source int) bool {
	if source <= 0 || source >= NumSources {
		return false
	}
	return p.pending[source/32]&(1<<(source%32)) != 0
}

func (p *PLIC) claim(ctx int) uint32 {
	irq := p.best(ctx)
	if irq != 0 {
		w, b := irq/32, uint32(1)<<(irq%32)
		p.pending[w] &^= b
		p.claimed[w] |= b
	}
	p.update()
	return irq
}

func (p *PLIC) complete(val uint64) {
	if val == 0 || val >= NumSources {
		return
	}
	w, b := val/32, uint32(1)<<(val%32)
	p.claimed[w] &^= b
	if p.level[w]&b != 0 {
		p.pending[w] |= b
	}
	p.update()
}

// Read implements dev.Device.
func (p *PLIC) Read(off uint64, size int) (uint64, bool) {
	if size != 4 || off%4 != 0 || off >= Size {
		return 0, false
	}
	switch {
	case off < pendingBase:
		if s := off / 4; s < NumSources {
			return uint64(p.priority[s]), true
		}
	case off < enableBase:
		if w := (off - pendingBase) / 4; w < words {
			return uint64(p.pending[w]), true
		}
	case off < contextBase:
		ctx, w := (off-enableBase)/enableStride, (off-enableBase)%enableStride/4
		if ctx < NumContexts && w < words {
			return uint64(p.enable[ctx][w]), true
		}
	default:
		ctx, reg := (off-contextBase)/contextStride, (off-contextBase)%contextStride
		if ctx < NumContexts {
			switch reg {
			case 0:
				return uint64(p.threshold[ctx]), true
			case 4:
				return uint64(p.claim(int(ctx))), true
			}
		}
	}
	return 0, true
}

// Write implements dev.Device.
func (p *PLIC) Write(off uint64, size int, val uint64) bool {
	if size != 4 || off%4 != 0 || off >= Size {
		return false
	}
	v := uint32(val)
	switch {
	case off < pendingBase:
		if s := off / 4; s > 0 && s < NumSources {
			p.priority[s] = v & MaxPriority
			p.update()
		}
	case off < enableBase:
		// pending bits are read-only
	case off < contextBase:
		ctx, w := (off-enableBase)/enableStride, (off-enableBase)%enableStride/4
		if ctx < NumContexts && w < words {
			p.enable[ctx][w] = v & validMask[w]
			p.update()
		}
	default:
		ctx, reg := (off-contextBase)/contextStride, (off-contextBase)%contextStride
		if ctx < NumContexts {
			switch reg {
			case 0:
				p.threshold[ctx] = v & MaxPriority
				p.update()
			case 4:
				p.complete(uint64(v))
			}
		}
	}
	return true
}
