// Package guestvm is the deterministic guest machine: an RV64 hart and the
// devices of QEMU's `virt` board (CLINT, PLIC, NS16550A UART, virtio-mmio NIC,
// sifive_test finisher), so images built for `qemu-system-riscv64 -machine
// virt -bios none` run unchanged.
//
// Every source of nondeterminism enters through Inject, at an exact
// instruction count: frames arriving, clock syncs, console input. Given the
// same image and the same events at the same counts, two machines reach
// bit-identical state (Digest) on any host. The package reads no clock, no
// randomness and starts no goroutines; its owner drives it with Run.
package guestvm

import (
	"errors"
	"fmt"

	"ftbox/guestvm/dev"
	"ftbox/guestvm/dev/clint"
	"ftbox/guestvm/dev/finisher"
	"ftbox/guestvm/dev/plic"
	"ftbox/guestvm/dev/uart"
	"ftbox/guestvm/dev/virtio"
	"ftbox/guestvm/elfload"
	"ftbox/guestvm/fdt"
	"ftbox/guestvm/rv64"
)

// The memory map of QEMU's virt machine (the parts we model).
const (
	RAMBase      = 0x8000_0000
	FinisherBase = 0x10_0000
	CLINTBase    = 0x200_0000
	PLICBase     = 0xc00_0000
	PLICSize     = 0x60_0000
	UARTBase     = 0x1000_0000
	VirtioBase   = 0x1000_1000
	VirtioStride = 0x1000
	VirtioSlots  = 8
	UARTIRQ      = 10
	VirtioIRQ    = 1 // slot i uses PLIC source VirtioIRQ+i
	NetSlot      = 0 // the virtio-net device sits in the first transport
)

// DefaultMemSize is the RAM size QEMU's virt machine defaults to.
const DefaultMemSize = 128 << 20

// DefaultMAC is QEMU's default NIC address.
var DefaultMAC = [6]byte{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}

// Limits that keep a guest from exhausting the host.
const (
	maxMemSize     = 16 << 30
	maxPendingOut  = 4096    // frames emitted but not yet taken
	maxConsoleHeld = 1 << 20 // console bytes not yet taken
	maxBootargs    = 1024
)

// Config describes a machine. The zero value is QEMU's default virt machine
// with a NIC at DefaultMAC.
type Config struct {
	MemSize  uint64  // bytes of RAM; 0 means DefaultMemSize; a multiple of 4 KiB
	MAC      [6]byte // the virtio-net MAC; zero means DefaultMAC
	Bootargs string  // /chosen/bootargs in the device tree
}

func (c Config) withDefaults() (Config, error) {
	if c.MemSize == 0 {
		c.MemSize = DefaultMemSize
	}
	if c.MemSize%4096 != 0 || c.MemSize < 1<<20 || c.MemSize > maxMemSize {
		return c, fmt.Errorf("memory size %d: want a multiple of 4 KiB between 1 MiB and %d GiB", c.MemSize, maxMemSize>>30)
	}
	if c.MAC == ([6]byte{}) {
		c.MAC = DefaultMAC
	}
	if c.MAC[0]&1 != 0 {
		return c, fmt.Errorf("MAC %x is a multicast address", c.MAC)
	}
	if len(c.Bootargs) > maxBootargs {
		return c, fmt.Errorf("bootargs longer than %d bytes", maxBootargs)
	}
	return c, nil
}

// StopReason says why Run returned.
type StopReason uint8

const (
	StopBound  StopReason = iota // reached the requested instruction count
	StopOutput                   // the guest emitted frames (TakeFrames)
	StopIdle                     // the guest waits for an interrupt (see NextDeadline)
	StopExit                     // the guest hit the finisher (see Exit)
)

func (r StopReason) String() string {
	switch r {
	case StopBound:
		return "bound"
	case StopOutput:
		return "output"
	case StopIdle:
		return "idle"
	case StopExit:
		return "exit"
	}
	return fmt.Sprintf("stop(%d)", uint8(r))
}

// ExitKind says how the guest ended.
type ExitKind uint8

const (
	ExitNone  ExitKind = iota // still running
	ExitPass                  // finisher 0x5555
	ExitFail                  // finisher 0x3333 with a code
	ExitReset                 // finisher 0x7777
	ExitLimit                 // RunOffline hit its instruction limit
	ExitHung                  // RunOffline: idle with no timer and no input to come
)

func (k ExitKind) String() string {
	return [...]string{"running", "pass", "fail", "reset", "limit", "hung"}[min(int(k), 5)]
}

