// Package guests embeds the prebuilt bare-metal guest images (built from the
// sources beside this file by `make -C tools/guests`), so `ftbox emu run
// netsvc` works from any directory, and resolves image arguments.
//
// An image argument is a file if one exists at that path, else the name of a
// built-in guest (also when a directory of that name is in the way). A file is checked before it is read: it must be a regular
// file (not /dev/zero, a FIFO or a directory) no larger than a bound, and an
// ELF image must show an RV64 executable in its header and program header
// table; only then is the rest read, never more than the size it had when
// opened. Check does the same without reading past the program headers.
package guests

import (
	"debug/elf"
	"embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"
	"syscall"
)

//go:embed bin/*.elf
var bin embed.FS

// MaxImageSize is the largest guest image file read (an ELF with debug
// sections may be larger than the RAM it loads into; a raw image is also
// bounded by the RAM size, see Options.MaxSize).
const MaxImageSize = 1 << 30

// Options say what an image argument must be.
type Options struct {
	// Raw: the image is a raw binary, not an ELF; only the regular-file
	// and size checks apply.
	Raw bool
	// MaxSize refuses larger files; 0 or more than MaxImageSize means
	// MaxImageSize.
	MaxSize int64
}

func (o Options) max() int64 {
	if o.MaxSize <= 0 || o.MaxSize > MaxImageSize {
		return MaxImageSize
	}
	return o.MaxSize
}

// Names lists the built-in guests.
func Names() []string {
	ents, _ := fs.ReadDir(bin, "bin")
	var names []string
	for _, e := range ents {
		names = append(names, strings.TrimSuffix(e.Name(), ".elf"))
	}
	sort.Strings(names)
	return names
}

// Image returns a built-in guest's ELF image.
func Image(name string) ([]byte, error) {
	b, err := bin.ReadFile("bin/" + name + ".elf")
	if err != nil {
		return nil, fmt.Errorf("no built-in guest %q (have %s)", name, strings.Join(Names(), ", "))
	}
	return b, nil
}

// Resolve reads arg as an ELF image file if one exists at that path, else
// returns the built-in guest of that name. See Load.
func Resolve(arg string) ([]byte, error) { return Load(arg, Options{}) }

// Load reads arg as an image file if one exists at that path, else returns
// the built-in guest of that name. The file is checked from its header
// before the rest is read (see the package documentation).
func Load(arg string, o Options) ([]byte, error) {
	f, size, builtin, err := open(arg, o)
	if err != nil {
		return nil, err
	}
	if builtin != nil {
		return builtin, nil
	}
	defer f.Close()
	if !o.Raw {
		if err := checkELF(f, size); err != nil {
			return nil, fmt.Errorf("%s: %w", arg, err)
		}
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: read image: the file shrank while being read", arg)
		}
		return nil, fmt.Errorf("read image: %w", err)
	}
	return b, nil
}

// Check checks arg as Load would, reading no more of a file than its ELF
// header and program header table (nothing of a raw image).
func Check(arg string, o Options) error {
	f, size, _, err := open(arg, o)
	if err != nil || f == nil {
		return err
	}
	defer f.Close()
	if !o.Raw {
		if err := checkELF(f, size); err != nil {
			return fmt.Errorf("%s: %w", arg, err)
		}
	}
	return nil
}

// open opens the image file arg and returns it with its size, or returns a
// built-in guest's image (checked like a file) when no file is at arg and
// arg names one.
func open(arg string, o Options) (f *os.File, size int64, builtin []byte, err error) {
	if arg == "" {
		return nil, 0, nil, errors.New("no image given")
	}
	st, err := os.Stat(arg)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) || strings.ContainsRune(arg, '/') {
			return nil, 0, nil, fmt.Errorf("read image: %w", err)
		}
		b, err := Image(arg)
		if err != nil {
			return nil, 0, nil, err
		}
		if int64(len(b)) > o.max() {
			return nil, 0, nil, fmt.Errorf("built-in guest %s: %d bytes, more than the %d allowed", arg, len(b), o.max())
		}
		return nil, 0, b, nil
	}
	if st.IsDir() && !strings.ContainsRune(arg, '/') {
		// A directory of that name (such as a guest's sources beside
		// this file) does not hide the built-in guest.
		if b, err := Image(arg); err == nil {
			return nil, 0, b, nil
		}
	}
	if err := regular(arg, st); err != nil {
		return nil, 0, nil, err
	}
	// O_NONBLOCK: should a FIFO replace the file since the Stat, opening
	// it must not wait for a writer. It changes nothing for a regular file.
	f, err = os.OpenFile(arg, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("read image: %w", err)
	}
	if st, err = f.Stat(); err == nil {
		err = regular(arg, st)
	}
	if err == nil && st.Size() > o.max() {
		err = fmt.Errorf("%s: %d bytes, more than the %d allowed for a guest image", arg, st.Size(), o.max())
	}
	if err != nil {
		f.Close()
		return nil, 0, nil, err
	}
	return f, st.Size(), nil, nil
}

