package guests

import (
	"os/exec"
	"testing"

	"ftbox/tools/testenv"
)

// TestImagesCurrent rebuilds every guest from source and checks the committed
// images are byte-identical, so bin/ never drifts from the code beside it.
func TestImagesCurrent(t *testing.T) {
	testenv.Tool(t, "riscv64-unknown-elf-gcc")
	testenv.Tool(t, "make")
	out, err := exec.Command("make", "-s", "check").CombinedOutput()
	if err != nil {
		t.Fatalf("committed guest images are stale or do not build (run make -C tools/guests): %v\n%s", err, out)
	}
}

func TestResolve(t *testing.T) {
	for _, n := range []string{"hello", "selftest", "netsvc", "bench"} {
		if _, err := Image(n); err != nil {
			t.Error(err)
		}
	}
	if _, err := Resolve("no-such-guest"); err == nil {
		t.Fatal("unknown guest resolved")
	}
	if _, err := Resolve("/no/such/file.elf"); err == nil {
		t.Fatal("missing file resolved")
	}
}
