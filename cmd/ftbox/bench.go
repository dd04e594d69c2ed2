package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

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
	b.AddCommand(emu, benchFTCmd())
	return b
}

func benchFTCmd() *cobra.Command {
	var cfg bench.FTConfig
	ft := &cobra.Command{
		Use:   "ft",
		Short: "UDP counter throughput and latency, replicated (tools/lab) against the guest alone (emu run on a TAP)",
		Long: "Closed-loop INCR requests to the netsvc guest's UDP counter, first against the guest alone under\n" +
			"`ftbox emu run` on a TAP in a namespace of its own (the baseline), then against the lab's protected pair\n" +
			"(tools/lab up, the client in the ftclient namespace), in the same run. Prints requests/s, latency\n" +
			"percentiles, their ratios and the added latency, and the logging link's bytes per byte of guest input.\n" +
			"Needs root; brings the lab down at the end (it must not be up before). Holds the lab lock\n" +
			"(/run/ftbox-lab.lock) for the whole run, waiting while another test or benchmark has it.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find the ftbox binary: %w", err)
			}
			cfg.Ftbox = self
			if cfg.Lab == "" {
				if cfg.Lab, err = bench.FindLab(self); err != nil {
					return err
				}
			}
			cfg.Progress = os.Stderr
			// Interrupted, it still tears the lab and its namespace down.
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			_, err = bench.FT(ctx, cfg, os.Stdout)
			return err
		},
	}
	ft.Flags().DurationVar(&cfg.Duration, "duration", 5*time.Second, "each half's measured window")
	ft.Flags().IntVar(&cfg.Concurrency, "concurrency", 1, "requests outstanding")
	ft.Flags().DurationVar(&cfg.Warmup, "warmup", 300*time.Millisecond, "unmeasured load before each window")
	ft.Flags().StringVar(&cfg.Lab, "lab", "", "the tools/lab script (default: found from the working directory or the binary)")
	return ft
}
