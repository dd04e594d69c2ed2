package elfload

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

const (
	base = 0x80000000
	size = 1 << 20
)

// mkELF builds a minimal ELF64 executable with one PT_LOAD segment.
func mkELF(class, data byte, machine, typ uint16, entry, paddr, filesz, memsz uint64) []byte {
	var b bytes.Buffer
	ident := [16]byte{0x7f, 'E', 'L', 'F', class, data, 1}
	b.Write(ident[:])
	le := binary.LittleEndian
	w := func(v any) { binary.Write(&b, le, v) }
	w(typ)
	w(machine)
	w(uint32(1))
	w(entry)
	w(uint64(64)) // phoff
	w(uint64(0))  // shoff
	w(uint32(0))  // flags
	w(uint16(64)) // ehsize
	w(uint16(56)) // phentsize
	w(uint16(1))  // phnum
	w(uint16(64)) // shentsize
	w(uint16(0))  // shnum
	w(uint16(0))  // shstrndx
	// program header
	w(uint32(1))      // PT_LOAD
	w(uint32(5))      // flags
	w(uint64(120))    // offset
	w(paddr)          // vaddr
	w(paddr)          // paddr
	w(filesz)         // filesz
	w(memsz)          // memsz
	w(uint64(0x1000)) // align
	b.Write(bytes.Repeat([]byte{0x13}, int(min(filesz, 4096))))
	return b.Bytes()
}

func TestParseGood(t *testing.T) {
	img := mkELF(2, 1, 243, 2, base, base, 16, 64)
	im, err := Parse(img, base, size)
	if err != nil {
		t.Fatal(err)
	}
	if im.Entry != base || len(im.Segments) != 1 || len(im.Segments[0].Data) != 16 || im.Segments[0].Zero != 48 {
		t.Fatalf("bad image %+v", im)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name string
		img  []byte
		want string
	}{
		{"notelf", []byte("#!/bin/sh\necho hi\n"), "not an ELF"},
		{"class32", mkELF(1, 1, 243, 2, base, base, 16, 16), ""},
		{"bigendian", mkELF(2, 2, 243, 2, base, base, 16, 16), ""},
		{"x86", mkELF(2, 1, 62, 2, base, base, 16, 16), "EM_RISCV"},
		{"dyn", mkELF(2, 1, 243, 3, base, base, 16, 16), "ET_EXEC"},
		{"below", mkELF(2, 1, 243, 2, base, 0x1000, 16, 16), "outside RAM"},
		{"above", mkELF(2, 1, 243, 2, base, base+size-8, 16, 16), "outside RAM"},
		{"wrap", mkELF(2, 1, 243, 2, base, base, 16, ^uint64(0)), "outside RAM"},
		{"filesz", mkELF(2, 1, 243, 2, base, base, 32, 16), "exceeds memory size"},
		{"entry", mkELF(2, 1, 243, 2, 0x1000, base, 16, 16), "entry point"},
		{"truncated", mkELF(2, 1, 243, 2, base, base, 16, 16)[:100], ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(c.img, base, size)
			if err == nil {
				t.Fatal("accepted a bad image")
			}
			if c.want != "" && !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not mention %q", err, c.want)
			}
		})
	}
	if _, err := Parse([]byte("nope"), base, size); !errors.Is(err, ErrNotELF) {
		t.Fatalf("want ErrNotELF, got %v", err)
	}
}

func TestRaw(t *testing.T) {
	if _, err := Raw(nil, base, size); err == nil {
		t.Fatal("empty raw image accepted")
	}
	if _, err := Raw(make([]byte, size+1), base, size); err == nil {
		t.Fatal("oversized raw image accepted")
	}
	im, err := Raw([]byte{1, 2, 3, 4}, base, size)
	if err != nil || im.Entry != base {
		t.Fatal(im, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(mkELF(2, 1, 243, 2, base, base, 16, 64))
	f.Add(mkELF(2, 1, 243, 2, base, base, 16, 16)[:90])
	f.Add([]byte("\x7fELF"))
	f.Fuzz(func(t *testing.T, img []byte) {
		im, err := Parse(img, base, size)
		if err != nil {
			return
		}
		for _, s := range im.Segments {
			if s.Addr < base || s.Addr-base+uint64(len(s.Data))+s.Zero > size {
				t.Fatalf("segment outside RAM accepted: %#x", s.Addr)
			}
		}
	})
}
