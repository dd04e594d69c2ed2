package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"ftbox/appliance"
	"ftbox/guestvm"
	"ftbox/tap"
	"ftbox/tools/guests"
)

func emuCmd() *cobra.Command {
	emu := &cobra.Command{Use: "emu", Short: "Run a guest on the bare emulator, without replication"}
	var (
		memSize string
		tapName string
		mac     string
		bridge  string
		appendA string
		raw     bool
	)
	run := &cobra.Command{
		Use:   "run IMAGE",
		Short: "Run a guest image with its console on stdout",
		Long: "Run a guest image (an RV64 ELF for QEMU's virt machine, a raw binary with --raw, or the name of a\n" +
			"built-in guest: " + fmt.Sprint(guests.Names()) + ") with its UART on stdout. With --tap the virtio NIC is\n" +
			"attached to that TAP device. Exits with the guest's finisher status: 0 pass, the fail code otherwise.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			size, err := appliance.ParseSize(memSize)
			if err != nil {
				return fmt.Errorf("--mem: %w", err)
			}
			// Checked before it is read, and bounded: a raw image by the
			// RAM it is copied into.
			opts := guests.Options{Raw: raw}
			if raw {
				opts.MaxSize = int64(min(size, guests.MaxImageSize))
			}
			img, err := guests.Load(args[0], opts)
			if err != nil {
				if errors.Is(err, guests.ErrNotELF) {
					return fmt.Errorf("%w (a raw binary needs --raw)", err)
				}
				return err
			}
			cfg := guestvm.Config{MemSize: size, Bootargs: appendA}
			if mac != "" {
				hw, err := net.ParseMAC(mac)
				if err != nil || len(hw) != 6 {
					return fmt.Errorf("--mac %q: not a 6-byte MAC address", mac)
				}
				copy(cfg.MAC[:], hw)
			}
			m, err := guestvm.New(cfg)
			if err != nil {
				return err
			}
			if raw {
				err = m.LoadRaw(img)
			} else {
				err = m.Load(img)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			s := &appliance.Standalone{M: m, Console: os.Stdout, Log: log}
			if tapName != "" {
				t, err := tap.Open(tap.Config{Name: tapName, Bridge: bridge})
				if err != nil {
					return err
				}
				defer t.Close()
				s.Port = t
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			kind, code, err := s.Run(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return &exitError{code: 130}
				}
				return err
			}
			switch kind {
			case guestvm.ExitPass:
				return nil
			case guestvm.ExitFail:
				return &exitError{code: int(min(max(code, 1), 125)), err: fmt.Errorf("guest failed with code %d", code)}
			default:
				return &exitError{code: 1, err: fmt.Errorf("guest stopped: %v", kind)}
			}
		},
	}
	run.Flags().StringVar(&memSize, "mem", "128M", "guest RAM size (e.g. 64M, 1G)")
	run.Flags().StringVar(&tapName, "tap", "", "attach the guest NIC to this TAP device (created if missing)")
	run.Flags().StringVar(&bridge, "bridge", "", "enslave the TAP to this bridge")
	run.Flags().StringVar(&mac, "mac", "", "guest NIC MAC address (default 52:54:00:12:34:56)")
	run.Flags().StringVar(&appendA, "append", "", "guest command line (/chosen/bootargs), e.g. ip=10.77.0.20")
	run.Flags().BoolVar(&raw, "raw", false, "the image is a raw binary to load at 0x80000000")
	emu.AddCommand(run)
	return emu
}
