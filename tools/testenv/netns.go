package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"ftbox/tap"
)

// NetNS creates a network namespace named prefix-PID for the test and removes
// it (with every device in it) when the test ends. It needs root and ip(8).
func NetNS(t testing.TB, prefix string) string {
	t.Helper()
	Root(t)
	Tool(t, "ip")
	name := fmt.Sprintf("%s-%d", prefix, os.Getpid())
	_ = exec.Command("ip", "netns", "del", name).Run() // a leftover from a killed run
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	Run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// Run runs a command and fails the test with its output if it fails.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// InNetNS runs f on an OS thread switched into the named namespace (see
// tap.InNetNS).
func InNetNS(name string, f func() error) error { return tap.InNetNS(name, f) }
