package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"ftbox/appliance"
	"ftbox/tools/guests"
)

const testBoxConfig = `
[box]
name = "box-a"
preferred_role = "primary"
control_socket = "@DIR@/ftbox.sock"

[lan]
bridge = "br0"
tap = "tap0"

[log_link]
interface = "log0"
peer_mac = "02:00:00:00:00:0b"
key_file = "@KEY@"

[guest]
image = "@IMAGE@"
mac = "52:54:00:12:34:56"
memory = "4M"

[arbiter]
address = "10.77.0.2:7700"
timeout = "500ms"

[heartbeat]
interval = "10ms"
timeout = "100ms"
`

// writeBoxConfig writes testBoxConfig with a fresh key and the hello guest
// as a file, after the replacements (old, new pairs); it returns the path.
func writeBoxConfig(t *testing.T, repl ...string) string {
	t.Helper()
	dir := t.TempDir()
	key := filepath.Join(dir, "pair.key")
	if err := appliance.GenerateKey(key); err != nil {
		t.Fatal(err)
	}
	img, err := guests.Image("hello")
	if err != nil {
		t.Fatal(err)
	}
	image := filepath.Join(dir, "hello.elf")
	if err := os.WriteFile(image, img, 0o644); err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer("@DIR@", dir, "@KEY@", key, "@IMAGE@", image).Replace(testBoxConfig)
	for i := 0; i < len(repl); i += 2 {
		if !strings.Contains(s, repl[i]) {
			t.Fatalf("config has no %q", repl[i])
		}
		s = strings.Replace(s, repl[i], repl[i+1], 1)
	}
	p := filepath.Join(dir, "ftbox.toml")
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// execute runs a command in-process with args, returning its output and
// error.
func execute(c *cobra.Command, args ...string) (string, error) {
	var out bytes.Buffer
	c.SetOut(&out)
	c.SetErr(&out)
	c.SetArgs(args)
	c.SilenceUsage, c.SilenceErrors = true, true
	err := c.Execute()
	return out.String(), err
}

func TestConfigCheckGood(t *testing.T) {
	p := writeBoxConfig(t)
	out, err := execute(configCmd(), "check", p)
	if err != nil || !strings.Contains(out, "ok (box box-a, preferred role primary)") {
		t.Fatalf("config check: %q, %v", out, err)
	}
}

// TestConfigCheckRefusesNoFailover: configs that leave the pair no
// failover, each problem reported with its key.
func TestConfigCheckRefusesNoFailover(t *testing.T) {
	p := writeBoxConfig(t,
		`name = "box-a"`, `name = "`+strings.Repeat("a", 65)+`"`,
		`address = "10.77.0.2:7700"`, `address = "10.77.0.2:99999"`,
		`timeout = "500ms"`, `timeout = "1ns"`)
	_, err := execute(configCmd(), "check", p)
	if err == nil {
		t.Fatal("config check accepted it")
	}
	for _, want := range []string{
		"box.name is 65 bytes: the arbiter takes names of at most 64",
		`arbiter.address: port "99999": want a number 1..65535`,
		"arbiter.timeout 1ns: want 10ms..30s",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}

// TestConfigCheckAndRunAgree: ftbox run refuses each bad config with the
// very error ftbox config check gives, before it opens anything (each case
// has a bad file, so that even a run missing a check stops before the
// devices).
func TestConfigCheckAndRunAgree(t *testing.T) {
	notELF := filepath.Join(t.TempDir(), "notelf.bin")
	os.WriteFile(notELF, []byte("not a guest image at all"), 0o644)
	cases := map[string][]string{
		"missing key": {`key_file = "`, `key_file = "/nonexistent`},
		"bad name, missing key": {`name = "box-a"`, `name = "` + strings.Repeat("a", 65) + `"`,
			`key_file = "`, `key_file = "/nonexistent`},
		"bad arbiter, missing key": {`address = "10.77.0.2:7700"`, `address = "10.77.0.2:99999"`,
			`timeout = "500ms"`, `timeout = "1ns"`, `key_file = "`, `key_file = "/nonexistent`},
		"image not ELF": {`image = "`, `image = "` + notELF + `" #`},
		"zero peer MAC, image not ELF": {`peer_mac = "02:00:00:00:00:0b"`, `peer_mac = "00:00:00:00:00:00"`,
			`image = "`, `image = "` + notELF + `" #`},
	}
	for name, repl := range cases {
		t.Run(name, func(t *testing.T) {
			p := writeBoxConfig(t, repl...)
			_, checkErr := execute(configCmd(), "check", p)
			if checkErr == nil {
				t.Fatal("config check accepted it")
			}
			_, runErr := execute(runCmd(), "--config", p)
			if runErr == nil || runErr.Error() != checkErr.Error() {
				t.Fatalf("run and config check disagree:\nrun:   %v\ncheck: %v", runErr, checkErr)
			}
			if strings.Contains(checkErr.Error(), "arbiter: ") {
				t.Fatalf("a key problem blamed on the arbiter: %v", checkErr)
			}
		})
	}
}

func TestNewArbiterKeyError(t *testing.T) {
	cfg := &appliance.Config{}
	cfg.Arbiter.Address = "127.0.0.1:7700"
	cfg.LogLink.KeyFile = "/nonexistent/pair.key"
	_, err := newArbiter(cfg)
	if err == nil || !strings.HasPrefix(err.Error(), "log_link.key_file: ") {
		t.Fatalf("error %v, want one about log_link.key_file", err)
	}
}

// TestEmuRunRefusesBadImages: emu run checks an image before reading it.
func TestEmuRunRefusesBadImages(t *testing.T) {
	dir := t.TempDir()
	notELF := filepath.Join(dir, "notelf.bin")
	os.WriteFile(notELF, []byte("not a guest image at all"), 0o644)
	huge := filepath.Join(dir, "huge.bin")
	os.WriteFile(huge, nil, 0o644)
	os.Truncate(huge, 3<<30)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "/dev/zero"}, "/dev/zero is a character device, not a regular file"},
		{[]string{"run", "--raw", "/dev/zero"}, "/dev/zero is a character device, not a regular file"},
		{[]string{"run", dir}, "is a directory, not a regular file"},
		{[]string{"run", notELF}, "not an ELF image (no \\x7fELF magic) (a raw binary needs --raw)"},
		{[]string{"run", huge}, "3221225472 bytes, more than the 1073741824 allowed"},
		{[]string{"run", "--raw", "--mem", "4M", huge}, "more than the 4194304 allowed"},
	} {
		start := time.Now()
		_, err := execute(emuCmd(), c.args...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("emu %v: %v, want %q", c.args, err, c.want)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("emu %v took %v", c.args, d)
		}
	}
}
