package main

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"ftbox/tools/testenv"
)

// TestBenchFT runs `ftbox bench ft` for a short window: both halves (the
// guest alone on a TAP, then the lab's pair) must answer, and the figures
// must be there and sane. It waits for the lab lock if the end-to-end tests
// have the lab.
func TestBenchFT(t *testing.T) {
	testenv.Root(t)
	for _, tool := range []string{"ip", "ping", "ss", "setsid"} {
		testenv.Tool(t, tool)
	}
	state, err := os.MkdirTemp("/run", "ftbox-bench-") // short: unix socket paths
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(state)
	cmd := exec.Command(ftboxBin(t), "bench", "ft", "--duration", "1s", "--lab", "../../tools/lab")
	cmd.Env = append(os.Environ(), "FTBOX_LAB_STATE="+state, "PATH=/usr/local/go/bin:"+os.Getenv("PATH"))
	var stderr syncBuffer
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	t.Logf("ftbox bench ft (%v):\n%s\n%s", time.Since(start).Round(time.Millisecond), out, stderr.String())
	if err != nil {
		t.Fatalf("ftbox bench ft: %v", err)
	}
	figure := func(name string) float64 {
		t.Helper()
		m := regexp.MustCompile(`(?m)^` + name + `: (-?[0-9.]+)`).FindSubmatch(out)
		if m == nil {
			t.Fatalf("no %s line", name)
		}
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		return v
	}
	for _, name := range []string{"nonft_rps", "ft_rps", "nonft_p50_us", "ft_p50_us", "nonft_p99_us", "ft_p99_us", "ft_throughput_ratio"} {
		if v := figure(name); v <= 0 {
			t.Errorf("%s: %v, want > 0", name, v)
		}
	}
	figure("added_latency_p50_us")
	figure("added_latency_p99_us")
	// Every input frame travels in a log entry, with its header: at least one log byte per input byte.
	if v := figure("log_entry_bytes_per_input_byte"); v < 1 {
		t.Errorf("log_entry_bytes_per_input_byte %v < 1", v)
	}
	if v := figure("log_bytes_per_input_byte"); v < 1 {
		t.Errorf("log_bytes_per_input_byte %v < 1", v)
	}
	if figure("ft_p99_us") < figure("ft_p50_us") || figure("nonft_p99_us") < figure("nonft_p50_us") {
		t.Errorf("percentiles out of order")
	}
	// Nothing left behind: the lab's namespaces and the baseline's.
	if _, err := os.Stat("/run/netns/ftlan"); err == nil {
		t.Errorf("the lab's namespace ftlan is still there")
	}
	if _, err := os.Stat("/run/netns/ftbench-" + strconv.Itoa(cmd.Process.Pid)); err == nil {
		t.Errorf("the baseline's namespace is still there")
	}
}
