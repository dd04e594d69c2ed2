package appliance

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is one box's configuration file (TOML). Unknown keys are errors: a
// typo in a fault-tolerance setting must not silently fall back to a default.
type Config struct {
	Box       BoxConfig       `toml:"box"`
	LAN       LANConfig       `toml:"lan"`
	LogLink   LogLinkConfig   `toml:"log_link"`
	Guest     GuestConfig     `toml:"guest"`
	Arbiter   ArbiterConfig   `toml:"arbiter"`
	Heartbeat HeartbeatConfig `toml:"heartbeat"`
}

// BoxConfig names this box and its starting role.
type BoxConfig struct {
	Name          string `toml:"name"`
	PreferredRole string `toml:"preferred_role"` // "primary" or "backup"
	ControlSocket string `toml:"control_socket"`
}

// LANConfig is where the guest meets the LAN, and the optional second
// heartbeat path to the peer over the LAN (ftcore's "second path").
type LANConfig struct {
	Bridge string `toml:"bridge"`
	TAP    string `toml:"tap"`
	MTU    int    `toml:"mtu"`

	// HeartbeatInterface, if set, carries heartbeats to and from the peer
	// over the LAN (raw frames of the logging link's EtherType, sealed
	// with the same session keys), beside the logging link. With it, a
	// cut logging link with the LAN up costs no failover: the backup
	// takes over only when both paths fell silent (see ftcore's package
	// documentation, "The second path"). It is the box's own LAN
	// interface: the bridge (br0) when the LAN NIC is a bridge port —
	// frames arriving on a bridge port belong to the bridge.
	HeartbeatInterface string `toml:"heartbeat_interface"`
	// HeartbeatPeerMAC is the peer's MAC on its HeartbeatInterface
	// (required with it): second-path frames are unicast there, never
	// broadcast, so they reach neither the guests' TAPs nor other hosts.
	// A bridge's MAC follows its ports unless set: pin it.
	HeartbeatPeerMAC string `toml:"heartbeat_peer_mac"`
}

// LogLinkConfig is the dedicated logging link to the peer.
type LogLinkConfig struct {
	Interface string `toml:"interface"`
	PeerMAC   string `toml:"peer_mac"`
	KeyFile   string `toml:"key_file"`
}

// GuestConfig is the replicated machine.
type GuestConfig struct {
	Image  string `toml:"image"`
	MAC    string `toml:"mac"`
	Memory string `toml:"memory"`
	Append string `toml:"append"`
}

// ArbiterConfig is the test-and-set service that breaks ties on failover.
type ArbiterConfig struct {
	Address string   `toml:"address"` // host:port; empty means no automatic go-live
	Timeout Duration `toml:"timeout"`
}

// HeartbeatConfig tunes failure detection.
type HeartbeatConfig struct {
	Interval Duration `toml:"interval"`
	Timeout  Duration `toml:"timeout"`
}

// Duration is a time.Duration written as "10ms" in TOML.
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Defaults for settings a config may leave out.
const (
	DefaultControlSocket     = "/run/ftbox/ftbox.sock"
	DefaultHeartbeatInterval = 10 * time.Millisecond
	DefaultHeartbeatTimeout  = 100 * time.Millisecond
	DefaultArbiterTimeout    = 500 * time.Millisecond
)

// LoadConfig reads and validates a config file.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseConfig parses and validates a config, filling in defaults.
func ParseConfig(b []byte) (*Config, error) {
	var c Config
	md, err := toml.NewDecoder(bytes.NewReader(b)).Decode(&c)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		sort.Strings(keys)
		return nil, fmt.Errorf("unknown keys: %s", strings.Join(keys, ", "))
	}
	c.defaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) defaults() {
	if c.Box.ControlSocket == "" {
		c.Box.ControlSocket = DefaultControlSocket
	}
	if c.Box.PreferredRole == "" {
		c.Box.PreferredRole = "backup"
	}
	if c.Guest.Memory == "" {
		c.Guest.Memory = "128M"
	}
	if c.Heartbeat.Interval.Duration == 0 {
		c.Heartbeat.Interval.Duration = DefaultHeartbeatInterval
	}
	if c.Heartbeat.Timeout.Duration == 0 {
		c.Heartbeat.Timeout.Duration = DefaultHeartbeatTimeout
	}
	if c.Arbiter.Timeout.Duration == 0 {
		c.Arbiter.Timeout.Duration = DefaultArbiterTimeout
	}
}

