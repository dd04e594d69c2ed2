// Command ftverify checks the lab's tcpdump captures (see tools/verify/verify.sh):
//
//	ftverify lan FILE [--guest-ip IP] [--window FROM,TO] [--max-window DUR]
//	    every request to the guest answered exactly once outside one failover window
//	ftverify sources [--guest-mac MAC] [--max-switches N] NAME=FILE NAME=FILE...
//	    the guest MAC is never sourced by two boxes interleaved (captures of each box's LAN NIC egress)
//	ftverify count [--src-mac MAC] FILE
//	    prints how many frames in FILE come from the MAC (the backup's tap0 against the gate's counter)
//
// Each prints `name: value` lines and exits 0 on PASS, 1 on FAIL, 2 on a usage or read error.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"ftbox/tools/verify"
)

const guestMAC = "52:54:00:12:34:56"

func usage() {
	fmt.Fprintln(os.Stderr, "usage: ftverify lan|sources|count ... (see the comment in tools/verify/cmd/ftverify/main.go)")
	os.Exit(2)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "ftverify:", err)
	os.Exit(2)
}

func parseTime(s string) (time.Time, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want seconds since the epoch", s)
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)), nil
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	switch os.Args[1] {
	case "lan":
		ip := fs.String("guest-ip", "10.77.0.10", "the guest's address")
		window := fs.String("window", "", "FROM,TO (epoch seconds): where anomalies are allowed")
		maxWindow := fs.Duration("max-window", 0, "without --window: the longest span the anomalies may cover (0: none allowed)")
		_ = fs.Parse(os.Args[2:])
		if fs.NArg() != 1 {
			usage()
		}
		o := verify.LANOptions{GuestIP: net.ParseIP(*ip), MaxWindow: *maxWindow}
		if o.GuestIP == nil {
			fail(fmt.Errorf("--guest-ip %q", *ip))
		}
		if *window != "" {
			from, to, ok := strings.Cut(*window, ",")
			if !ok {
				fail(fmt.Errorf("--window %q: want FROM,TO", *window))
			}
			var err error
			if o.Window.From, err = parseTime(from); err != nil {
				fail(err)
			}
			if o.Window.To, err = parseTime(to); err != nil {
				fail(err)
			}
		}
		frames, err := verify.ReadFile(fs.Arg(0))
		if err != nil {
			fail(err)
		}
		r, err := verify.CheckLAN(frames, o)
		fmt.Print(r)
		verdict(err)
	case "sources":
		mac := fs.String("guest-mac", guestMAC, "the guest's MAC")
		maxSw := fs.Int("max-switches", 0, "how many failovers the captures span")
		_ = fs.Parse(os.Args[2:])
		hw, err := net.ParseMAC(*mac)
		if err != nil || fs.NArg() < 1 {
			usage()
		}
		var names []string
		var caps [][]verify.Frame
		for _, a := range fs.Args() {
			name, file, ok := strings.Cut(a, "=")
			if !ok {
				usage()
			}
			frames, err := verify.ReadFile(file)
			if err != nil {
				fail(err)
			}
			names = append(names, name)
			caps = append(caps, frames)
		}
		r, err := verify.CheckSources(names, caps, hw, *maxSw)
		fmt.Print(r)
		verdict(err)
	case "count":
		mac := fs.String("src-mac", guestMAC, "count frames from this MAC")
		_ = fs.Parse(os.Args[2:])
		hw, err := net.ParseMAC(*mac)
		if err != nil || fs.NArg() != 1 {
			usage()
		}
		frames, err := verify.ReadFile(fs.Arg(0))
		if err != nil {
			fail(err)
		}
		fmt.Println(verify.CountFrom(frames, hw))
	default:
		usage()
	}
}

func verdict(err error) {
	if err != nil {
		fmt.Println("FAIL:", err)
		os.Exit(1)
	}
	fmt.Println("PASS")
}
