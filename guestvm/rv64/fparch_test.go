package rv64

import (
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"ftbox/tools/testenv"
)

// fpDigest hashes the results and flags of every FP operation, in every
// rounding mode, on many random edge-case operands of both formats.
func fpDigest() string {
	r := rand.New(rand.NewPCG(7, 8))
	h := sha256.New()
	var buf [9]byte
	put := func(v uint64, fl uint8) {
		for i := 0; i < 8; i++ {
			buf[i] = byte(v >> (8 * i))
		}
		buf[8] = fl
		h.Write(buf[:])
	}
	for i := 0; i < 20000; i++ {
		f, rnd := fmtD, randF64
		if i&1 != 0 {
			f, rnd = fmtS, randF32
		}
		a, b, c := rnd(r), rnd(r), rnd(r)
		for rm := uint8(0); rm <= rmRMM; rm++ {
			put(f.add(a, b, rm))
			put(f.sub(a, b, rm))
			put(f.mul(a, b, rm))
			put(f.div(a, b, rm))
			put(f.sqrt(a, rm))
			put(f.fma(a, b, c, rm&1 != 0, rm&2 != 0, rm))
			put(f.toInt(a, 32, true, rm))
			put(f.toInt(a, 64, false, rm))
			put(f.fromInt(a, rm&1 != 0, rm))
			if f.bits == 64 {
				put(fmtS.cvtF(fmtD, a, rm))
			}
		}
		put(f.minMax(a, b, i&2 != 0))
		put(f.cmp(uint32(i%3), a, b))
		put(f.fclass(a), 0)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestFPAcrossArch computes fpDigest in an arm64 build of this package under
// qemu-user and compares it with this host's: the arithmetic must not
// depend on the host (no fused multiply-adds by the compiler, no host
// rounding state).
func TestFPAcrossArch(t *testing.T) {
	d := fpDigest()
	if out := os.Getenv("FTBOX_FP_DIGEST_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(d), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if testing.Short() {
		t.Skip("cross-arch build skipped in -short mode")
	}
	testenv.Need(t, runtime.GOARCH == "amd64", "the cross-arch check runs from an amd64 host")
	qemu := testenv.Tool(t, "qemu-aarch64-static")
	dir := t.TempDir()
	bin := filepath.Join(dir, "rv64.test")
	build := exec.Command("go", "test", "-c", "-o", bin, ".")
	build.Env = append(os.Environ(), "GOARCH=arm64", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("arm64 build: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "digest")
	run := exec.Command(qemu, bin, "-test.run", "^TestFPAcrossArch$")
	run.Env = append(os.Environ(), "FTBOX_FP_DIGEST_OUT="+out)
	if o, err := run.CombinedOutput(); err != nil {
		t.Fatalf("arm64 run: %v\n%s", err, o)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != d {
		t.Fatalf("arm64 FP digest %s, amd64 %s", got, d)
	}
}
