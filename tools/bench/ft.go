package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"ftbox/tap"
	"ftbox/tools/client"
	"ftbox/tools/lablock"
)

// FTConfig is one `ftbox bench ft` run.
type FTConfig struct {
	Ftbox       string        // the ftbox binary: runs the baseline guest and, through the lab, both boxes
	Lab         string        // the tools/lab script
	Duration    time.Duration // each half's measured window
	Concurrency int           // requests outstanding
	Warmup      time.Duration // before each window (0: the client's default)
	Progress    io.Writer     // progress lines (nil: none)
}

// FTResult is what one run measured.
type FTResult struct {
	NonFT, FT *client.LoadResult
	// Deltas of the primary's counters over the FT half's client run.
	LogBytesSent, LogEntryBytes, InputBytes, LANFramesIn uint64
}

// The lab's fixed addresses (tools/lab): the guest, its counter, the client
// namespace; and the baseline's namespace-local ones.
const (
	guestCounter  = "10.77.0.10:7000"
	labClientNS   = "ftclient"
	labLANNS      = "ftlan"
	baselineTAP   = "ftb0"
	baselineHost  = "10.77.0.1/24"
	labStateDflt  = "/run/ftbox-lab"
	emuReadyAfter = 30 * time.Second
)

func (c *FTConfig) say(format string, a ...any) {
	if c.Progress != nil {
		fmt.Fprintf(c.Progress, "bench: "+format+"\n", a...)
	}
}

