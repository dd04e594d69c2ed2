// Package guests embeds the prebuilt bare-metal guest images (built from the
// sources beside this file by `make -C tools/guests`), so `ftbox emu run
// netsvc` works from any directory, and resolves image arguments.
package guests

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
)

//go:embed bin/*.elf
var bin embed.FS

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

// Resolve reads arg as a file if one exists at that path, else as the name
// of a built-in guest.
func Resolve(arg string) ([]byte, error) {
	if b, err := os.ReadFile(arg); err == nil {
		return b, nil
	} else if !os.IsNotExist(err) || strings.ContainsRune(arg, '/') {
		return nil, fmt.Errorf("read image: %w", err)
	}
	return Image(arg)
}
