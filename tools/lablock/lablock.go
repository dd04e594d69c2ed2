// Package lablock serializes the users of tools/lab. The lab's namespace
// names are fixed (ftlan, ftboxa, ftboxb, ftarb, ftclient), so two users —
// the end-to-end tests, `ftbox bench ft`, packages tested in parallel by
// `go test ./...` — must not have it up at once. Each holds this lock from
// before `tools/lab up` until after `tools/lab down`.
//
// The lock's descriptor is close-on-exec, so nothing a holder starts keeps
// it once the holder is gone. A shell holder (`flock /run/ftbox-lab.lock
// CMD`, `exec 9>/run/ftbox-lab.lock; flock 9`) passes it on to its
// children; tools/lab closes every inherited descriptor in the daemons it
// starts, so the lab's daemons never hold it.
package lablock

import (
	"context"
	"fmt"
	"os"
	"syscall"
)

// Path is the lock file.
const Path = "/run/ftbox-lab.lock"

// Acquire takes the lab lock, waiting for it until ctx is done; if it has to
// wait it first calls waiting (when not nil). The returned release function
// gives it back; it is safe to call more than once. The lock is an flock(2)
// on Path, so a holder that dies releases it.
func Acquire(ctx context.Context, waiting func()) (release func(), err error) {
	return acquire(ctx, Path, waiting)
}

func acquire(ctx context.Context, path string, waiting func()) (release func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lab lock: %w", err)
	}
	done := false
	release = func() {
		if !done {
			done = true
			f.Close()
		}
	}
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
		return release, nil
	}
	if waiting != nil {
		waiting()
	}
	got := make(chan error, 1)
	go func() { got <- flock(f) }()
	select {
	case err := <-got:
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lab lock %s: %w", path, err)
		}
	case <-ctx.Done():
		// The waiting flock cannot be interrupted; closing the file once it
		// returns gives the lock straight back.
		go func() { <-got; f.Close() }()
		return nil, fmt.Errorf("lab lock %s: %w", path, ctx.Err())
	}
	return release, nil
}

func flock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			return err
		}
	}
}
