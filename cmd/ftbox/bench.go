package main

import (
	"os"
	"os/exec"

	"github.com/spf13/cobra"

	"ftbox/tools/bench"
	"ftbox/tools/guests"
)

func benchCmd() *cobra.Command {
	b := &cobra.Command{Use: "bench", Short: "Benchmarks against baselines measured in the same run"}
	var image string
	var noQEMU bool
	emu := &cobra.Command{
		Use:   "emu",
		Short: "Guest MIPS on a CPU-bound integer mix, against QEMU TCG -icount shift=0",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			img, err := guests.Resolve(image)
			if err != nil {
				return err
			}
			qemu := ""
			if !noQEMU {
				qemu, _ = exec.LookPath("qemu-system-riscv64")
			}
			_, err = bench.Emu(cmd.Context(), img, qemu, os.Stdout)
			return err
		},
	}
	emu.Flags().StringVar(&image, "image", "bench", "guest image or built-in guest name")
	emu.Flags().BoolVar(&noQEMU, "no-qemu", false, "skip the QEMU baseline")
	b.AddCommand(emu)
	return b
}
