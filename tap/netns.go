package tap

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// InNetNS runs f on an OS thread switched into the named network namespace.
// Sockets and devices that f creates stay in that namespace after it returns
// (the lab, the benchmarks and the tests open TAPs and client sockets so).
func InNetNS(name string, f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return fmt.Errorf("get current netns: %w", err)
	}
	defer orig.Close()
	h, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", name, err)
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		return fmt.Errorf("enter netns %s: %w", name, err)
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		// This thread is in the wrong namespace; leave it locked so the
		// runtime discards it rather than reusing it.
		runtime.LockOSThread()
		return fmt.Errorf("leave netns %s: %w", name, err)
	}
	return ferr
}
