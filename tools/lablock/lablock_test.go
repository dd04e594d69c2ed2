package lablock

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestAcquireExcludes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lab.lock")
	rel, err := acquire(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	waited := false
	if _, err := acquire(ctx, path, func() { waited = true }); err == nil || !waited {
		t.Fatalf("a second holder got the lock (err %v, waited %v)", err, waited)
	}
	rel()
	rel() // idempotent
	rel2, err := acquire(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	rel2()
}

// TestNotInherited: a process the holder starts does not get the lock's
// descriptor (os.OpenFile is close-on-exec), so it is free again as soon as
// the holder releases it or dies, whatever its children do. (Shell users of
// the lab lock, `flock LOCK tools/lab up`, rely on tools/lab closing it for
// its daemons instead: tools/e2e TestLabDaemonsDropCallersLock.)
func TestNotInherited(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lab.lock")
	rel, err := acquire(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command("sleep", "30")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	rel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rel2, err := acquire(ctx, path, nil)
	if err != nil {
		t.Fatalf("the lock is still held after its holder released it, by the child it started: %v", err)
	}
	rel2()
}
