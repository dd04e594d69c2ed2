// Command ftcount is the lab's UDP counter client: it increments a counter on
// the netsvc guest every few milliseconds until it is stopped (SIGINT,
// SIGTERM) or --duration passes, then prints what it saw as `name: value unit`
// lines: requests, acknowledgments, the final value, lost acknowledged
// increments (must be 0) and the client-visible gap. Run it in the client's
// namespace: ip netns exec ftclient ftcount --duration 10s
//
// With --closed-loop it measures instead: --concurrency requests outstanding,
// each answered one followed at once by the next, for --duration (default
// 5s), and prints requests per second and the latency percentiles.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"ftbox/tools/client"
)

func main() {
	addr := flag.String("addr", "10.77.0.10:7000", "the counter service")
	name := flag.String("name", "ftbox", "counter name")
	interval := flag.Duration("interval", 10*time.Millisecond, "between requests")
	timeout := flag.Duration("timeout", 25*time.Millisecond, "wait this long for a reply before sending the next request (later replies still count)")
	duration := flag.Duration("duration", 0, "stop after this long (0: run until SIGINT/SIGTERM)")
	jsonOut := flag.String("json", "", "also write the acknowledgments and figures as JSON to this file")
	quiet := flag.Bool("q", false, "no progress lines")
	closed := flag.Bool("closed-loop", false, "measure throughput and latency with --concurrency requests outstanding")
	conc := flag.Int("concurrency", 1, "with --closed-loop: requests outstanding")
	flag.Parse()

	if *closed {
		c := &client.ClosedLoop{
			Dial:        func() (net.Conn, error) { return client.Dial(*addr) },
			Name:        *name,
			Concurrency: *conc,
			Duration:    *duration,
		}
		if *duration == 0 {
			c.Duration = 5 * time.Second
		}
		if flagSet("timeout") {
			c.Timeout = *timeout
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		r, err := c.Run(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ftcount:", err)
			os.Exit(1)
		}
		fmt.Printf("concurrency: %d\n%s", r.Concurrency, r.Lines(""))
		if *jsonOut != "" {
			b, _ := json.MarshalIndent(r, "", "  ")
			if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
				fmt.Fprintln(os.Stderr, "ftcount:", err)
				os.Exit(1)
			}
		}
		if r.Replies == 0 {
			fmt.Fprintln(os.Stderr, "ftcount: no request was answered")
			os.Exit(1)
		}
		return
	}

	conn, err := client.Dial(*addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ftcount:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	c := &client.Counter{Conn: conn, Name: *name, Interval: *interval, Timeout: *timeout}
	if !*quiet {
		c.Progress = client.PrintProgress
	}
	r, err := c.Run(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ftcount:", err)
		os.Exit(1)
	}
	fmt.Print(r.Summary())
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(r, "", "  ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "ftcount:", err)
			os.Exit(1)
		}
	}
	if r.LostAcked() > 0 {
		fmt.Fprintf(os.Stderr, "ftcount: %d acknowledged increments lost\n", r.LostAcked())
		os.Exit(2)
	}
	if r.Acked == 0 {
		fmt.Fprintln(os.Stderr, "ftcount: no request was answered")
		os.Exit(1)
	}
}

// flagSet reports whether the named flag was given on the command line.
func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
