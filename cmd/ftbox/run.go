package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"ftbox/appliance"
	"ftbox/tools/guests"
)

// newArbiter makes the client of the configured arbiter; nil when none is
// configured.
var newArbiter = func(cfg *appliance.Config) (appliance.Arbiter, error) {
	if cfg.Arbiter.Address == "" {
		return nil, nil
	}
	psk, err := appliance.LoadKey(cfg.LogLink.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("log_link.key_file: %w", err)
	}
	c, err := appliance.NewArbiterClient(cfg.Arbiter.Address, psk, appliance.ArbiterClientOptions{Timeout: cfg.Arbiter.Timeout.Duration})
	if err != nil {
		return nil, err
	}
	return c, nil
}

func runCmd() *cobra.Command {
	var (
		configPath     string
		metricsAddr    string
		epoch          uint64
		connectTimeout time.Duration
		debug          bool
		console        bool
	)
	cmd := &cobra.Command{
		Use:   "run --config FILE",
		Short: "Run this box of a fault-tolerant pair (the daemon)",
		Long: "Run the replicated guest: as primary, serve the LAN through the TAP and log every input to the peer;\n" +
			"as backup, replay the peer's log with outputs dropped at the TAP's eBPF gate, and take over when the\n" +
			"primary fails (with the arbiter's grant). Status on the control socket (ftbox status); systemd\n" +
			"Type=notify; SIGTERM/SIGINT stop it cleanly.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configPath == "" {
				return errors.New("--config is required")
			}
			level := slog.LevelInfo
			if debug {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			// The same validation as ftbox config check, and no other.
			cfg, err := appliance.CheckConfigFile(configPath)
			if err != nil {
				return err
			}
			img, err := guests.Load(cfg.Guest.Image, guests.Options{})
			if err != nil {
				return fmt.Errorf("guest.image: %w", err)
			}
			arb, err := newArbiter(cfg)
			if err != nil {
				return err
			}
			if arb == nil {
				log.Warn("no arbiter configured: this box will NOT go live automatically when its peer fails")
			}
			opts := appliance.BoxOptions{Image: img, Arbiter: arb, Log: log, Epoch: epoch, ConnectTimeout: connectTimeout}
			if console {
				opts.Console = os.Stdout
			}
			box, err := appliance.NewBox(cfg, opts)
			if err != nil {
				return err
			}
			defer box.Close()
			l, err := appliance.ListenControl(cfg.Box.ControlSocket)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			go func() {
				if err := appliance.ServeControl(ctx, l, box, log); err != nil {
					log.Error("control socket", "err", err)
				}
			}()
			if metricsAddr != "" {
				srv, err := serveMetrics(metricsAddr, box)
				if err != nil {
					return err
				}
				defer srv.Close()
			}
			runErr := box.Run(ctx)
			stop()
			l.Close()
			box.Close()
			return runErr
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "the box's config file (TOML)")
	cmd.Flags().StringVar(&metricsAddr, "metrics", "", "serve Prometheus metrics (ftbox_*) on this address, e.g. :9477")
	cmd.Flags().Uint64Var(&epoch, "epoch", 0, "override: start in this epoch in the configured role (both boxes must agree; above every epoch the arbiter granted). "+
		"Default: ask the arbiter for the current epoch; a box whose peer holds it joins as backup by state transfer")
	cmd.Flags().DurationVar(&connectTimeout, "connect-timeout", appliance.DefaultConnectTimeout,
		"start alone if the peer is not heard within this time (a cold start of one box: only when the peer holds no newer state); "+
			"default: wait for the peer forever")
	cmd.Flags().BoolVar(&debug, "debug", false, "debug logging")
	cmd.Flags().BoolVar(&console, "console", false, "copy the guest's UART to stdout")
	return cmd
}

func serveMetrics(addr string, box *appliance.Box) (*http.Server, error) {
	return serveCollector(addr, appliance.NewCollector(func() (*appliance.Status, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return box.Status(ctx)
	}))
}

// serveCollector serves one collector's metrics on addr at /metrics.
func serveCollector(addr string, c prometheus.Collector) (*http.Server, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return srv, nil
}
