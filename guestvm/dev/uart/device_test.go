package uart

import (
	"bytes"
	"testing"

	"ftbox/guestvm/snap"
)

type sink struct{ level bool }

func (s *sink) SetLevel(src int, l bool) {
	if src == IRQ {
		s.level = l
	}
}

func newUART() (*UART, *sink, *[]byte) {
	var out []byte
	s := &sink{}
	return New(s, IRQ, func(b byte) { out = append(out, b) }), s, &out
}

func rd(t *testing.T, u *UART, reg uint64) byte {
	t.Helper()
	v, ok := u.Read(reg, 1)
	if !ok {
		t.Fatalf("read %d faulted", reg)
	}
	return byte(v)
}

func wr(t *testing.T, u *UART, reg uint64, v byte) {
	t.Helper()
	if !u.Write(reg, 1, uint64(v)) {
		t.Fatalf("write %d faulted", reg)
	}
}

func TestResetValuesLikeQEMU(t *testing.T) {
	// Values read from QEMU 7.2's virt UART by a bare-metal probe.
	u, _, _ := newUART()
	for reg, want := range map[uint64]byte{regIIR: 0x01, regLCR: 0, regMCR: 0x08, regLSR: 0x60, regMSR: 0xB0} {
		if got := rd(t, u, reg); got != want {
			t.Errorf("reg %d = %#x, want %#x", reg, got, want)
		}
	}
	wr(t, u, regLCR, 0x80)
	if rd(t, u, 0) != 0x0C || rd(t, u, 1) != 0 {
		t.Error("divisor latch not 12")
	}
}

func TestPutcAndTHRE(t *testing.T) {
	u, irq, out := newUART()
	for _, c := range []byte("hi") {
		for rd(t, u, regLSR)&lsrTHRE == 0 {
			t.Fatal("THRE never set")
		}
		wr(t, u, regRBR, c)
	}
	if string(*out) != "hi" || irq.level {
		t.Fatalf("out %q irq %v", *out, irq.level)
	}
	// enabling THRI with THRE set raises the interrupt; reading IIR clears it
	wr(t, u, regIER, ierTHRI)
	if !irq.level || rd(t, u, regIIR) != iirTHRI {
		t.Fatal("no THRI")
	}
	if irq.level || rd(t, u, regIIR) != iirNoInt {
		t.Fatal("THRI not cleared by IIR read")
	}
	wr(t, u, regRBR, '!')
	if !irq.level {
		t.Fatal("THRI not raised after transmit")
	}
	wr(t, u, regIER, 0)
	if irq.level {
		t.Fatal("irq with IER=0")
	}
	// divisor latch hides THR
	wr(t, u, regLCR, 0x83)
	wr(t, u, regRBR, 1)
	wr(t, u, regIER, 0)
	wr(t, u, regLCR, 0x03)
	if string(*out) != "hi!" {
		t.Fatalf("DLL write transmitted: %q", *out)
	}
}

func TestReceive(t *testing.T) {
	u, irq, _ := newUART()
	// FIFO off: one byte
	if !u.Receive('a') || u.Receive('b') {
		t.Fatal("non-FIFO receiver should hold one byte")
	}
	wr(t, u, regIER, ierRDI)
	if !irq.level || rd(t, u, regIIR) != iirRDI {
		t.Fatal("no RDI")
	}
	if rd(t, u, regRBR) != 'a' || rd(t, u, regLSR)&lsrDR != 0 || irq.level {
		t.Fatal("RBR read")
	}
	// FIFO on, trigger level 4
	wr(t, u, regIIR, 0x41|fcrRFR|fcrXFR)
	if rd(t, u, regIIR)&0xC0 != 0xC0 {
		t.Fatal("FIFO bits not in IIR")
	}
	for i := 0; i < FIFOSize; i++ {
		if !u.Receive(byte('0' + i)) {
			t.Fatalf("byte %d refused", i)
		}
		if i == 0 && rd(t, u, regIIR)&0x0F != iirCTI {
			t.Fatal("below trigger: want character timeout")
		}
		if i == 3 && rd(t, u, regIIR)&0x0F != iirRDI {
			t.Fatal("at trigger: want RDI")
		}
	}
	if u.Receive('x') || u.CanReceive() != 0 {
		t.Fatal("full FIFO accepted a byte")
	}
	var got []byte
	for rd(t, u, regLSR)&lsrDR != 0 {
		got = append(got, rd(t, u, regRBR))
	}
	if string(got) != "0123456789:;<=>?" || irq.level {
		t.Fatalf("got %q irq %v", got, irq.level)
	}
	// line status interrupt outranks data; LSR read clears OE
	wr(t, u, regIER, ierRDI|ierRLSI)
	wr(t, u, regMCR, mcrLoop)
	for i := 0; i < FIFOSize+1; i++ {
		wr(t, u, regRBR, 'L')
	}
	if rd(t, u, regIIR)&0x0F != iirRLSI {
		t.Fatal("overrun not reported")
	}
	if rd(t, u, regLSR)&lsrOE == 0 || rd(t, u, regLSR)&lsrOE != 0 {
		t.Fatal("OE not cleared by LSR read")
	}
	if rd(t, u, regIIR)&0x0F != iirRDI {
		t.Fatal("RDI after clearing OE")
	}
}