// Machine is one guest. It is not safe for concurrent use: one owner drives it.
type Machine struct {
	cfg   Config
	ram   []byte
	cpu   *rv64.CPU
	clk   clock
	clint *clint.CLINT
	plic  *plic.PLIC
	uart  *uart.UART
	fin   *finisher.Finisher
	slots [VirtioSlots]*virtio.Transport
	net   *virtio.Net
	bus   bus
	entry uint64
	fdt   uint64

	pageSum [][32]byte // per-page SHA-256 of RAM, brought up to date by Digest

	frames  [][]byte
	console []byte
	dropped uint64 // outputs dropped because the owner did not take them
}

// New builds a machine with empty RAM. Load an image before running it.
func New(cfg Config) (*Machine, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	m := &Machine{cfg: cfg, ram: make([]byte, cfg.MemSize)}
	m.cpu = rv64.New(m.ram, RAMBase, &m.bus)
	m.clk = clock{num: defaultRateNum, den: defaultRateDen, icount: m.cpu.ICount}
	m.cpu.SetTimeSource(m.clk.Now)
	m.clint = clint.New(&m.clk, m.cpu)
	m.plic = plic.New(m.cpu)
	m.uart = uart.New(m.plic, UARTIRQ, m.consoleOut)
	m.fin = finisher.New(m.cpu)
	// DMA may write anywhere it is pointed: drop decoded instructions there
	// and count the pages as written for the next digest.
	ram := dev.RAM{Base: RAMBase, Bytes: m.ram, Touch: m.cpu.InvalidateCode}
	m.pageSum = make([][32]byte, cfg.MemSize/pageSize)
	m.net = virtio.NewNet(ram, cfg.MAC, m.plic, VirtioIRQ+NetSlot, m.frameOut)
	m.bus.add(FinisherBase, 0x1000, m.fin)
	m.bus.add(CLINTBase, 0x10000, m.clint)
	m.bus.add(PLICBase, PLICSize, m.plic)
	m.bus.add(UARTBase, 0x100, m.uart)
	for i := range m.slots {
		if i == NetSlot {
			m.slots[i] = m.net.Transport
		} else {
			m.slots[i] = virtio.NewTransport(ram, m.plic, VirtioIRQ+i, nil)
		}
		m.bus.add(VirtioBase+uint64(i)*VirtioStride, VirtioStride, m.slots[i])
	}
	return m, nil
}

// Config returns the machine's configuration (defaults filled in).
func (m *Machine) Config() Config { return m.cfg }

// Load places an ELF image in RAM, writes the device tree, and resets the hart
// to the entry point with a0 = hartid 0 and a1 = the device tree's address,
// as QEMU does. On error the machine is unchanged.
func (m *Machine) Load(image []byte) error {
	im, err := elfload.Parse(image, RAMBase, m.cfg.MemSize)
	if errors.Is(err, elfload.ErrNotELF) {
		return fmt.Errorf("load image: %w (a raw binary needs LoadRaw)", err)
	}
	if err != nil {
		return fmt.Errorf("load image: %w", err)
	}
	return m.place(im)
}

// LoadRaw places a raw binary at RAMBase and starts there.
func (m *Machine) LoadRaw(image []byte) error {
	im, err := elfload.Raw(image, RAMBase, m.cfg.MemSize)
	if err != nil {
		return fmt.Errorf("load raw image: %w", err)
	}
	return m.place(im)
}

func (m *Machine) place(im *elfload.Image) error {
	if m.cpu.ICount() != 0 {
		return errors.New("load image: the machine has already run; build a new one")
	}
	blob := fdt.Virt(fdt.VirtParams{MemSize: m.cfg.MemSize, Bootargs: m.cfg.Bootargs})
	// Where QEMU puts it: the top of RAM (capped at 3 GiB), 2 MiB aligned.
	top := min(m.cfg.MemSize, 3<<30)
	if uint64(len(blob)) > top {
		return errors.New("device tree does not fit in RAM")
	}
	fdtOff := (top - uint64(len(blob))) &^ (2<<20 - 1)
	for _, s := range im.Segments {
		end := s.Addr - RAMBase + uint64(len(s.Data)) + s.Zero
		if s.Addr-RAMBase < fdtOff+uint64(len(blob)) && end > fdtOff {
			return fmt.Errorf("image segment at %#x overlaps the device tree at %#x; give the guest more memory", s.Addr, RAMBase+fdtOff)
		}
	}
	// RAM starts zeroed: every page hash is the zero page's, and only the
	// pages the image and device tree fill are left dirty for Digest.
	clear(m.ram)
	m.cpu.MarkAllDirty()
	m.cpu.TakeDirty(func(p uint64) { m.pageSum[p] = zeroPageSum })
	for _, s := range im.Segments {
		off := s.Addr - RAMBase
		copy(m.ram[off:], s.Data)
		m.cpu.InvalidateCode(s.Addr, uint64(len(s.Data)))
	}
	copy(m.ram[fdtOff:], blob)
	m.cpu.InvalidateCode(RAMBase+fdtOff, uint64(len(blob)))
	m.entry, m.fdt = im.Entry, RAMBase+fdtOff
	m.cpu.Reset(im.Entry)
	m.cpu.SetReg(10, 0)
	m.cpu.SetReg(11, m.fdt)
	return nil
}