// FT measures the netsvc guest's UDP counter, closed loop, twice in one run:
// alone under `ftbox emu run` on a TAP (the client's socket on the TAP's host
// side, in a namespace of its own), then replicated, served by the lab's
// primary to the lab's client namespace. It prints throughput, latency and
// their ratios, and the logging link's bytes per byte of guest input over the
// FT half. It needs root, ip(8) and what tools/lab needs; the lab is brought
// down at the end whatever happens, and it must not be up before (its
// namespace names are fixed). The whole run holds the lab lock
// (tools/lablock), waiting for it if another test or benchmark has the lab.
func FT(ctx context.Context, cfg FTConfig, out io.Writer) (FTResult, error) {
	var r FTResult
	if os.Geteuid() != 0 {
		return r, errors.New("bench ft needs root (network namespaces, TAP devices)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return r, fmt.Errorf("bench ft needs ip(8): %w", err)
	}
	if _, err := os.Stat(cfg.Lab); err != nil {
		return r, fmt.Errorf("tools/lab: %w", err)
	}
	loop := func(ns string) *client.ClosedLoop {
		return &client.ClosedLoop{
			Dial: func() (conn net.Conn, err error) {
				err = tap.InNetNS(ns, func() error {
					conn, err = client.Dial(guestCounter)
					return err
				})
				return conn, err
			},
			Concurrency: cfg.Concurrency,
			Duration:    cfg.Duration,
			Warmup:      cfg.Warmup,
			Ready:       20 * time.Second,
		}
	}

	// The lab lock for the whole run, not just the FT half: the baseline
	// then runs without the lab's other users loading the machine either.
	release, err := lablock.Acquire(ctx, func() {
		cfg.say("waiting for the lab (%s is held: another test or benchmark has it)", lablock.Path)
	})
	if err != nil {
		return r, err
	}
	defer release()

	// 1. The baseline: the guest alone.
	r.NonFT, err = cfg.baseline(ctx, loop)
	if err != nil {
		return r, fmt.Errorf("baseline (ftbox emu run): %w", err)
	}

	// 2. The pair.
	if err := cfg.ftHalf(ctx, loop, &r); err != nil {
		return r, fmt.Errorf("ft (tools/lab): %w", err)
	}

	nf, ft := r.NonFT, r.FT
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	fmt.Fprintf(out, "duration: %.1f s\nconcurrency: %d\n", cfg.Duration.Seconds(), nf.Concurrency)
	fmt.Fprint(out, nf.Lines("nonft_"))
	fmt.Fprint(out, ft.Lines("ft_"))
	ratio := 0.0
	if nf.RPS > 0 {
		ratio = ft.RPS / nf.RPS
	}
	fmt.Fprintf(out, "ft_throughput_ratio: %.3f\n", ratio)
	fmt.Fprintf(out, "added_latency_p50_us: %.1f us\n", us(ft.P50-nf.P50))
	fmt.Fprintf(out, "added_latency_p90_us: %.1f us\n", us(ft.P90-nf.P90))
	fmt.Fprintf(out, "added_latency_p99_us: %.1f us\n", us(ft.P99-nf.P99))
	if nf.P50 > 0 {
		fmt.Fprintf(out, "ft_latency_ratio_p50: %.2f\n", float64(ft.P50)/float64(nf.P50))
	}
	fmt.Fprintf(out, "ft_log_bytes_sent: %d bytes\nft_log_entry_bytes: %d bytes\nft_input_bytes: %d bytes\nft_lan_frames_in: %d\n",
		r.LogBytesSent, r.LogEntryBytes, r.InputBytes, r.LANFramesIn)
	if r.InputBytes > 0 {
		fmt.Fprintf(out, "log_bytes_per_input_byte: %.2f\n", float64(r.LogBytesSent)/float64(r.InputBytes))
		fmt.Fprintf(out, "log_entry_bytes_per_input_byte: %.2f\n", float64(r.LogEntryBytes)/float64(r.InputBytes))
	} else {
		fmt.Fprintln(out, "log_bytes_per_input_byte: n/a (no input)")
	}
	if r.LANFramesIn > 0 {
		fmt.Fprintf(out, "log_bytes_per_lan_frame: %.1f bytes\n", float64(r.LogBytesSent)/float64(r.LANFramesIn))
	}
	return r, nil
}

// baseline runs `ftbox emu run netsvc --tap ftb0` in a fresh namespace, gives
// the TAP's host side 10.77.0.1/24 and measures from a socket there.
func (c *FTConfig) baseline(ctx context.Context, loop func(string) *client.ClosedLoop) (*client.LoadResult, error) {
	ns := fmt.Sprintf("ftbench-%d", os.Getpid())
	_ = exec.Command("ip", "netns", "del", ns).Run() // a leftover of a killed run
	if err := run("ip", "netns", "add", ns); err != nil {
		return nil, err
	}
	defer func() {
		if err := run("ip", "netns", "del", ns); err != nil {
			c.say("%v", err)
		}
	}()
	for _, args := range [][]string{
		{"ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"},
		{"ip", "-n", ns, "link", "set", "lo", "up"},
	} {
		if err := run(args[0], args[1:]...); err != nil {
			return nil, err
		}
	}
	c.say("baseline: ftbox emu run netsvc --tap %s in namespace %s", baselineTAP, ns)
	cmd := exec.Command("ip", "netns", "exec", ns, c.Ftbox, "emu", "run", "netsvc", "--tap", baselineTAP)
	var console syncBuffer
	cmd.Stdout = &console
	cmd.Stderr = &console
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start ftbox emu run: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(3 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}()
	deadline := time.Now().Add(emuReadyAfter)
	for !strings.Contains(console.String(), "netsvc:") ||
		exec.Command("ip", "-n", ns, "link", "show", baselineTAP).Run() != nil {
		select {
		case <-exited:
			return nil, fmt.Errorf("ftbox emu run exited: %s", console.String())
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the guest did not come up within %v: %s", emuReadyAfter, console.String())
		}
	}
	if err := run("ip", "-n", ns, "addr", "add", baselineHost, "dev", baselineTAP); err != nil {
		return nil, err
	}
	if err := run("ip", "-n", ns, "link", "set", baselineTAP, "up"); err != nil {
		return nil, err
	}
	c.say("baseline: closed loop, %d outstanding, %v", max(c.Concurrency, 1), c.Duration)
	res, err := loop(ns).Run(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w (guest console: %s)", err, console.String())
	}
	return res, nil
}

// labStatus is the part of `ftbox status --json` the benchmark reads.
type labStatus struct {
	Role        string `json:"role"`
	Protection  string `json:"protection"`
	Replication struct {
		LogEntryBytes uint64 `json:"log_entry_bytes"`
		InputBytes    uint64 `json:"input_bytes"`
	} `json:"replication"`
	Counters struct {
		LANFramesIn  uint64 `json:"lan_frames_in"`
		LogBytesSent uint64 `json:"log_bytes_sent"`
	} `json:"counters"`
}

func (c *FTConfig) status(sock string) (*labStatus, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(c.Ftbox, "status", "--json", "--socket", sock)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	_ = cmd.Run() // its exit code is the pair's health; the JSON is what counts
	var s labStatus
	if err := json.Unmarshal(stdout.Bytes(), &s); err != nil {
		return nil, fmt.Errorf("ftbox status --json --socket %s: %w: %s%s", sock, err, stdout.String(), stderr.String())
	}
	return &s, nil
}

// lab runs tools/lab with the benchmark's ftbox binary.
func (c *FTConfig) lab(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.Lab, args...)
	cmd.Env = append(os.Environ(), "FTBOX="+c.Ftbox)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("tools/lab %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// ftHalf runs with the lab lock held.
func (c *FTConfig) ftHalf(ctx context.Context, loop func(string) *client.ClosedLoop, r *FTResult) error {
	if _, err := os.Stat(filepath.Join("/run/netns", labLANNS)); err == nil {
		return fmt.Errorf("the lab is already up (namespace %s exists): bench ft brings up its own; tools/lab down first", labLANNS)
	}
	defer func() {
		// Always, with a context of its own: a cancelled run still tears down.
		dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := c.lab(dctx, "down"); err != nil {
			c.say("%v", err)
		}
	}()
	c.say("ft: tools/lab up")
	start := time.Now()
	if _, err := c.lab(ctx, "up"); err != nil {
		return err
	}
	c.say("ft: lab up and PROTECTED in %v", time.Since(start).Round(time.Millisecond))
	state := os.Getenv("FTBOX_LAB_STATE")
	if state == "" {
		state = labStateDflt
	}
	sock := filepath.Join(state, "a", "ftbox.sock")
	before, err := c.status(sock)
	if err != nil {
		return err
	}
	if before.Role != "PRIMARY" {
		return fmt.Errorf("box A is %s, not PRIMARY", before.Role)
	}
	c.say("ft: closed loop from %s, %d outstanding, %v", labClientNS, max(c.Concurrency, 1), c.Duration)
	r.FT, err = loop(labClientNS).Run(ctx)
	if err != nil {
		return err
	}
	after, err := c.status(sock)
	if err != nil {
		return err
	}
	if after.Role != "PRIMARY" || after.Protection != "PROTECTED" {
		return fmt.Errorf("box A ended the run %s/%s, not PRIMARY/PROTECTED: the figures would not be those of a protected pair", after.Role, after.Protection)
	}
	r.LogBytesSent = after.Counters.LogBytesSent - before.Counters.LogBytesSent
	r.LogEntryBytes = after.Replication.LogEntryBytes - before.Replication.LogEntryBytes
	r.InputBytes = after.Replication.InputBytes - before.Replication.InputBytes
	r.LANFramesIn = after.Counters.LANFramesIn - before.Counters.LANFramesIn
	return nil
}

// FindLab locates tools/lab: beside the working directory or one of its
// parents, else relative to the ftbox binary (bin/ftbox in a checkout).
func FindLab(ftbox string) (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if ftbox != "" {
		starts = append(starts, filepath.Dir(ftbox))
	}
	for _, dir := range starts {
		for {
			p := filepath.Join(dir, "tools", "lab")
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				return p, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", errors.New("tools/lab not found from the working directory or the ftbox binary: run from the checkout or pass --lab")
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// syncBuffer is a bytes.Buffer for one writer and one reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
