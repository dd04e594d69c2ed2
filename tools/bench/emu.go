// Package bench measures ftbox against baselines taken in the same run, and
// prints `name: value unit` lines (DESIGN.md conventions).
package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"ftbox/guestvm"
)

// EmuResult is one emulator benchmark run.
type EmuResult struct {
	EmuMIPS   float64
	EmuInsns  uint64
	EmuTime   time.Duration
	QEMUMIPS  float64 // 0 when QEMU was not run
	QEMUInsns uint64
	QEMUTime  time.Duration
	Console   string
}

var instretRE = regexp.MustCompile(`instret: (\d+)`)

// Emu runs the CPU-bound bench guest under ftbox and, if qemuPath is not
// empty, under QEMU TCG with -icount shift=0 (one instruction per virtual
// nanosecond, the mode whose determinism matches ours), and reports MIPS
// for both. The guest prints its own minstret, which gives QEMU's count.
func Emu(ctx context.Context, image []byte, qemuPath string, out io.Writer) (EmuResult, error) {
	var r EmuResult
	m, err := guestvm.New(guestvm.Config{})
	if err != nil {
		return r, err
	}
	if err := m.Load(image); err != nil {
		return r, err
	}
	start := time.Now()
	res, err := m.RunOffline(1 << 40)
	r.EmuTime = time.Since(start)
	if err != nil {
		return r, err
	}
	if res.Exit != guestvm.ExitPass {
		return r, fmt.Errorf("bench guest ended with %v (code %d): %s", res.Exit, res.Code, res.Console)
	}
	r.Console = string(res.Console)
	r.EmuInsns = res.ICount
	r.EmuMIPS = float64(res.ICount) / r.EmuTime.Seconds() / 1e6
	fmt.Fprintf(out, "emu_insns: %d\nemu_seconds: %.3f\nemu_mips: %.1f\n", r.EmuInsns, r.EmuTime.Seconds(), r.EmuMIPS)
	if qemuPath == "" {
		fmt.Fprintln(out, "qemu_mips: n/a (qemu-system-riscv64 not installed)")
		return r, nil
	}
	dir, err := os.MkdirTemp("", "ftbox-bench")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	elf := filepath.Join(dir, "bench.elf")
	if err := os.WriteFile(elf, image, 0o644); err != nil {
		return r, err
	}
	cmd := exec.CommandContext(ctx, qemuPath, "-machine", "virt", "-bios", "none", "-nographic",
		"-icount", "shift=0", "-m", "128M", "-kernel", elf)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stdout
	start = time.Now()
	err = cmd.Run()
	r.QEMUTime = time.Since(start)
	if err != nil {
		return r, fmt.Errorf("qemu: %w: %s", err, stdout.String())
	}
	mm := instretRE.FindStringSubmatch(stdout.String())
	if mm == nil {
		return r, fmt.Errorf("qemu output has no instret line: %q", stdout.String())
	}
	r.QEMUInsns, _ = strconv.ParseUint(mm[1], 10, 64)
	r.QEMUMIPS = float64(r.QEMUInsns) / r.QEMUTime.Seconds() / 1e6
	fmt.Fprintf(out, "qemu_insns: %d\nqemu_seconds: %.3f\nqemu_mips: %.1f\nratio: %.3f\n",
		r.QEMUInsns, r.QEMUTime.Seconds(), r.QEMUMIPS, r.EmuMIPS/r.QEMUMIPS)
	return r, nil
}
