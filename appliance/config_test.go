package appliance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const goodConfig = `
[box]
name = "boxa"
preferred_role = "primary"

[lan]
bridge = "br0"
tap = "tap0"

[log_link]
interface = "log0"
peer_mac = "02:00:00:00:00:0b"
key_file = "/etc/ftbox/pair.key"

[guest]
image = "/var/lib/ftbox/netsvc.elf"
mac = "52:54:00:12:34:56"

[arbiter]
address = "10.77.0.2:7700"

[heartbeat]
interval = "20ms"
`

func TestParseConfigGood(t *testing.T) {
	c, err := ParseConfig([]byte(goodConfig))
	if err != nil {
		t.Fatal(err)
	}
	if c.Heartbeat.Interval.Duration != 20*time.Millisecond || c.Heartbeat.Timeout.Duration != DefaultHeartbeatTimeout {
		t.Fatalf("heartbeat %+v", c.Heartbeat)
	}
	if c.Box.ControlSocket != DefaultControlSocket || c.Guest.Memory != "128M" {
		t.Fatalf("defaults not applied: %+v", c)
	}
}

func TestParseConfigBad(t *testing.T) {
	cases := map[string]struct{ edit, want string }{
		"unknown key":   {`name = "boxa"`, "unknown keys: box.nmae"},
		"bad role":      {`preferred_role = "primary"`, "preferred_role"},
		"multicast mac": {`mac = "52:54:00:12:34:56"`, "multicast"},
		"bad peer mac":  {`peer_mac = "02:00:00:00:00:0b"`, "peer_mac"},
		"bad duration":  {`interval = "20ms"`, "parse"},
		"short timeout": {`interval = "20ms"`, "at least 3 intervals"},
		"bad ifname":    {`tap = "tap0"`, "lan.tap"},
		"bad arbiter":   {`address = "10.77.0.2:7700"`, "arbiter.address"},
		"not toml":      {`[box]`, "parse"},
	}
	repl := map[string]string{
		"unknown key":   `nmae = "boxa"`,
		"bad role":      `preferred_role = "leader"`,
		"multicast mac": `mac = "01:00:5e:00:00:01"`,
		"bad peer mac":  `peer_mac = "nope"`,
		"bad duration":  `interval = "fast"`,
		"short timeout": "interval = \"50ms\"\ntimeout = \"60ms\"",
		"bad ifname":    `tap = "tap/0"`,
		"bad arbiter":   `address = "10.77.0.2"`,
		"not toml":      `[box`,
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParseConfig([]byte(strings.Replace(goodConfig, c.edit, repl[name], 1)))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one mentioning %q", err, c.want)
			}
		})
	}
}

func TestKeyRoundTripAndPermissions(t *testing.T) {
	p := filepath.Join(t.TempDir(), "pair.key")
	if err := GenerateKey(p); err != nil {
		t.Fatal(err)
	}
	if err := GenerateKey(p); err == nil {
		t.Fatal("overwrote an existing key")
	}
	k1, err := LoadKey(p)
	if err != nil || k1 == ([KeySize]byte{}) {
		t.Fatalf("load: %v", err)
	}
	os.Chmod(p, 0o644)
	if _, err := LoadKey(p); err == nil || !strings.Contains(err.Error(), "0600") {
		t.Fatalf("accepted a world-readable key: %v", err)
	}
	os.Chmod(p, 0o600)
	os.WriteFile(p, []byte("abcd\n"), 0o600)
	if _, err := LoadKey(p); err == nil {
		t.Fatal("accepted a short key")
	}
}

func TestParseSize(t *testing.T) {
	good := map[string]uint64{"128M": 128 << 20, "1G": 1 << 30, "65536": 65536, "64MiB": 64 << 20}
	for s, want := range good {
		if got, err := ParseSize(s); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "12Q", "M", "1.5G", "-1", "99999999999999999999G"} {
		if _, err := ParseSize(s); err == nil {
			t.Errorf("ParseSize(%q) accepted", s)
		}
	}
}

func TestParseConfigLANPath(t *testing.T) {
	withLAN := func(lines string) string {
		return strings.Replace(goodConfig, `tap = "tap0"`, "tap = \"tap0\"\n"+lines, 1)
	}
	c, err := ParseConfig([]byte(withLAN("heartbeat_interface = \"br0\"\nheartbeat_peer_mac = \"02:f7:0b:00:00:20\"")))
	if err != nil {
		t.Fatal(err)
	}
	if c.LAN.HeartbeatInterface != "br0" || c.LAN.HeartbeatPeerMAC != "02:f7:0b:00:00:20" {
		t.Fatalf("lan %+v", c.LAN)
	}
	if c, err := ParseConfig([]byte(goodConfig)); err != nil || c.LAN.HeartbeatInterface != "" {
		t.Fatalf("the second path is optional: %v %+v", err, c)
	}
	bad := map[string]struct{ lines, want string }{
		"no peer mac":        {`heartbeat_interface = "br0"`, "lan.heartbeat_peer_mac (required with lan.heartbeat_interface)"},
		"peer mac alone":     {`heartbeat_peer_mac = "02:f7:0b:00:00:20"`, "lan.heartbeat_interface is not"},
		"bad peer mac":       {"heartbeat_interface = \"br0\"\nheartbeat_peer_mac = \"br0\"", "lan.heartbeat_peer_mac"},
		"broadcast peer mac": {"heartbeat_interface = \"br0\"\nheartbeat_peer_mac = \"ff:ff:ff:ff:ff:ff\"", "multicast"},
		"guest mac as peer":  {"heartbeat_interface = \"br0\"\nheartbeat_peer_mac = \"52:54:00:12:34:56\"", "the guest's MAC"},
		"the logging link":   {"heartbeat_interface = \"log0\"\nheartbeat_peer_mac = \"02:f7:0b:00:00:20\"", "the logging link's interface"},
		"the tap":            {"heartbeat_interface = \"tap0\"\nheartbeat_peer_mac = \"02:f7:0b:00:00:20\"", "the guest's TAP"},
		"bad ifname":         {"heartbeat_interface = \"br/0\"\nheartbeat_peer_mac = \"02:f7:0b:00:00:20\"", "lan.heartbeat_interface"},
		"typo":               {`heartbeat_iface = "br0"`, "unknown keys: lan.heartbeat_iface"},
	}
	for name, c := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := ParseConfig([]byte(withLAN(c.lines)))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one mentioning %q", err, c.want)
			}
		})
	}
}
