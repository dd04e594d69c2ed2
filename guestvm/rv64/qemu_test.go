package rv64

import (
	"bytes"
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// qemuCPU is the QEMU 7.2 CPU profile this core matches: RV64IMAFDC + S + U,
// no extensions QEMU enables by default that we do not implement.
const qemuCPU = "rv64,h=false,zba=false,zbb=false,zbc=false,zbs=false," +
	"sstc=false,svpbmt=false,svinval=false,svnapot=false,Zihintpause=false,v=false,sscofpmf=false,marchid=0,mimpid=0"

// needTool returns the path of a tool, or skips (fails under CI=true).
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found (required when CI=true)", name)
		}
		t.Skipf("%s not found; skipping QEMU comparison", name)
	}
	return p
}

// buildGuest assembles testdata/<name>.S into an ELF.
func buildGuest(t *testing.T, name string) string {
	t.Helper()
	gcc := needTool(t, "riscv64-unknown-elf-gcc")
	out := filepath.Join(t.TempDir(), name+".elf")
	cmd := exec.Command(gcc, "-march=rv64imafdc_zicsr_zifencei", "-mabi=lp64", "-nostdlib",
		"-Ttestdata/link.ld", "-Itestdata", "-o", out, filepath.Join("testdata", name+".S"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("assemble %s: %v\n%s", name, err, b)
	}
	return out
}

func runQEMU(t *testing.T, elfPath string) []byte {
	t.Helper()
	q := needTool(t, "qemu-system-riscv64")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, q, "-machine", "virt", "-cpu", qemuCPU, "-bios", "none",
		"-nographic", "-monitor", "none", "-serial", "stdio", "-kernel", elfPath)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("qemu: %v\n%s", err, out)
	}
	return out
}

// runOurs loads the ELF into a fresh CPU and runs it to the finisher.
func runOurs(t *testing.T, elfPath string) []byte {
	t.Helper()
	f, err := elf.Open(elfPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ram := make([]byte, 16<<20)
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Filesz == 0 {
			continue
		}
		if _, err := p.ReadAt(ram[p.Paddr-ramBaseT:p.Paddr-ramBaseT+p.Filesz], 0); err != nil {
			t.Fatal(err)
		}
	}
	bus := &testBus{}
	c := New(ram, ramBaseT, bus)
	bus.cpu = c
	c.Reset(f.Entry)
	for i := 0; i < 1000 && !bus.done; i++ {
		c.Run(100000)
	}
	if !bus.done {
		t.Errorf("guest did not finish; pc=%#x", c.PC())
	}
	return bus.out
}

func TestQEMUDiff(t *testing.T) {
	for _, name := range []string{"csr", "insn", "priv", "vm", "fp", "pmp"} {
		t.Run(name, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join("testdata", name+".S")); err != nil {
				t.Skip("no program")
			}
			elfPath := buildGuest(t, name)
			want := runQEMU(t, elfPath)
			got := runOurs(t, elfPath)
			if !bytes.Equal(got, want) {
				gl, wl := bytes.Split(got, []byte("\n")), bytes.Split(want, []byte("\n"))
				for i := 0; i < len(gl) || i < len(wl); i++ {
					var g, w []byte
					if i < len(gl) {
						g = gl[i]
					}
					if i < len(wl) {
						w = wl[i]
					}
					if !bytes.Equal(g, w) {
						t.Errorf("line %d: ours %q, qemu %q", i+1, g, w)
					}
				}
			}
		})
	}
}
