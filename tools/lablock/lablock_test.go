package lablock

import (
	"context"
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
