package guests

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

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

// loadOrCheck runs both Load and Check on arg, which must refuse it with an
// error containing want, each within a second.
func loadOrCheck(t *testing.T, arg string, o Options, want string) {
	t.Helper()
	for name, f := range map[string]func() error{
		"Load":  func() error { _, err := Load(arg, o); return err },
		"Check": func() error { return Check(arg, o) },
	} {
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- f() }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s(%s): %v, want an error containing %q", name, arg, err, want)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("%s(%s) took %v", name, arg, d)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s(%s) still running after 5s", name, arg)
		}
	}
}

func TestLoadRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, raw := range []bool{false, true} {
		loadOrCheck(t, "/dev/zero", Options{Raw: raw}, "character device, not a regular file")
		loadOrCheck(t, fifo, Options{Raw: raw}, "FIFO, not a regular file")
		loadOrCheck(t, dir, Options{Raw: raw}, "directory, not a regular file")
	}
}

// allocated is how many bytes f allocates.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestLoadBoundsLargeFiles(t *testing.T) {
	dir := t.TempDir()
	huge := filepath.Join(dir, "huge.bin") // 3 GB, sparse, not an ELF
	mid := filepath.Join(dir, "mid.bin")   // 512 MiB, sparse, not an ELF: within the bound, refused from its header
	for p, size := range map[string]int64{huge: 3 << 30, mid: 512 << 20} {
		if err := os.WriteFile(p, []byte("not an ELF"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, size); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		path string
		o    Options
		want string
	}{
		{huge, Options{}, "more than the 1073741824 allowed"},
		{huge, Options{Raw: true}, "more than the 1073741824 allowed"},
		{mid, Options{}, "not an ELF image"},
		{mid, Options{Raw: true, MaxSize: 128 << 20}, "more than the 134217728 allowed"},
	} {
		var err error
		n := allocated(func() { _, err = Load(c.path, c.o) })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Load(%s, %+v): %v, want %q", c.path, c.o, err, c.want)
		}
		if n > 1<<20 {
			t.Errorf("Load(%s, %+v) allocated %d bytes before refusing it", c.path, c.o, n)
		}
		n = allocated(func() { err = Check(c.path, c.o) })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Check(%s, %+v): %v, want %q", c.path, c.o, err, c.want)
		}
		if n > 1<<20 {
			t.Errorf("Check(%s, %+v) allocated %d bytes", c.path, c.o, n)
		}
	}
	// Within the bounds, a raw image is read whole.
	small := filepath.Join(dir, "small.bin")
	os.WriteFile(small, []byte("raw code"), 0o644)
	if b, err := Load(small, Options{Raw: true}); err != nil || string(b) != "raw code" {
		t.Fatalf("raw image: %q, %v", b, err)
	}
	if err := Check(small, Options{Raw: true}); err != nil {
		t.Fatal(err)
	}
	loadOrCheck(t, small, Options{}, "not an ELF image")
}

func TestLoadChecksELFHeader(t *testing.T) {
	good, err := Image("hello")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	edit := func(off int, v ...byte) []byte {
		b := bytes.Clone(good)
		copy(b[off:], v)
		return b
	}
	p := write("good.elf", good)
	if b, err := Load(p, Options{}); err != nil || !bytes.Equal(b, good) {
		t.Fatalf("valid ELF file: %v", err)
	}
	if err := Check(p, Options{}); err != nil {
		t.Fatalf("valid ELF file: %v", err)
	}
	phoff := binary.LittleEndian.Uint64(good[32:])
	phnum := binary.LittleEndian.Uint16(good[56:])
	phEnd := int(phoff) + int(phnum)*56
	ef, err := elf.NewFile(bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	segEnd := 0
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD && p.Memsz > 0 {
			segEnd = max(segEnd, int(p.Off+p.Filesz))
		}
	}
	bad := map[string]struct {
		b    []byte
		want string
	}{
		"short header":     {good[:40], "truncated ELF"},
		"magic only":       {good[:4], "truncated ELF"},
		"cut program hdrs": {good[:phEnd-1], "truncated ELF: program headers"},
		"cut segment":      {good[:segEnd-1], "truncated ELF: segment"},
		"32-bit":           {edit(4, byte(elf.ELFCLASS32)), "ELFCLASS64"},
		"big endian":       {edit(5, byte(elf.ELFDATA2MSB)), "little-endian"},
		"x86-64":           {edit(18, byte(elf.EM_X86_64), 0), "EM_RISCV"},
		"shared object":    {edit(16, byte(elf.ET_DYN), 0), "ET_EXEC"},
		"no phdrs":         {edit(56, 0, 0), "no program headers"},
		"empty":            {nil, "not an ELF image"},
	}
	for name, c := range bad {
		t.Run(name, func(t *testing.T) {
			loadOrCheck(t, write(strings.ReplaceAll(name, " ", "_"), c.b), Options{}, c.want)
		})
	}
	// The check of the built-ins' own images.
	for _, n := range Names() {
		b, _ := Image(n)
		if err := checkELF(bytes.NewReader(b), int64(len(b))); err != nil {
			t.Errorf("built-in %s: %v", n, err)
		}
		if err := Check(n, Options{}); err != nil {
			t.Errorf("Check(%s): %v", n, err)
		}
		if got, err := Resolve(n); err != nil || !bytes.Equal(got, b) {
			t.Errorf("Resolve(%s): %v", n, err)
		}
	}
	if err := Check("no-such-guest", Options{}); err == nil || !strings.Contains(err.Error(), "no built-in guest") {
		t.Errorf("unknown guest: %v", err)
	}
	if err := Check("/no/such/file.elf", Options{}); err == nil {
		t.Error("missing file checked ok")
	}
}
