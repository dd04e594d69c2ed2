// Package uart is the NS16550A of QEMU 7.2's virt machine, modelled on
// QEMU's hw/char/serial.c: 16-byte receive FIFO, DLAB divisor latch, the
// interrupt priorities of the IIR, loopback, and instantaneous transmission
// (a THR write hands the byte to out at once and THRE stays set).
//
// The receive timeout interrupt has no timer here: while the FIFO holds
// fewer bytes than its trigger level the IIR reports a character timeout
// (0xC) straight away, which drivers treat like received data.
package uart

import (
	"ftbox/guestvm/dev"
)

// Layout.
const (
	Base = 0x10000000
	Size = 0x100
	IRQ  = 10 // PLIC source in QEMU's virt

	FIFOSize = 16
)

// Register offsets (the region repeats every 8 bytes, as in QEMU).
const (
	regRBR = 0 // THR on write; DLL with DLAB
	regIER = 1 // DLM with DLAB
	regIIR = 2 // FCR on write
	regLCR = 3
	regMCR = 4
	regLSR = 5
	regMSR = 6
	regSCR = 7
)

// Register bits.
const (
	lcrDLAB = 0x80

	ierRDI  = 0x01
	ierTHRI = 0x02
	ierRLSI = 0x04
	ierMSI  = 0x08

	iirNoInt = 0x01
	iirID    = 0x0E
	iirMSI   = 0x00
	iirTHRI  = 0x02
	iirRDI   = 0x04
	iirRLSI  = 0x06
	iirCTI   = 0x0C
	iirFE    = 0xC0

	fcrFE  = 0x01
	fcrRFR = 0x02
	fcrXFR = 0x04

	lsrDR     = 0x01
	lsrOE     = 0x02
	lsrBI     = 0x10
	lsrTHRE   = 0x20
	lsrTEMT   = 0x40
	lsrIntAny = 0x1E

	mcrLoop = 0x10
	mcrOUT2 = 0x08

	msrDCD      = 0x80
	msrDSR      = 0x20
	msrCTS      = 0x10
	msrAnyDelta = 0x0F
)

// UART is one 16550A.
type UART struct {
	irq    dev.IRQSink
	source int
	out    func(b byte)

	divider    uint16
	rbr        byte // receive holding register when the FIFO is off
	ier        byte
	iir        byte
	lcr        byte
	mcr        byte
	lsr        byte
	msr        byte
	scr        byte
	fcr        byte
	thrPending bool // THR-empty interrupt pending (cleared by reading IIR)
	itl        int  // receive FIFO trigger level

	fifo  [FIFOSize]byte
	head  int // index of the oldest byte
	count int

	irqLevel bool
}

// New returns a UART in QEMU's reset state. out receives transmitted bytes;
// it must not call back into the UART.
func New(irq dev.IRQSink, source int, out func(b byte)) *UART {
	u := &UART{irq: irq, source: source, out: out}
	u.Reset()
	return u
}

// Reset puts the UART in QEMU's reset state (9600 8N1, OUT2 set, FIFO off).
func (u *UART) Reset() {
	u.divider = 0x0C
	u.rbr, u.ier, u.lcr, u.scr, u.fcr = 0, 0, 0, 0, 0
	u.iir = iirNoInt
	u.lsr = lsrTEMT | lsrTHRE
	u.msr = msrDCD | msrDSR | msrCTS
	u.mcr = mcrOUT2
	u.thrPending = false
	u.itl = 1
	u.head, u.count = 0, 0
	u.irqLevel = false
	u.updateIRQ()
	u.irq.SetLevel(u.source, u.irqLevel)
}

// Receive queues an input byte as if it arrived on the line. It returns
// false (and the byte is not taken) when the receiver is full: 16 bytes with
// the FIFO on, one unread byte with it off, or while in loopback mode.
func (u *UART) Receive(b byte) bool {
	if u.CanReceive() == 0 {
		return false
	}
	u.receive1(b)
	return true
}

// CanReceive reports how many bytes Receive would accept now.
func (u *UART) CanReceive() int {
	if u.mcr&mcrLoop != 0 {
		return 0
	}
	if u.fcr&fcrFE != 0 {
		return FIFOSize - u.count
	}
	if u.lsr&lsrDR != 0 {
		return 0
	}
	return 1
}

// receive1 is QEMU's serial_receive1: a full receiver overruns.
func (u *UART) receive1(b byte) {
	if u.fcr&fcrFE != 0 {
		if u.count == FIFOSize {
			u.lsr |= lsrOE
		} else {
			u.fifo[(u.head+u.count)%FIFOSize] = b
			u.count++
		}
	} else {
		if u.lsr&lsrDR != 0 {
			u.lsr |= lsrOE
		}
		u.rbr = b
	}
	u.lsr |= lsrDR
	u.updateIRQ()
}

