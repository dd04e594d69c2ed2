package guestvm

import (
	"bytes"
	"crypto/sha256"
	"fmt"

	"ftbox/guestvm/snap"
)

// snapVersion changes whenever the snapshot layout does. A snapshot of
// another version is refused with an error that says so.
//
//	1  integer CPU
//	2  f registers and fcsr (F and D)
//	3  16 PMP entries (was 64), debug trigger CSRs
const snapVersion = 3

const pageSize = 4096

// save writes the whole machine state: everything but RAM, then RAM.
func (m *Machine) save(w *snap.Writer) {
	m.saveState(w)
	// RAM page by page, zero pages as a single flag byte: a fresh guest's
	// RAM is mostly zeros.
	w.Tag("ram")
	for off := 0; off < len(m.ram); off += pageSize {
		p := m.ram[off : off+pageSize]
		if m.knownZero(uint64(off/pageSize)) || isZero(p) {
			w.U8(0)
			continue
		}
		w.U8(1)
		w.Raw(p)
	}
	w.Tag("end")
}

// saveState writes everything except RAM.
func (m *Machine) saveState(w *snap.Writer) {
	w.Tag("ftbox-guestvm")
	w.U32(snapVersion)
	w.U64(m.cfg.MemSize)
	w.Raw(m.cfg.MAC[:])
	w.Bytes([]byte(m.cfg.Bootargs))
	w.U64(m.entry)
	w.U64(m.fdt)
	w.Tag("clock")
	w.U64(m.clk.t0)
	w.U64(m.clk.i0)
	w.U64(m.clk.num)
	w.U64(m.clk.den)
	w.Tag("cpu")
	m.cpu.Save(w)
	w.Tag("clint")
	m.clint.Save(w)
	w.Tag("plic")
	m.plic.Save(w)
	w.Tag("uart")
	m.uart.Save(w)
	w.Tag("finisher")
	m.fin.Save(w)
	for _, t := range m.slots {
		w.Tag("virtio")
		t.Save(w)
	}
	w.Tag("outputs")
	w.U64(m.dropped)
	w.U32(uint32(len(m.frames)))
	for _, f := range m.frames {
		w.Bytes(f)
	}
	w.Bytes(m.console)
}

// knownZero reports a page that is zero without reading it: unwritten since
// its hash was last taken, and that hash is the zero page's. Most of a
// guest's RAM is such pages, so snapshots and restores skip them.
func (m *Machine) knownZero(p uint64) bool {
	return !m.cpu.Written(p) && m.pageSum[p] == zeroPageSum
}

func isZero(p []byte) bool {
	for len(p) >= 8 {
		if p[0]|p[1]|p[2]|p[3]|p[4]|p[5]|p[6]|p[7] != 0 {
			return false
		}
		p = p[8:]
	}
	for _, b := range p {
		if b != 0 {
			return false
		}
	}
	return true
}

// Save returns a snapshot of the whole machine.
func (m *Machine) Save() []byte {
	var b bytes.Buffer
	w := snap.NewWriter(&b)
	m.save(w)
	return b.Bytes() // bytes.Buffer never fails
}

// Digest is a SHA-256 over the whole machine state: registers, CSRs, device
// state, pending outputs, and the SHA-256 of every RAM page in order. Primary
// and backup compare digests taken at equal instruction counts to detect
// divergence, so it runs in the box loop: only pages written since the last
// digest are rehashed (the CPU tracks them at no cost to its store fast path,
// DMA reports them through dev.RAM.Touch), which keeps a digest of a mostly
// idle 128 MiB guest near a millisecond instead of ~65 ms.
func (m *Machine) Digest() [32]byte {
	m.cpu.TakeDirty(func(p uint64) {
		pg := m.ram[p*pageSize : (p+1)*pageSize]
		if isZero(pg) {
			m.pageSum[p] = zeroPageSum
		} else {
			m.pageSum[p] = sha256.Sum256(pg)
		}
	})
	h := sha256.New()
	w := snap.NewWriter(h)
	m.saveState(w)
	w.Tag("ram-sums")
	for i := range m.pageSum {
		w.Raw(m.pageSum[i][:])
	}
	var d [32]byte
	h.Sum(d[:0])
	return d
}

var zeroPageSum = sha256.Sum256(make([]byte, pageSize))

// Restore replaces the machine's state with a snapshot taken by Save on a
// machine with the same configuration. On error the machine is unusable and
// must be discarded (devices may be half restored); the snapshot is checked
// for the layout, the configuration and every device's invariants.
func (m *Machine) Restore(b []byte) error {
	r := snap.NewReader(b)
	r.Tag("ftbox-guestvm")
	if v := r.U32(); r.Err() == nil && v != snapVersion {
		return fmt.Errorf("restore: snapshot format version %d, but this build reads only version %d (the snapshot was taken by another ftbox build)", v, snapVersion)
	}
	var cfg Config
	cfg.MemSize = r.U64()
	r.Raw(cfg.MAC[:])
	cfg.Bootargs = string(r.Bytes(maxBootargs))
	if r.Err() == nil && cfg != m.cfg {
		return fmt.Errorf("restore: snapshot of a machine with config %+v into one with %+v", cfg, m.cfg)
	}
	m.entry = r.U64()
	m.fdt = r.U64()
	r.Tag("clock")
	m.clk.t0, m.clk.i0, m.clk.num, m.clk.den = r.U64(), r.U64(), r.U64(), r.U64()
	if r.Err() == nil && m.clk.den == 0 {
		r.Fail(fmt.Errorf("clock rate with zero denominator"))
	}
	r.Tag("cpu")
	restoreDev(r, m.cpu.Restore)
	r.Tag("clint")
	restoreDev(r, m.clint.Restore)
	r.Tag("plic")
	restoreDev(r, m.plic.Restore)
	r.Tag("uart")
	restoreDev(r, m.uart.Restore)
	r.Tag("finisher")
	restoreDev(r, m.fin.Restore)
	for _, t := range m.slots {
		r.Tag("virtio")
		restoreDev(r, t.Restore)
	}
	r.Tag("outputs")
	m.dropped = r.U64()
	n := r.U32()
	if n > maxPendingOut {
		r.Fail(fmt.Errorf("%d pending frames", n))
	}
	m.frames = nil
	for i := uint32(0); i < n && r.Err() == nil; i++ {
		m.frames = append(m.frames, r.Bytes(65536))
	}
	m.console = r.Bytes(maxConsoleHeld)
	r.Tag("ram")
	for off := 0; off < len(m.ram) && r.Err() == nil; off += pageSize {
		p := m.ram[off : off+pageSize]
		switch r.U8() {
		case 0:
			if !m.knownZero(uint64(off / pageSize)) {
				clear(p)
			}
			m.pageSum[off/pageSize] = zeroPageSum
		case 1:
			r.Raw(p)
			m.pageSum[off/pageSize] = sha256.Sum256(p)
		default:
			r.Fail(fmt.Errorf("bad page flag at RAM offset %#x", off))
		}
	}
	r.Tag("end")
	// The page hashes were computed while reading; start tracking afresh.
	m.cpu.MarkAllDirty()
	m.cpu.TakeDirty(func(uint64) {})
	if err := r.Err(); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if r.Remaining() != 0 {
		return fmt.Errorf("restore: %d trailing bytes", r.Remaining())
	}
	return nil
}

func restoreDev(r *snap.Reader, f func(*snap.Reader) error) {
	if r.Err() != nil {
		return
	}
	if err := f(r); err != nil {
		r.Fail(err)
	}
}
