package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"ftbox/appliance"
)

func arbiterCmd() *cobra.Command {
	var (
		listen, state string
		metricsAddr   string
		keyFiles      []string
		maxSkew       time.Duration
		initState     bool
	)
	c := &cobra.Command{
		Use:   "arbiter --listen ADDR --state FILE --key FILE",
		Short: "Run the split-brain arbiter: an authenticated test-and-set of the epoch over UDP",
		Long: "Run the arbiter both boxes of a pair ask before going live. It grants each epoch once, to the first\n" +
			"claimant of an epoch above every epoch granted so far (a repeated claim by the holder wins again), and\n" +
			"saves every grant to the state file (fsync) before answering. Requests and replies are authenticated\n" +
			"with a key derived from the pair's key file (--key, repeatable: one per pair served). A state file that\n" +
			"does not load, or is missing, stops the arbiter instead of resetting it: start a new arbiter once with\n" +
			"--init, which creates the state file (and refuses if it exists).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if listen == "" || state == "" || len(keyFiles) == 0 {
				return errors.New("arbiter: --listen, --state and --key are required")
			}
			var keys [][appliance.KeySize]byte
			for _, f := range keyFiles {
				k, err := appliance.LoadKey(f)
				if err != nil {
					return err
				}
				keys = append(keys, k)
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			srv, err := appliance.NewArbiterServer(appliance.ArbiterServerConfig{
				Keys: keys, StatePath: state, Init: initState, MaxSkew: maxSkew, Log: log,
			})
			if err != nil {
				return err
			}
			defer srv.Close()
			if metricsAddr != "" {
				ms, err := serveCollector(metricsAddr, appliance.NewArbiterCollector(srv))
				if err != nil {
					return err
				}
				defer ms.Close()
			}
			pc, err := net.ListenPacket("udp", listen)
			if err != nil {
				return fmt.Errorf("arbiter: listen %s: %w", listen, err)
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			done := make(chan error, 1)
			go func() { done <- srv.Serve(pc) }()
			log.Info("arbiter listening", "addr", pc.LocalAddr().String(), "state", state, "pairs", len(keys))
			tick := time.NewTicker(time.Minute)
			defer tick.Stop()
			last := srv.Stats()
			for {
				select {
				case err := <-done:
					pc.Close()
					return err
				case <-tick.C:
					if st := srv.Stats(); st != last {
						log.Info("arbiter counters", statsAttrs(st)...)
						last = st
					}
				case <-ctx.Done():
					pc.Close()
					err := <-done
					log.Info("arbiter stopped", statsAttrs(srv.Stats())...)
					return err
				}
			}
		},
	}
	c.Flags().StringVar(&listen, "listen", "", "UDP address to listen on (host:port)")
	c.Flags().StringVar(&state, "state", "", "state file (must exist unless --init; its directory must be writable)")
	c.Flags().BoolVar(&initState, "init", false, "a new arbiter: create the state file with nothing granted (refused if it exists); never leave it in a unit file")
	c.Flags().StringVar(&metricsAddr, "metrics", "", "serve Prometheus metrics (ftbox_arbiter_*) on this address, e.g. :9478")
	c.Flags().StringArrayVar(&keyFiles, "key", nil, "a pair's key file (ftbox keygen); repeat for several pairs")
	c.Flags().DurationVar(&maxSkew, "max-skew", appliance.DefaultArbiterMaxSkew, "largest accepted difference between a request's clock and ours (clients correct theirs automatically)")
	c.AddCommand(arbiterClaimCmd(), arbiterShowCmd())
	return c
}

func statsAttrs(st appliance.ArbiterStats) []any {
	b, _ := json.Marshal(st)
	var m map[string]uint64
	_ = json.Unmarshal(b, &m)
	var out []any
	for _, k := range []string{"requests", "granted", "regranted", "refused_stale", "refused_taken",
		"malformed", "unknown_pair", "bad_mac", "replayed", "clock_skew", "persist_errors"} {
		out = append(out, k, m[k])
	}
	return out
}

func arbiterClaimCmd() *cobra.Command {
	var (
		addr, keyFile, who string
		epoch              uint64
		timeout            time.Duration
	)
	c := &cobra.Command{
		Use:   "claim --addr ADDR --key FILE --epoch N --who NAME",
		Short: "Ask an arbiter for an epoch by hand (exit 0 granted, 2 refused, 1 no answer)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			psk, err := appliance.LoadKey(keyFile)
			if err != nil {
				return err
			}
			cl, err := appliance.NewArbiterClient(addr, psk, appliance.ArbiterClientOptions{Timeout: timeout})
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			d, err := cl.Claim(ctx, epoch, who)
			if err != nil {
				return err
			}
			if d.Won {
				fmt.Fprintf(cmd.OutOrStdout(), "granted: epoch %d to %s\n", d.Epoch, d.Holder)
				return nil
			}
			holder := d.Holder
			if holder == "" {
				holder = "nobody"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "refused: epoch %d is held by %s\n", d.Epoch, holder)
			return &exitError{code: 2}
		},
	}
	c.Flags().StringVar(&addr, "addr", "", "arbiter address (host:port)")
	c.Flags().StringVar(&keyFile, "key", "", "the pair's key file")
	c.Flags().StringVar(&who, "who", "", "claimant name (the box name)")
	c.Flags().Uint64Var(&epoch, "epoch", 0, "epoch to claim")
	c.Flags().DurationVar(&timeout, "timeout", 2*time.Second, "give up after this long")
	for _, f := range []string{"addr", "key", "who", "epoch"} {
		_ = c.MarkFlagRequired(f)
	}
	return c
}

func arbiterShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show STATEFILE",
		Short: "Print an arbiter state file (checks it as the arbiter would at startup)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			grants, ok, err := appliance.LoadArbiterState(args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if !ok {
				fmt.Fprintf(w, "%s: no state file (nothing granted yet)\n", args[0])
				return nil
			}
			for _, g := range grants {
				fmt.Fprintf(w, "pair %s: epoch %d held by %s\n", g.Pair, g.Epoch, g.Holder)
			}
			if len(grants) == 0 {
				fmt.Fprintf(w, "%s: nothing granted\n", args[0])
			}
			return nil
		},
	}
}
