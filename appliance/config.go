package appliance

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
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

// Bounds of the settings (see validate).
const (
	// MaxControlSocket is the longest control socket path: a unix
	// socket's sun_path holds 108 bytes with the terminating NUL.
	MaxControlSocket = 107
	// MinGuestMemory and MaxGuestMemory bound guest.memory (a multiple of
	// 4 KiB), as guestvm.New does.
	MinGuestMemory = 1 << 20
	MaxGuestMemory = 16 << 30
	// MaxGuestAppend is the longest guest.append (guestvm's bootargs).
	MaxGuestAppend = 1024
	// MinArbiterTimeout and MaxArbiterTimeout bound arbiter.timeout: below,
	// no answer ever arrives in time and the box cannot go live; above, a
	// lost datagram stalls the failover for longer than a retry would.
	MinArbiterTimeout = 10 * time.Millisecond
	MaxArbiterTimeout = 30 * time.Second
	// MaxHeartbeatTimeout bounds heartbeat.timeout, the failure detection
	// time.
	MaxHeartbeatTimeout = 30 * time.Second
	// maxConfigFile bounds what is read of a config file.
	maxConfigFile = 1 << 20
)

// LoadConfig reads a config file and checks it as ParseConfig does: its
// syntax and values, without looking at the files it names. Tools that
// only need the config's settings (ftbox status) use it; running a box
// needs CheckConfigFile.
func LoadConfig(path string) (*Config, error) {
	b, err := readConfigFile(path)
	if err != nil {
		return nil, err
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// readConfigFile reads a regular file of at most maxConfigFile bytes.
func readConfigFile(path string) ([]byte, error) {
	b, err := readSmallFile(path, maxConfigFile)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return b, nil
}

// readSmallFile reads path, refusing anything but a regular file of at most
// max bytes, and reading no more than that.
func readSmallFile(path string, max int64) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (mode %v)", path, st.Mode())
	}
	if st.Size() > max {
		return nil, fmt.Errorf("%s: %d bytes, more than %d", path, st.Size(), max)
	}
	// O_NONBLOCK: a FIFO put there since the Stat does not block the open.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return nil, err
	} else if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (mode %v)", path, st.Mode())
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: more than %d bytes", path, max)
	}
	return b, nil
}