func regular(arg string, st fs.FileInfo) error {
	if st.Mode().IsRegular() {
		return nil
	}
	kind := "special file"
	switch m := st.Mode(); {
	case m.IsDir():
		kind = "directory"
	case m&fs.ModeNamedPipe != 0:
		kind = "FIFO"
	case m&fs.ModeSocket != 0:
		kind = "socket"
	case m&fs.ModeCharDevice != 0:
		kind = "character device"
	case m&fs.ModeDevice != 0:
		kind = "block device"
	}
	return fmt.Errorf("%s is a %s, not a regular file: a guest image must be one", arg, kind)
}

// ErrNotELF: the image has no ELF magic (a raw binary, or not an image).
var ErrNotELF = errors.New("not an ELF image (no \\x7fELF magic)")

// ELF64 header layout (the fields checked).
const (
	ehSize     = 64
	phEntSize  = 56
	maxPhnum   = 1024 // far above any guest's; bounds what Check reads
	offType    = 16
	offMachine = 18
	offPhoff   = 32
	offPhent   = 54
	offPhnum   = 56
)

// checkELF checks that the file of the given size is an RV64 little-endian
// executable whose program headers and loadable segments lie within it,
// reading only the ELF header and the program header table.
func checkELF(r io.ReaderAt, size int64) error {
	var h [ehSize]byte
	n, err := r.ReadAt(h[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read image: %w", err)
	}
	if n < 4 || string(h[:4]) != elf.ELFMAG {
		return ErrNotELF
	}
	if n < ehSize {
		return fmt.Errorf("truncated ELF: %d bytes, shorter than the %d-byte ELF64 header", size, ehSize)
	}
	le := binary.LittleEndian
	switch {
	case elf.Class(h[elf.EI_CLASS]) != elf.ELFCLASS64:
		return fmt.Errorf("ELF class %v: need ELFCLASS64 (RV64)", elf.Class(h[elf.EI_CLASS]))
	case elf.Data(h[elf.EI_DATA]) != elf.ELFDATA2LSB:
		return fmt.Errorf("ELF data %v: need little-endian", elf.Data(h[elf.EI_DATA]))
	case elf.Version(h[elf.EI_VERSION]) != elf.EV_CURRENT:
		return fmt.Errorf("ELF version %d: need 1", h[elf.EI_VERSION])
	case elf.Machine(le.Uint16(h[offMachine:])) != elf.EM_RISCV:
		return fmt.Errorf("ELF machine %v: need EM_RISCV", elf.Machine(le.Uint16(h[offMachine:])))
	case elf.Type(le.Uint16(h[offType:])) != elf.ET_EXEC:
		return fmt.Errorf("ELF type %v: need an executable (ET_EXEC)", elf.Type(le.Uint16(h[offType:])))
	}
	phoff, phent, phnum := le.Uint64(h[offPhoff:]), le.Uint16(h[offPhent:]), le.Uint16(h[offPhnum:])
	switch {
	case phnum == 0:
		return errors.New("ELF has no program headers")
	case phnum > maxPhnum:
		return fmt.Errorf("ELF has %d program headers, more than %d", phnum, maxPhnum)
	case phent != phEntSize:
		return fmt.Errorf("ELF program header size %d: need %d", phent, phEntSize)
	}
	tab := uint64(phnum) * phEntSize
	if phoff > uint64(size) || tab > uint64(size)-phoff {
		return fmt.Errorf("truncated ELF: program headers at %#x+%#x beyond the %d-byte file", phoff, tab, size)
	}
	ph := make([]byte, tab)
	if _, err := r.ReadAt(ph, int64(phoff)); err != nil {
		return fmt.Errorf("read image: %w", err)
	}
	loads := 0
	for i := range int(phnum) {
		p := ph[i*phEntSize:]
		if elf.ProgType(le.Uint32(p)) != elf.PT_LOAD {
			continue
		}
		off, filesz, memsz := le.Uint64(p[8:]), le.Uint64(p[32:]), le.Uint64(p[40:])
		if memsz == 0 {
			continue
		}
		loads++
		if off > uint64(size) || filesz > uint64(size)-off {
			return fmt.Errorf("truncated ELF: segment %d's file range %#x+%#x beyond the %d-byte file", i, off, filesz, size)
		}
	}
	if loads == 0 {
		return errors.New("ELF has no loadable segments")
	}
	return nil
}
