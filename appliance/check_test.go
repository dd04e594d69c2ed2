package appliance

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"ftbox/guestvm"
	"ftbox/tools/guests"
)

// TestParseConfigRules: each value rule, by a one-line edit of goodConfig,
// refused with its key named (or accepted at the bound).
func TestParseConfigRules(t *testing.T) {
	name64, name65 := strings.Repeat("b", 64), strings.Repeat("b", 65)
	sock107 := "/" + strings.Repeat("s", 106)
	sock108 := "/" + strings.Repeat("s", 107)
	cases := []struct {
		name, old, new string
		want           string // "" means accepted
	}{
		{"name of 64 bytes", `name = "boxa"`, `name = "` + name64 + `"`, ""},
		{"name of 65 bytes", `name = "boxa"`, `name = "` + name65 + `"`, "box.name is 65 bytes: the arbiter takes names of at most 64"},
		{"name with a newline", `name = "boxa"`, `name = "box\na"`, "box.name: "},
		{"name with a bell", `name = "boxa"`, `name = "box\u0007"`, "box.name: claimant \"box\\a\" has control characters"},
		{"socket of 107 bytes", `preferred_role = "primary"`, `preferred_role = "primary"` + "\ncontrol_socket = \"" + sock107 + `"`, ""},
		{"socket of 108 bytes", `preferred_role = "primary"`, `preferred_role = "primary"` + "\ncontrol_socket = \"" + sock108 + `"`, "box.control_socket is 108 bytes"},
		{"arbiter port 99999", `address = "10.77.0.2:7700"`, `address = "10.77.0.2:99999"`, "arbiter.address: port \"99999\": want a number 1..65535"},
		{"arbiter port 0", `address = "10.77.0.2:7700"`, `address = "10.77.0.2:0"`, "arbiter.address: port"},
		{"arbiter port by name", `address = "10.77.0.2:7700"`, `address = "10.77.0.2:http"`, "arbiter.address: port"},
		{"arbiter port 65535", `address = "10.77.0.2:7700"`, `address = "10.77.0.2:65535"`, ""},
		{"arbiter no host", `address = "10.77.0.2:7700"`, `address = ":7700"`, "arbiter.address: \":7700\" has no host"},
		{"arbiter host name", `address = "10.77.0.2:7700"`, `address = "arbiter.example:7700"`, ""},
		{"arbiter IPv6", `address = "10.77.0.2:7700"`, `address = "[2001:db8::5]:7700"`, ""},
		{"arbiter no port", `address = "10.77.0.2:7700"`, `address = "10.77.0.2"`, "arbiter.address"},
		{"arbiter timeout 1ns", `address = "10.77.0.2:7700"`, "address = \"10.77.0.2:7700\"\ntimeout = \"1ns\"", "arbiter.timeout 1ns: want 10ms..30s"},
		{"arbiter timeout 9ms", `address = "10.77.0.2:7700"`, "address = \"10.77.0.2:7700\"\ntimeout = \"9ms\"", "arbiter.timeout"},
		{"arbiter timeout negative", `address = "10.77.0.2:7700"`, "address = \"10.77.0.2:7700\"\ntimeout = \"-1s\"", "arbiter.timeout"},
		{"arbiter timeout 31s", `address = "10.77.0.2:7700"`, "address = \"10.77.0.2:7700\"\ntimeout = \"31s\"", "arbiter.timeout"},
		{"arbiter timeout 10ms", `address = "10.77.0.2:7700"`, "address = \"10.77.0.2:7700\"\ntimeout = \"10ms\"", ""},
		{"arbiter timeout 30s", `address = "10.77.0.2:7700"`, "address = \"10.77.0.2:7700\"\ntimeout = \"30s\"", ""},
		{"memory 1M", `mac = "52:54:00:12:34:56"`, "mac = \"52:54:00:12:34:56\"\nmemory = \"1M\"", ""},
		{"memory 16G", `mac = "52:54:00:12:34:56"`, "mac = \"52:54:00:12:34:56\"\nmemory = \"16G\"", ""},
		{"memory 17G", `mac = "52:54:00:12:34:56"`, "mac = \"52:54:00:12:34:56\"\nmemory = \"17G\"", "guest.memory 17G: want a multiple of 4 KiB from 1M to 16G"},
		{"memory 64G", `mac = "52:54:00:12:34:56"`, "mac = \"52:54:00:12:34:56\"\nmemory = \"64G\"", "guest.memory"},
		{"memory 512K", `mac = "52:54:00:12:34:56"`, "mac = \"52:54:00:12:34:56\"\nmemory = \"512K\"", "guest.memory"},
		{"memory not pages", `mac = "52:54:00:12:34:56"`, "mac = \"52:54:00:12:34:56\"\nmemory = \"1050000\"", "guest.memory"},
		{"memory no size", `mac = "52:54:00:12:34:56"`, "mac = \"52:54:00:12:34:56\"\nmemory = \"lots\"", "guest.memory"},
		{"append too long", `mac = "52:54:00:12:34:56"`, "mac = \"52:54:00:12:34:56\"\nappend = \"" + strings.Repeat("x", 1025) + `"`, "guest.append is 1025 bytes"},
		{"tap is the log link", `tap = "tap0"`, `tap = "log0"`, "lan.tap and log_link.interface are both \"log0\""},
		{"tap is the bridge", `tap = "tap0"`, `tap = "br0"`, "lan.tap and lan.bridge are both \"br0\""},
		{"log link is the bridge", `interface = "log0"`, `interface = "br0"`, "log_link.interface and lan.bridge are both \"br0\""},
		{"peer MAC all zero", `peer_mac = "02:00:00:00:00:0b"`, `peer_mac = "00:00:00:00:00:00"`, "log_link.peer_mac: 00:00:00:00:00:00 is the all-zero address"},
		{"peer MAC is the guest's", `peer_mac = "02:00:00:00:00:0b"`, `peer_mac = "52:54:00:12:34:56"`, "log_link.peer_mac 52:54:00:12:34:56 is the guest's MAC"},
		{"guest MAC all zero", `mac = "52:54:00:12:34:56"`, `mac = "00:00:00:00:00:00"`, "guest.mac: 00:00:00:00:00:00 is the all-zero address"},
		{"LAN peer MAC all zero", `tap = "tap0"`, "tap = \"tap0\"\nheartbeat_interface = \"br0\"\nheartbeat_peer_mac = \"00:00:00:00:00:00\"", "lan.heartbeat_peer_mac"},
		{"heartbeat interval 0.5ms", `interval = "20ms"`, `interval = "500us"`, "heartbeat.interval"},
		{"heartbeat interval 2s", `interval = "20ms"`, "interval = \"2s\"\ntimeout = \"6s\"", "heartbeat.interval"},
		{"heartbeat timeout 31s", `interval = "20ms"`, "interval = \"20ms\"\ntimeout = \"31s\"", "heartbeat.timeout 31s: want at most 30s"},
		{"heartbeat timeout 30s", `interval = "20ms"`, "interval = \"20ms\"\ntimeout = \"30s\"", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(goodConfig, c.old) {
				t.Fatalf("goodConfig has no %q", c.old)
			}
			_, err := ParseConfig([]byte(strings.Replace(goodConfig, c.old, c.new, 1)))
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

// TestParseConfigReportsAll: every problem at once, each naming its key.
func TestParseConfigReportsAll(t *testing.T) {
	b := strings.NewReplacer(
		`name = "boxa"`, `name = "`+strings.Repeat("n", 65)+`"`,
		`address = "10.77.0.2:7700"`, "address = \"10.77.0.2:99999\"\ntimeout = \"1ns\"",
		`tap = "tap0"`, `tap = "log0"`,
	).Replace(goodConfig)
	_, err := ParseConfig([]byte(b))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, key := range []string{"box.name", "arbiter.address", "arbiter.timeout", "lan.tap"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error does not name %s: %v", key, err)
		}
	}
}

// TestGuestMemoryBoundsMatchGuestVM: guest.memory's bounds are guestvm.New's.
func TestGuestMemoryBoundsMatchGuestVM(t *testing.T) {
	if _, err := guestvm.New(guestvm.Config{MemSize: MinGuestMemory}); err != nil {
		t.Fatalf("guestvm refuses the least guest.memory: %v", err)
	}
	for _, n := range []uint64{MinGuestMemory - 4096, MinGuestMemory + 2048, MaxGuestMemory + 4096} {
		if _, err := guestvm.New(guestvm.Config{MemSize: n}); err == nil {
			t.Errorf("guestvm takes %d bytes, which guest.memory refuses", n)
		}
	}
	if _, err := guestvm.New(guestvm.Config{MemSize: 1 << 20, Bootargs: strings.Repeat("x", MaxGuestAppend+1)}); err == nil {
		t.Errorf("guestvm takes bootargs longer than MaxGuestAppend")
	}
	if _, err := guestvm.New(guestvm.Config{MemSize: 1 << 20, Bootargs: strings.Repeat("x", MaxGuestAppend)}); err != nil {
		t.Errorf("guestvm refuses bootargs of MaxGuestAppend bytes: %v", err)
	}
}

// checkFixture is a directory with a good key and image, and a config
// using them.
type checkFixture struct {
	dir, key, image string
}

func newCheckFixture(t *testing.T) *checkFixture {
	t.Helper()
	f := &checkFixture{dir: t.TempDir()}
	f.key = filepath.Join(f.dir, "pair.key")
	if err := GenerateKey(f.key); err != nil {
		t.Fatal(err)
	}
	img, err := guests.Image("hello")
	if err != nil {
		t.Fatal(err)
	}
	f.image = filepath.Join(f.dir, "guest.elf")
	if err := os.WriteFile(f.image, img, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// config writes goodConfig with this fixture's key and image, then the
// replacements (old, new pairs), and returns its path.
func (f *checkFixture) config(t *testing.T, repl ...string) string {
	t.Helper()
	s := strings.NewReplacer(`key_file = "/etc/ftbox/pair.key"`, `key_file = "`+f.key+`"`,
		`image = "/var/lib/ftbox/netsvc.elf"`, `image = "`+f.image+`"`).Replace(goodConfig)
	for i := 0; i < len(repl); i += 2 {
		if !strings.Contains(s, repl[i]) {
			t.Fatalf("config has no %q", repl[i])
		}
		s = strings.Replace(s, repl[i], repl[i+1], 1)
	}
	p := filepath.Join(f.dir, "ftbox.toml")
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCheckConfigFile(t *testing.T) {
	f := newCheckFixture(t)
	c, err := CheckConfigFile(f.config(t))
	if err != nil {
		t.Fatalf("good config: %v", err)
	}
	if c.Box.Name != "boxa" || c.Arbiter.Timeout.Duration != DefaultArbiterTimeout {
		t.Fatalf("config %+v", c)
	}
	if _, err := CheckConfigFile(f.config(t, `image = "`+f.image+`"`, `image = "netsvc"`)); err != nil {
		t.Fatalf("built-in guest: %v", err)
	}

	mk := func(name string, b []byte, mode os.FileMode) string {
		p := filepath.Join(f.dir, name)
		if err := os.WriteFile(p, b, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fifo := filepath.Join(f.dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	keyDir := filepath.Join(f.dir, "keydir")
	os.Mkdir(keyDir, 0o700)
	hello, _ := guests.Image("hello")
	openKey := mk("open.key", []byte(strings.Repeat("ab", KeySize)+"\n"), 0o640)
	shortKey := mk("short.key", []byte("abcd\n"), 0o600)
	hugeKey := mk("huge.key", []byte(strings.Repeat("ab", 4096)), 0o600)
	notELF := mk("notelf.bin", []byte("#!/bin/sh\necho not a guest\n"), 0o644)
	truncated := mk("truncated.elf", hello[:40], 0o644)
	x86 := append([]byte(nil), hello...)
	x86[18], x86[19] = 62, 0 // EM_X86_64
	x86ELF := mk("x86.elf", x86, 0o644)

	key := func(p string) []string { return []string{`key_file = "` + f.key + `"`, `key_file = "` + p + `"`} }
	image := func(p string) []string { return []string{`image = "` + f.image + `"`, `image = "` + p + `"`} }
	cases := []struct {
		name string
		repl []string
		want string
	}{
		{"no key file", key(filepath.Join(f.dir, "none.key")), "log_link.key_file: read key: stat"},
		{"key readable by others", key(openKey), "log_link.key_file: key file " + openKey + " has mode -rw-r-----: make it 0600"},
		{"short key", key(shortKey), "log_link.key_file: key file " + shortKey + ": want 32 hex-encoded bytes"},
		{"huge key", key(hugeKey), "log_link.key_file: read key: " + hugeKey + ": 8192 bytes, more than 4096"},
		{"key is a FIFO", key(fifo), "log_link.key_file: read key: " + fifo + " is not a regular file"},
		{"key is a directory", key(keyDir), "log_link.key_file: read key: " + keyDir + " is not a regular file"},
		{"no image", image(filepath.Join(f.dir, "none.elf")), "guest.image: read image: stat"},
		{"unknown built-in", image("nosuchguest"), "guest.image: no built-in guest \"nosuchguest\""},
		{"image not ELF", image(notELF), "guest.image: " + notELF + ": not an ELF image"},
		{"image truncated", image(truncated), "guest.image: " + truncated + ": truncated ELF"},
		{"image for x86", image(x86ELF), "guest.image: " + x86ELF + ": ELF machine EM_X86_64: need EM_RISCV"},
		{"image is /dev/zero", image("/dev/zero"), "guest.image: /dev/zero is a character device, not a regular file"},
		{"image is a FIFO", image(fifo), "guest.image: " + fifo + " is a FIFO, not a regular file"},
		{"image is a directory", image(f.dir), "guest.image: " + f.dir + " is a directory, not a regular file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				_, err := CheckConfigFile(f.config(t, c.repl...))
				done <- err
			}()
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("error %v, want one containing %q", err, c.want)
				}
				if strings.Contains(err.Error(), "arbiter:") {
					t.Fatalf("error blames the arbiter: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("CheckConfigFile hangs")
			}
		})
	}

	// Value problems and file problems, all at once.
	p := f.config(t, `name = "boxa"`, `name = "`+strings.Repeat("n", 65)+`"`,
		`address = "10.77.0.2:7700"`, "address = \"10.77.0.2:99999\"\ntimeout = \"1ns\"",
		`key_file = "`+f.key+`"`, `key_file = "`+openKey+`"`,
		`image = "`+f.image+`"`, `image = "/dev/zero"`)
	_, err = CheckConfigFile(p)
	if err == nil || !strings.HasPrefix(err.Error(), p+": ") {
		t.Fatalf("error %v, want one starting with the file's name", err)
	}
	for _, key := range []string{"box.name", "arbiter.address", "arbiter.timeout", "log_link.key_file", "guest.image"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error does not name %s: %v", key, err)
		}
	}
	// A config file must be a regular file.
	if _, err := CheckConfigFile("/dev/zero"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("config /dev/zero: %v", err)
	}
	if _, err := LoadConfig(fifo); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("config FIFO: %v", err)
	}
	// LoadConfig checks values, not files: ftbox status reads the config
	// for its control socket only.
	if _, err := LoadConfig(f.config(t, `image = "`+f.image+`"`, `image = "/dev/zero"`)); err != nil {
		t.Errorf("LoadConfig looked at the image: %v", err)
	}
}

// TestShippedConfigsCheck: the lab's config template and the README's
// example pass the checks (with this box's key and a built-in image).
func TestShippedConfigsCheck(t *testing.T) {
	f := newCheckFixture(t)
	tmpl, err := os.ReadFile("../tools/lab.d/box.toml.in")
	if err != nil {
		t.Fatal(err)
	}
	for _, box := range []struct{ name, role, dir string }{{"box-a", "primary", "/run/ftbox-lab/a"}, {"box-b", "backup", "/run/ftbox-lab/b"}} {
		s := strings.NewReplacer("@NAME@", box.name, "@ROLE@", box.role, "@DIR@", box.dir,
			"@PEER_MAC@", "02:f7:0b:00:00:02", "@PEER_BR_MAC@", "02:f7:0b:00:00:20",
			"@STATE@/pair.key", f.key, "@IMAGE@", f.image, "@HB_INTERVAL@", "10ms", "@HB_TIMEOUT@", "100ms").Replace(string(tmpl))
		if strings.Contains(s, "@") {
			t.Fatalf("unreplaced placeholder in the lab config:\n%s", s)
		}
		p := filepath.Join(f.dir, box.name+".toml")
		os.WriteFile(p, []byte(s), 0o644)
		if _, err := CheckConfigFile(p); err != nil {
			t.Errorf("lab config: %v", err)
		}
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```toml\n(.*?)```").FindAllSubmatch(readme, -1)
	n := 0
	for _, b := range blocks {
		if !strings.Contains(string(b[1]), "[box]") {
			continue
		}
		n++
		s := regexp.MustCompile(`(?m)^key_file = "[^"]*"`).ReplaceAllString(string(b[1]), `key_file = "`+f.key+`"`)
		s = regexp.MustCompile(`(?m)^image = "[^"]*"`).ReplaceAllString(s, `image = "netsvc"`)
		p := filepath.Join(f.dir, "readme.toml")
		os.WriteFile(p, []byte(s), 0o644)
		if _, err := CheckConfigFile(p); err != nil {
			t.Errorf("README config: %v\n%s", err, b[1])
		}
	}
	if n == 0 {
		t.Fatal("no config in README.md")
	}
}
