// Package elfload turns a guest image (an RV64 ELF executable, or a raw
// binary) into segments placed in guest RAM. It validates everything before
// touching memory, so a bad image leaves the machine untouched and gets an
// error that says what is wrong.
package elfload

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
)

// Segment is a piece of the image to copy to guest physical address Addr,
// followed by Zero bytes of zeros (.bss).
type Segment struct {
	Addr uint64
	Data []byte
	Zero uint64
}

// Image is a parsed, validated guest image.
type Image struct {
	Entry    uint64
	Segments []Segment
}

// ErrNotELF is returned for images that do not start with the ELF magic.
var ErrNotELF = errors.New("not an ELF file")

// maxSegments bounds work on hostile headers.
const maxSegments = 64

// Parse reads an RV64 little-endian ELF executable and checks that every
// loadable segment and the entry point lie inside [ramBase, ramBase+ramSize).
func Parse(img []byte, ramBase, ramSize uint64) (im *Image, err error) {
	if !bytes.HasPrefix(img, []byte(elf.ELFMAG)) {
		return nil, ErrNotELF
	}
	// debug/elf is fuzzed upstream, but a guest image is untrusted input and a
	// panic would take the appliance down: turn one into an error.
	defer func() {
		if r := recover(); r != nil {
			im, err = nil, fmt.Errorf("malformed ELF: %v", r)
		}
	}()
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		return nil, fmt.Errorf("malformed ELF: %w", err)
	}
	switch {
	case f.Class != elf.ELFCLASS64:
		return nil, fmt.Errorf("ELF class %v: need ELFCLASS64 (RV64)", f.Class)
	case f.Data != elf.ELFDATA2LSB:
		return nil, fmt.Errorf("ELF data %v: need little-endian", f.Data)
	case f.Machine != elf.EM_RISCV:
		return nil, fmt.Errorf("ELF machine %v: need EM_RISCV", f.Machine)
	case f.Type != elf.ET_EXEC:
		return nil, fmt.Errorf("ELF type %v: need an executable (ET_EXEC)", f.Type)
	}
	im = &Image{Entry: f.Entry}
	for i, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Memsz == 0 {
			continue
		}
		if len(im.Segments) == maxSegments {
			return nil, fmt.Errorf("more than %d loadable segments", maxSegments)
		}
		if p.Filesz > p.Memsz {
			return nil, fmt.Errorf("segment %d: file size %#x exceeds memory size %#x", i, p.Filesz, p.Memsz)
		}
		if !inside(p.Paddr, p.Memsz, ramBase, ramSize) {
			return nil, fmt.Errorf("segment %d at %#x..%#x lies outside RAM %#x..%#x",
				i, p.Paddr, p.Paddr+p.Memsz, ramBase, ramBase+ramSize)
		}
		if p.Off > uint64(len(img)) || p.Filesz > uint64(len(img))-p.Off {
			return nil, fmt.Errorf("segment %d: file range %#x+%#x beyond the %d-byte image", i, p.Off, p.Filesz, len(img))
		}
		im.Segments = append(im.Segments, Segment{
			Addr: p.Paddr,
			Data: img[p.Off : p.Off+p.Filesz],
			Zero: p.Memsz - p.Filesz,
		})
	}
	if len(im.Segments) == 0 {
		return nil, errors.New("ELF has no loadable segments")
	}
	if !inside(im.Entry, 2, ramBase, ramSize) {
		return nil, fmt.Errorf("entry point %#x lies outside RAM", im.Entry)
	}
	return im, nil
}

// Raw places a raw binary at ramBase with its entry there, as QEMU's
// -kernel does for a non-ELF file.
func Raw(img []byte, ramBase, ramSize uint64) (*Image, error) {
	if len(img) == 0 {
		return nil, errors.New("raw image is empty")
	}
	if uint64(len(img)) > ramSize {
		return nil, fmt.Errorf("raw image of %d bytes does not fit in %d bytes of RAM", len(img), ramSize)
	}
	return &Image{Entry: ramBase, Segments: []Segment{{Addr: ramBase, Data: img}}}, nil
}

func inside(addr, n, base, size uint64) bool {
	return addr >= base && addr-base <= size && n <= size-(addr-base)
}
