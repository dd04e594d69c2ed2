package rvgen

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func requireTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %s not found in PATH", name)
		}
		t.Skipf("%s not found in PATH", name)
	}
}

func TestGenerateDeterministic(t *testing.T) {
	a := Generate(42, Options{})
	b := Generate(42, Options{})
	if a != b {
		t.Fatal("same seed gave different programs")
	}
	if Generate(43, Options{}) == a {
		t.Fatal("different seeds gave the same program")
	}
	if n := strings.Count(a, "\ncall dump") + strings.Count(a, "\tcall dump"); n < 100 {
		t.Fatalf("%d dumps, want 100", n)
	}
}

// TestRunsOnQEMU checks that generated programs assemble and run to the end
// on the reference.
func TestRunsOnQEMU(t *testing.T) {
	requireTool(t, CC)
	requireTool(t, "qemu-system-riscv64")
	for _, seed := range []uint64{1, 2, 3} {
		elf, err := Build(t.TempDir(), seed, Options{Sequences: 30})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, "qemu-system-riscv64", "-machine", "virt", "-cpu", QEMUCPU, "-bios", "none",
			"-nographic", "-m", "128M", "-icount", "shift=0", "-kernel", elf).Output()
		cancel()
		if err != nil {
			t.Fatalf("seed %d: qemu: %v", seed, err)
		}
		if !bytes.HasSuffix(out, []byte("done\n")) || bytes.Count(out, []byte("\nseq ")) != 30 {
			t.Fatalf("seed %d: incomplete output:\n%s", seed, out)
		}
	}
}
