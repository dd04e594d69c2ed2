package layout

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

type pkg struct {
	ImportPath string
	Imports    []string
}

// listPackages runs `go list -deps` over the module and returns its own
// packages (non-test code) with their direct imports.
func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Imports,Module", "ftbox/...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p struct {
			pkg
			Module *struct{ Path string }
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if p.Module != nil && p.Module.Path == "ftbox" {
			pkgs = append(pkgs, p.pkg)
		}
	}
	return pkgs
}

func under(path, root string) bool { return path == root || strings.HasPrefix(path, root+"/") }

// TestDependencyDirection enforces DESIGN.md: guestvm has no clock,
// randomness, OS, network or locks (determinism); ftcore has no sockets or OS
// (it is pure logic); neither reaches into another project package except
// its own sub-packages; dependencies point cmd → appliance → the rest.
func TestDependencyDirection(t *testing.T) {
	rules := []struct {
		root      string
		forbidden []string
	}{
		{"ftbox/guestvm", []string{"time", "math/rand", "math/rand/v2", "os", "net", "sync", "sync/atomic", "syscall"}},
		{"ftbox/ftcore", []string{"net", "os", "syscall"}},
	}
	pkgs := listPackages(t)
	if len(pkgs) == 0 {
		t.Fatal("go list found no packages")
	}
	for _, p := range pkgs {
		for _, r := range rules {
			if !under(p.ImportPath, r.root) {
				continue
			}
			for _, imp := range p.Imports {
				for _, f := range r.forbidden {
					if imp == f {
						t.Errorf("%s imports %s, which %s must not use", p.ImportPath, imp, r.root)
					}
				}
				if strings.HasPrefix(imp, "ftbox/") && !under(imp, r.root) {
					t.Errorf("%s imports %s: %s may use only its own sub-packages", p.ImportPath, imp, r.root)
				}
			}
		}
		for _, imp := range p.Imports {
			if under(imp, "ftbox/appliance") && !under(p.ImportPath, "ftbox/cmd") && !under(p.ImportPath, "ftbox/appliance") {
				t.Errorf("%s imports %s: only cmd may depend on the appliance", p.ImportPath, imp)
			}
			if under(imp, "ftbox/cmd") {
				t.Errorf("%s imports %s", p.ImportPath, imp)
			}
		}
	}
}