// ParseConfig parses and validates a config, filling in defaults. It checks
// syntax and values only, never the filesystem (CheckConfig does that).
func ParseConfig(b []byte) (*Config, error) {
	c, err := parseConfig(b)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// parseConfig is ParseConfig, but returns the decoded config with its
// validation errors (nil only when the bytes are no config at all), so that
// CheckConfigFile can report the filesystem's problems alongside.
func parseConfig(b []byte) (*Config, error) {
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
	return &c, c.validate()
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
	switch n := c.Box.Name; {
	case n == "":
		bad("box.name is required")
	case len(n) > MaxClaimant:
		bad("box.name is %d bytes: the arbiter takes names of at most %d", len(n), MaxClaimant)
	default:
		if err := checkClaimant(n); err != nil {
			bad("box.name: %v", err)
		}
	}
	if r := c.Box.PreferredRole; r != "primary" && r != "backup" {
		bad("box.preferred_role %q: want primary or backup", r)
	}
	if s := c.Box.ControlSocket; len(s) > MaxControlSocket {
		bad("box.control_socket is %d bytes: a unix socket path takes at most %d", len(s), MaxControlSocket)
	} else if strings.IndexByte(s, 0) >= 0 {
		bad("box.control_socket %q has a NUL byte", s)
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
		if peer, err := parseHostMAC(c.LAN.HeartbeatPeerMAC); err != nil {
			bad("lan.heartbeat_peer_mac (required with lan.heartbeat_interface): %v", err)
		} else if g, err := net.ParseMAC(c.Guest.MAC); err == nil && bytes.Equal(peer, g) {
			bad("lan.heartbeat_peer_mac %s is the guest's MAC: want the peer box's own MAC on the LAN", c.LAN.HeartbeatPeerMAC)
		}
	} else if c.LAN.HeartbeatPeerMAC != "" {
		bad("lan.heartbeat_peer_mac is set but lan.heartbeat_interface is not")
	}
	ifs := []struct{ key, v string }{
		{"lan.tap", c.LAN.TAP}, {"log_link.interface", c.LogLink.Interface}, {"lan.bridge", c.LAN.Bridge},
	}
	for i, a := range ifs {
		for _, b := range ifs[i+1:] {
			if a.v != "" && a.v == b.v {
				bad("%s and %s are both %q: the guest's TAP, the logging link and the LAN bridge must be three interfaces", a.key, b.key, a.v)
			}
		}
	}
	if c.LAN.MTU != 0 && (c.LAN.MTU < 576 || c.LAN.MTU > 1500) {
		bad("lan.mtu %d: want 576..1500 (the guest NIC has no jumbo frames)", c.LAN.MTU)
	}
	guestMAC, guestErr := parseHostMAC(c.Guest.MAC)
	if peer, err := parseHostMAC(c.LogLink.PeerMAC); err != nil {
		bad("log_link.peer_mac: %v", err)
	} else if guestErr == nil && bytes.Equal(peer, guestMAC) {
		bad("log_link.peer_mac %s is the guest's MAC: want the peer box's MAC on the logging link", c.LogLink.PeerMAC)
	}
	if c.LogLink.KeyFile == "" {
		bad("log_link.key_file is required (make one with ftbox keygen)")
	}
	if c.Guest.Image == "" {
		bad("guest.image is required")
	}
	if guestErr != nil {
		bad("guest.mac: %v", guestErr)
	}
	if n, err := ParseSize(c.Guest.Memory); err != nil {
		bad("guest.memory: %v", err)
	} else if n%4096 != 0 || n < MinGuestMemory || n > MaxGuestMemory {
		bad("guest.memory %s: want a multiple of 4 KiB from 1M to %dG", c.Guest.Memory, MaxGuestMemory>>30)
	}
	if len(c.Guest.Append) > MaxGuestAppend {
		bad("guest.append is %d bytes: want at most %d", len(c.Guest.Append), MaxGuestAppend)
	} else if strings.IndexByte(c.Guest.Append, 0) >= 0 {
		bad("guest.append has a NUL byte")
	}
	if c.Arbiter.Address != "" {
		if err := checkHostPort(c.Arbiter.Address); err != nil {
			bad("arbiter.address: %v", err)
		}
	}
	if t := c.Arbiter.Timeout.Duration; t < MinArbiterTimeout || t > MaxArbiterTimeout {
		bad("arbiter.timeout %v: want %v..%v", c.Arbiter.Timeout, MinArbiterTimeout, MaxArbiterTimeout)
	}
	hb := c.Heartbeat
	if hb.Interval.Duration < time.Millisecond || hb.Interval.Duration > time.Second {
		bad("heartbeat.interval %v: want 1ms..1s", hb.Interval)
	}
	if hb.Timeout.Duration < 3*hb.Interval.Duration {
		bad("heartbeat.timeout %v: want at least 3 intervals (%v), or one lost heartbeat fails over", hb.Timeout, 3*hb.Interval.Duration)
	} else if hb.Timeout.Duration > MaxHeartbeatTimeout {
		bad("heartbeat.timeout %v: want at most %v", hb.Timeout, MaxHeartbeatTimeout)
	}
	return errors.Join(errs...)
}

// parseHostMAC parses the MAC of one host (a box's NIC or the guest's): a
// 6-byte unicast address, not all zeros.
func parseHostMAC(s string) (net.HardwareAddr, error) {
	hw, err := ParseUnicastMAC(s)
	if err != nil {
		return nil, err
	}
	if bytes.Equal(hw, make([]byte, 6)) {
		return nil, fmt.Errorf("%s is the all-zero address", hw)
	}
	return hw, nil
}

// checkHostPort checks a host:port to dial: a host, and a numeric port
// 1..65535.
func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if host == "" {
		return fmt.Errorf("%q has no host", s)
	}
	if strings.ContainsFunc(host, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("host %q has spaces or control characters", host)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("port %q: want a number 1..65535", port)
	}
	return nil
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

// maxKeyFile bounds what is read of a key file (GenerateKey writes 65 bytes).
const maxKeyFile = 4096

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
	b, err := readSmallFile(path, maxKeyFile)
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