func (u *UART) updateIRQ() {
	id := byte(iirNoInt)
	switch {
	case u.ier&ierRLSI != 0 && u.lsr&lsrIntAny != 0:
		id = iirRLSI
	case u.ier&ierRDI != 0 && u.lsr&lsrDR != 0:
		if u.fcr&fcrFE == 0 || u.count >= u.itl {
			id = iirRDI
		} else {
			id = iirCTI
		}
	case u.ier&ierTHRI != 0 && u.thrPending:
		id = iirTHRI
	case u.ier&ierMSI != 0 && u.msr&msrAnyDelta != 0:
		id = iirMSI
	}
	u.iir = id | u.iir&0xF0
	level := id != iirNoInt
	if level != u.irqLevel {
		u.irqLevel = level
		u.irq.SetLevel(u.source, level)
	}
}

// Read implements dev.Device. Byte accesses are the norm; wider ones are
// split into consecutive byte accesses, as QEMU does.
func (u *UART) Read(off uint64, size int) (uint64, bool) {
	if !valid(off, size) {
		return 0, false
	}
	var v uint64
	for i := 0; i < size; i++ {
		v |= uint64(u.readReg(int(off+uint64(i))&7)) << (8 * i)
	}
	return v, true
}

// Write implements dev.Device.
func (u *UART) Write(off uint64, size int, val uint64) bool {
	if !valid(off, size) {
		return false
	}
	for i := 0; i < size; i++ {
		u.writeReg(int(off+uint64(i))&7, byte(val>>(8*i)))
	}
	return true
}

func valid(off uint64, size int) bool {
	switch size {
	case 1, 2, 4, 8:
	default:
		return false
	}
	return off < Size && uint64(size) <= Size-off && off%uint64(size) == 0
}

func (u *UART) readReg(reg int) byte {
	switch reg {
	case regRBR:
		if u.lcr&lcrDLAB != 0 {
			return byte(u.divider)
		}
		var b byte
		if u.fcr&fcrFE != 0 {
			if u.count > 0 {
				b = u.fifo[u.head]
				u.head = (u.head + 1) % FIFOSize
				u.count--
			}
			if u.count == 0 {
				u.lsr &^= lsrDR | lsrBI
			}
		} else {
			b = u.rbr
			u.lsr &^= lsrDR | lsrBI
		}
		u.updateIRQ()
		return b
	case regIER:
		if u.lcr&lcrDLAB != 0 {
			return byte(u.divider >> 8)
		}
		return u.ier
	case regIIR:
		v := u.iir
		if v&0x0F == iirTHRI {
			u.thrPending = false
			u.updateIRQ()
		}
		return v
	case regLCR:
		return u.lcr
	case regMCR:
		return u.mcr
	case regLSR:
		v := u.lsr
		if u.lsr&(lsrBI|lsrOE) != 0 {
			u.lsr &^= lsrBI | lsrOE
			u.updateIRQ()
		}
		return v
	case regMSR:
		if u.mcr&mcrLoop != 0 {
			// modem outputs looped to inputs: OUT2→DCD, OUT1→RI, RTS→CTS, DTR→DSR
			return (u.mcr&0x0C)<<4 | (u.mcr&0x02)<<3 | (u.mcr&0x01)<<5
		}
		v := u.msr
		if u.msr&msrAnyDelta != 0 {
			u.msr &= 0xF0
			u.updateIRQ()
		}
		return v
	default: // regSCR
		return u.scr
	}
}

func (u *UART) writeReg(reg int, v byte) {
	switch reg {
	case regRBR:
		if u.lcr&lcrDLAB != 0 {
			u.divider = u.divider&0xFF00 | uint16(v)
			return
		}
		u.transmit(v)
	case regIER:
		if u.lcr&lcrDLAB != 0 {
			u.divider = u.divider&0x00FF | uint16(v)<<8
			return
		}
		changed := (u.ier ^ v) & 0x0F
		u.ier = v & 0x0F
		if changed&ierTHRI != 0 {
			u.thrPending = u.ier&ierTHRI != 0 && u.lsr&lsrTHRE != 0
		}
		if changed != 0 {
			u.updateIRQ()
		}
	case regIIR: // FCR
		if (v^u.fcr)&fcrFE != 0 {
			v |= fcrXFR | fcrRFR
		}
		if v&fcrRFR != 0 {
			u.lsr &^= lsrDR | lsrBI
			u.head, u.count = 0, 0
		}
		if v&fcrXFR != 0 {
			u.lsr |= lsrTHRE
			u.thrPending = true
		}
		u.fcr = v & 0xC9
		if u.fcr&fcrFE != 0 {
			u.iir |= iirFE
			u.itl = [4]int{1, 4, 8, 14}[u.fcr>>6]
		} else {
			u.iir &^= iirFE
		}
		u.updateIRQ()
	case regLCR:
		u.lcr = v
	case regMCR:
		u.mcr = v & 0x1F
	case regLSR, regMSR:
		// read-only
	default:
		u.scr = v
	}
}

// transmit is a THR write followed by QEMU's instantaneous serial_xmit.
func (u *UART) transmit(b byte) {
	if u.mcr&mcrLoop != 0 {
		u.receive1(b)
	} else if u.out != nil {
		u.out(b)
	}
	u.lsr |= lsrTHRE | lsrTEMT
	u.thrPending = true
	u.updateIRQ()
}
