// Command rvgen writes (and optionally builds) random RISC-V test programs
// for differential testing of guestvm against QEMU.
//
//	rvgen -seed 7 -o /tmp/rv            # writes /tmp/rv/rvgen-7.S and link.ld
//	rvgen -seed 7 -o /tmp/rv -build     # also assembles /tmp/rv/rvgen-7.elf
//	rvgen -seed 7 -n 4 -build           # seeds 7..10
//	qemu-system-riscv64 -machine virt -bios none -nographic -m 128M \
//	    -icount shift=0 -kernel /tmp/rv/rvgen-7.elf
package main

import (
	"flag"
	"fmt"
	"os"

	"ftbox/tools/rvgen"
)

func main() {
	seed := flag.Uint64("seed", 1, "first seed")
	n := flag.Int("n", 1, "number of programs (seeds seed, seed+1, ...)")
	out := flag.String("o", ".", "output directory")
	build := flag.Bool("build", false, "assemble and link with "+rvgen.CC)
	var opts rvgen.Options
	flag.IntVar(&opts.Sequences, "sequences", 100, "sequences per program")
	flag.IntVar(&opts.MinLen, "min", 20, "minimum random items per sequence")
	flag.IntVar(&opts.MaxLen, "max", 60, "maximum random items per sequence")
	flag.BoolVar(&opts.NoHops, "nohops", false, "no privilege hops to S/U mode")
	flag.BoolVar(&opts.NoPaging, "nopaging", false, "no Sv39 in privilege hops")
	flag.BoolVar(&opts.NoMisaligned, "nomisaligned", false, "no misaligned accesses")
	flag.BoolVar(&opts.NoReserved, "noreserved", false, "no reserved compressed encodings")
	flag.BoolVar(&opts.NoQuirks, "noquirks", false, "avoid known QEMU 7.2 quirks (H-extension CSR bits, AMO fault causes)")
	flag.BoolVar(&opts.NoImplDefined, "noimpldefined", false, "no implementation-defined cases")
	flag.Parse()
	for i := 0; i < *n; i++ {
		s := *seed + uint64(i)
		var path string
		var err error
		if *build {
			path, err = rvgen.Build(*out, s, opts)
		} else {
			path, err = rvgen.WriteFiles(*out, s, opts)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(path)
	}
}