func TestLoopbackProbe(t *testing.T) {
	// Linux's 8250 autoconfig: MCR = LOOP|0x0A must read MSR & 0xF0 == 0x90.
	u, _, out := newUART()
	wr(t, u, regMCR, mcrLoop|0x0A)
	if got := rd(t, u, regMSR) & 0xF0; got != 0x90 {
		t.Fatalf("loopback MSR %#x", got)
	}
	wr(t, u, regRBR, 'z')
	if len(*out) != 0 || rd(t, u, regRBR) != 'z' {
		t.Fatal("loopback byte went out")
	}
	if u.Receive('q') {
		t.Fatal("loopback accepted line input")
	}
	wr(t, u, regMCR, mcrOUT2)
	// scratch and IER probes
	wr(t, u, regSCR, 0xA5)
	wr(t, u, regIER, 0xFF)
	if rd(t, u, regSCR) != 0xA5 || rd(t, u, regIER) != 0x0F {
		t.Fatal("scratch/IER")
	}
}

func TestAccessSizes(t *testing.T) {
	u, _, out := newUART()
	if _, ok := u.Read(0, 3); ok {
		t.Fatal("3-byte access")
	}
	if _, ok := u.Read(Size, 1); ok {
		t.Fatal("past the region")
	}
	if _, ok := u.Read(Size-2, 4); ok {
		t.Fatal("straddling the end")
	}
	// aliasing every 8 bytes, wide accesses split into bytes
	if v, ok := u.Read(8+5, 1); !ok || v != 0x60 {
		t.Fatal("alias")
	}
	if v, ok := u.Read(4, 4); !ok || v != 0x00B06008 {
		t.Fatalf("wide read %#x", v)
	}
	u.Write(0, 2, 0x4241)
	if string(*out) != "A" {
		t.Fatalf("wide write %q", *out)
	}
}

func TestSnapshot(t *testing.T) {
	u, _, _ := newUART()
	wr(t, u, regIIR, 0xC1)
	wr(t, u, regIER, ierRDI|ierTHRI)
	u.Receive('x')
	u.Receive('y')
	var b bytes.Buffer
	u.Save(snap.NewWriter(&b))
	v, irq, _ := newUART()
	if err := v.Restore(snap.NewReader(b.Bytes())); err != nil {
		t.Fatal(err)
	}
	var b2 bytes.Buffer
	v.Save(snap.NewWriter(&b2))
	if !bytes.Equal(b.Bytes(), b2.Bytes()) || !irq.level {
		t.Fatal("round trip")
	}
	if rd(t, v, regRBR) != 'x' || rd(t, v, regRBR) != 'y' {
		t.Fatal("FIFO contents")
	}
	for i := 0; i < b.Len(); i++ {
		if err := v.Restore(snap.NewReader(b.Bytes()[:i])); err == nil {
			t.Fatalf("truncated at %d restored", i)
		}
	}
	bad := bytes.Clone(b.Bytes())
	bad[len("uart/v1")+8+2+1] = 0xFF // IER
	if err := v.Restore(snap.NewReader(bad)); err == nil {
		t.Fatal("impossible IER restored")
	}
}