// ICount is the number of instructions the guest has executed.
func (m *Machine) ICount() uint64 { return m.cpu.ICount() }

// Now is the guest's current mtime.
func (m *Machine) Now() uint64 { return m.clk.Now() }

// Exit reports whether and how the guest ended.
func (m *Machine) Exit() (ExitKind, uint32) {
	switch k, code := m.fin.Status(); k {
	case finisher.Pass:
		return ExitPass, 0
	case finisher.Fail:
		return ExitFail, code
	case finisher.Reset:
		return ExitReset, 0
	}
	return ExitNone, 0
}

// NextDeadline is the guest time (mtime) at which the timer will fire, if the
// guest armed one in the future. An idle guest wakes at this time or at the
// next input. A deadline already passed is no wake-up: its interrupt is
// pending already, so a guest idle with it pending has it masked (mtimecmp
// resets to 0, as on QEMU, so this is every guest that never uses the timer).
func (m *Machine) NextDeadline() (uint64, bool) {
	d := m.clint.Deadline()
	if d == ^uint64(0) || d <= m.clk.Now() {
		return 0, false
	}
	return d, true
}

// Run executes the guest until its instruction count reaches until, or
// earlier when it emits frames, goes idle or exits. Devices, interrupts and
// the timer are brought up to date between CPU runs; the timer's deadline is
// turned into an instruction count, so the interrupt arrives at the same
// instruction on every replay.
func (m *Machine) Run(until uint64) StopReason {
	for {
		if k, _ := m.Exit(); k != ExitNone {
			return StopExit
		}
		if len(m.frames) > 0 {
			return StopOutput
		}
		ic := m.cpu.ICount()
		if ic >= until {
			return StopBound
		}
		m.clint.Update()
		bound := until
		if d, ok := m.NextDeadline(); ok {
			if at, ok := m.clk.reach(d, ic); ok && at > ic && at < bound {
				bound = at
			}
		}
		_, why := m.cpu.Run(bound - ic)
		if why == rv64.StopIdle {
			m.clint.Update()
			if m.cpu.InterruptPending() {
				continue
			}
			if k, _ := m.Exit(); k != ExitNone {
				return StopExit
			}
			if len(m.frames) > 0 {
				return StopOutput
			}
			return StopIdle
		}
	}
}

// TakeFrames returns the frames the guest emitted since the last call, in
// order. The caller owns them.
func (m *Machine) TakeFrames() [][]byte {
	f := m.frames
	m.frames = nil
	return f
}

// TakeConsole returns the UART output since the last call.
func (m *Machine) TakeConsole() []byte {
	c := m.console
	m.console = nil
	return c
}

// Dropped counts outputs (frames, console bytes) discarded because the owner
// let too many pile up.
func (m *Machine) Dropped() uint64 { return m.dropped }

// NetStats reports the virtio-net device's counters.
func (m *Machine) NetStats() virtio.NetStats { return m.net.Stats() }

func (m *Machine) frameOut(f []byte) {
	if len(m.frames) >= maxPendingOut {
		m.dropped++
		return
	}
	m.frames = append(m.frames, f)
	m.cpu.RequestStop()
}

func (m *Machine) consoleOut(b byte) {
	if len(m.console) >= maxConsoleHeld {
		m.dropped++
		return
	}
	m.console = append(m.console, b)
}

// bus routes physical addresses outside RAM to devices.
type bus struct {
	regions []region
}

type region struct {
	base, size uint64
	dev        dev.Device
}

func (b *bus) add(base, size uint64, d dev.Device) {
	b.regions = append(b.regions, region{base, size, d})
}

func (b *bus) find(addr uint64, size int) (dev.Device, uint64) {
	for i := range b.regions {
		r := &b.regions[i]
		if off := addr - r.base; addr >= r.base && off < r.size && uint64(size) <= r.size-off {
			return r.dev, off
		}
	}
	return nil, 0
}

func (b *bus) Read(addr uint64, size int) (uint64, bool) {
	if d, off := b.find(addr, size); d != nil {
		return d.Read(off, size)
	}
	return 0, false
}

func (b *bus) Write(addr uint64, size int, val uint64) bool {
	if d, off := b.find(addr, size); d != nil {
		return d.Write(off, size, val)
	}
	return false
}
