package fdt

import "fmt"

// The virt machine's memory map and interrupt wiring (QEMU 7.2's).
const (
	RAMBase      = 0x80000000
	FinisherBase = 0x100000
	FinisherSize = 0x1000
	CLINTBase    = 0x2000000
	CLINTSize    = 0x10000
	PLICBase     = 0xc000000
	PLICSize     = 0x600000
	PLICNumDev   = 0x60
	UARTBase     = 0x10000000
	UARTSize     = 0x100
	UARTIRQ      = 10
	UARTClock    = 0x384000
	VirtioBase   = 0x10001000
	VirtioSize   = 0x1000
	VirtioCount  = 8
	VirtioIRQ    = 1 // slot i raises VirtioIRQ + i

	TimebaseFrequency = 10000000
	ISA               = "rv64imafdc_zicsr_zifencei"
	MMUType           = "riscv,sv39"
)

// Phandles (the values QEMU assigns).
const (
	phCPU  = 1
	phIntc = 2
	phPLIC = 3
	phTest = 4
)

// Interrupt numbers on the hart's local interrupt controller.
const (
	irqMSoft  = 3
	irqMTimer = 7
	irqSExt   = 9
	irqMExt   = 11
)

// VirtParams describe what varies between machines.
type VirtParams struct {
	MemSize  uint64
	Bootargs string // omitted from /chosen when empty
}

// Virt returns the device tree of the ftbox virt machine: QEMU 7.2's virt
// for one hart, without the devices ftbox does not model (PCI, flash,
// fw-cfg, RTC, PMU, platform bus) and without /chosen/rng-seed (the machine
// is deterministic).
func Virt(p VirtParams) []byte {
	root := NewNode("")
	root.U32("#address-cells", 2).U32("#size-cells", 2).
		String("compatible", "riscv-virtio").String("model", "riscv-virtio,qemu")

	chosen := root.Child("chosen")
	if p.Bootargs != "" {
		chosen.String("bootargs", p.Bootargs)
	}
	chosen.String("stdout-path", fmt.Sprintf("/soc/serial@%x", UARTBase))

	root.Child("poweroff").U32("value", 0x5555).U32("offset", 0).U32("regmap", phTest).
		String("compatible", "syscon-poweroff")
	root.Child("reboot").U32("value", 0x7777).U32("offset", 0).U32("regmap", phTest).
		String("compatible", "syscon-reboot")

	root.Child(fmt.Sprintf("memory@%x", RAMBase)).String("device_type", "memory").
		U64("reg", RAMBase, p.MemSize)

	cpus := root.Child("cpus")
	cpus.U32("#address-cells", 1).U32("#size-cells", 0).U32("timebase-frequency", TimebaseFrequency)
	cpu := cpus.Child("cpu@0")
	cpu.Phandle(phCPU).String("device_type", "cpu").U32("reg", 0).String("status", "okay").
		String("compatible", "riscv").String("riscv,isa", ISA).String("mmu-type", MMUType)
	cpu.Child("interrupt-controller").U32("#interrupt-cells", 1).Empty("interrupt-controller").
		String("compatible", "riscv,cpu-intc").Phandle(phIntc)
	cpus.Child("cpu-map").Child("cluster0").Child("core0").U32("cpu", phCPU)

	soc := root.Child("soc")
	soc.U32("#address-cells", 2).U32("#size-cells", 2).String("compatible", "simple-bus").Empty("ranges")

	soc.Child(fmt.Sprintf("serial@%x", UARTBase)).U32("interrupts", UARTIRQ).U32("interrupt-parent", phPLIC).
		U32("clock-frequency", UARTClock).U64("reg", UARTBase, UARTSize).String("compatible", "ns16550a")

	soc.Child(fmt.Sprintf("test@%x", FinisherBase)).Phandle(phTest).U64("reg", FinisherBase, FinisherSize).
		Strings("compatible", "sifive,test1", "sifive,test0", "syscon")

	for i := VirtioCount - 1; i >= 0; i-- {
		base := uint64(VirtioBase + i*VirtioSize)
		soc.Child(fmt.Sprintf("virtio_mmio@%x", base)).U32("interrupts", uint32(VirtioIRQ+i)).
			U32("interrupt-parent", phPLIC).U64("reg", base, VirtioSize).String("compatible", "virtio,mmio")
	}

	soc.Child(fmt.Sprintf("plic@%x", PLICBase)).Phandle(phPLIC).U32("riscv,ndev", PLICNumDev).
		U64("reg", PLICBase, PLICSize).U32("interrupts-extended", phIntc, irqMExt, phIntc, irqSExt).
		Empty("interrupt-controller").Strings("compatible", "sifive,plic-1.0.0", "riscv,plic0").
		U32("#address-cells", 0).U32("#interrupt-cells", 1)

	soc.Child(fmt.Sprintf("clint@%x", CLINTBase)).
		U32("interrupts-extended", phIntc, irqMSoft, phIntc, irqMTimer).
		U64("reg", CLINTBase, CLINTSize).Strings("compatible", "sifive,clint0", "riscv,clint0")

	return Build(root, 0)
}