func (c *Config) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.Box.Name == "" {
		bad("box.name is required")
	}
	if r := c.Box.PreferredRole; r != "primary" && r != "backup" {
		bad("box.preferred_role %q: want primary or backup", r)
	}
	for _, f := range []struct{ key, v string }{
		{"lan.tap", c.LAN.TAP}, {"log_link.interface", c.LogLink.Interface},
	} {
		if err := checkIfName(f.v); err != nil {
			bad("%s: %v", f.key, err)
		}
	}
	if c.LAN.Bridge != "" {
		if err := checkIfName(c.LAN.Bridge); err != nil {
			bad("lan.bridge: %v", err)
		}
	}
	if hb := c.LAN.HeartbeatInterface; hb != "" {
		switch err := checkIfName(hb); {
		case err != nil:
			bad("lan.heartbeat_interface: %v", err)
		case hb == c.LogLink.Interface:
			bad("lan.heartbeat_interface %q is the logging link's interface: the second path must be another link (the LAN)", hb)
		case hb == c.LAN.TAP:
			bad("lan.heartbeat_interface %q is the guest's TAP: use the box's LAN interface (its bridge)", hb)
		}
		if peer, err := ParseUnicastMAC(c.LAN.HeartbeatPeerMAC); err != nil {
			bad("lan.heartbeat_peer_mac (required with lan.heartbeat_interface): %v", err)
		} else if g, err := net.ParseMAC(c.Guest.MAC); err == nil && bytes.Equal(peer, g) {
			bad("lan.heartbeat_peer_mac %s is the guest's MAC: want the peer box's own MAC on the LAN", c.LAN.HeartbeatPeerMAC)
		}
	} else if c.LAN.HeartbeatPeerMAC != "" {
		bad("lan.heartbeat_peer_mac is set but lan.heartbeat_interface is not")
	}
	if c.LAN.MTU != 0 && (c.LAN.MTU < 576 || c.LAN.MTU > 1500) {
		bad("lan.mtu %d: want 576..1500 (the guest NIC has no jumbo frames)", c.LAN.MTU)
	}
	if _, err := ParseUnicastMAC(c.LogLink.PeerMAC); err != nil {
		bad("log_link.peer_mac: %v", err)
	}
	if c.LogLink.KeyFile == "" {
		bad("log_link.key_file is required (make one with ftbox keygen)")
	}
	if c.Guest.Image == "" {
		bad("guest.image is required")
	}
	if _, err := ParseUnicastMAC(c.Guest.MAC); err != nil {
		bad("guest.mac: %v", err)
	}
	if _, err := ParseSize(c.Guest.Memory); err != nil {
		bad("guest.memory: %v", err)
	}
	if c.Arbiter.Address != "" {
		if _, _, err := net.SplitHostPort(c.Arbiter.Address); err != nil {
			bad("arbiter.address: %v", err)
		}
	}
	hb := c.Heartbeat
	if hb.Interval.Duration < time.Millisecond || hb.Interval.Duration > time.Second {
		bad("heartbeat.interval %v: want 1ms..1s", hb.Interval)
	}
	if hb.Timeout.Duration < 3*hb.Interval.Duration {
		bad("heartbeat.timeout %v: want at least 3 intervals (%v), or one lost heartbeat fails over", hb.Timeout, 3*hb.Interval.Duration)
	}
	return errors.Join(errs...)
}

func checkIfName(s string) error {
	if s == "" {
		return errors.New("required")
	}
	if len(s) > 15 || strings.ContainsAny(s, "/ \t\n:") || s == "." || s == ".." {
		return fmt.Errorf("%q is not a valid interface name", s)
	}
	return nil
}

// ParseUnicastMAC parses a 6-byte unicast MAC address.
func ParseUnicastMAC(s string) (net.HardwareAddr, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return nil, fmt.Errorf("%q is not a 6-byte MAC address", s)
	}
	if hw[0]&1 != 0 {
		return nil, fmt.Errorf("%s is a multicast address", hw)
	}
	return hw, nil
}

// ParseSize reads sizes like 128M, 1G, 65536.
func ParseSize(s string) (uint64, error) {
	num := strings.TrimRight(s, "KMGiB")
	unit := s[len(num):]
	var n uint64
	if _, err := fmt.Sscanf(num, "%d", &n); err != nil || fmt.Sprint(n) != num {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	mult := map[string]uint64{"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("%q: unknown unit %q", s, unit)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * mult, nil
}

// KeySize is the length of the pair's pre-shared key.
const KeySize = 32

// GenerateKey writes a fresh pre-shared key, hex encoded, to path with mode
// 0600, refusing to overwrite an existing file.
func GenerateKey(path string) error {
	var k [KeySize]byte
	if _, err := rand.Read(k[:]); err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	if _, err := fmt.Fprintln(f, hex.EncodeToString(k[:])); err != nil {
		f.Close()
		return fmt.Errorf("write key: %w", err)
	}
	return f.Close()
}

// LoadKey reads a key written by GenerateKey. It refuses a key file that
// others can read: whoever holds the key can forge log frames.
func LoadKey(path string) ([KeySize]byte, error) {
	var k [KeySize]byte
	st, err := os.Stat(path)
	if err != nil {
		return k, fmt.Errorf("read key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return k, fmt.Errorf("key file %s has mode %v: make it 0600", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return k, fmt.Errorf("read key: %w", err)
	}
	raw, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(raw) != KeySize {
		return k, fmt.Errorf("key file %s: want %d hex-encoded bytes", path, KeySize)
	}
	copy(k[:], raw)
	return k, nil
}
