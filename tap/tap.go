package tap

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"

	"github.com/songgao/water"
	"github.com/vishvananda/netlink"
)

// Config describes a TAP device to create (or attach to) and how to plumb it.
type Config struct {
	Name   string // interface name, e.g. "tap0"
	MTU    int    // 0 keeps the kernel's default (1500)
	Bridge string // if set, enslave the TAP to this bridge
}

// TAP is a Port on a Linux TAP device.
type TAP struct {
	name   string
	ifc    *water.Interface
	closed atomic.Bool
}

// Open creates (or attaches to a persistent) TAP device, sets its MTU and
// bridge master if asked, and brings it up.
func Open(cfg Config) (*TAP, error) {
	if cfg.Name == "" || len(cfg.Name) >= 16 {
		return nil, fmt.Errorf("tap name %q: want 1 to 15 characters", cfg.Name)
	}
	ifc, err := water.New(water.Config{
		DeviceType:             water.TAP,
		PlatformSpecificParams: water.PlatformSpecificParams{Name: cfg.Name},
	})
	if err != nil {
		return nil, fmt.Errorf("open tap %s: %w", cfg.Name, err)
	}
	t := &TAP{name: ifc.Name(), ifc: ifc}
	if err := t.plumb(cfg); err != nil {
		ifc.Close()
		return nil, err
	}
	return t, nil
}

func (t *TAP) plumb(cfg Config) error {
	link, err := netlink.LinkByName(t.name)
	if err != nil {
		return fmt.Errorf("find link %s: %w", t.name, err)
	}
	if cfg.MTU != 0 {
		if err := netlink.LinkSetMTU(link, cfg.MTU); err != nil {
			return fmt.Errorf("set mtu %d on %s: %w", cfg.MTU, t.name, err)
		}
	}
	if cfg.Bridge != "" {
		br, err := netlink.LinkByName(cfg.Bridge)
		if err != nil {
			return fmt.Errorf("find bridge %s: %w", cfg.Bridge, err)
		}
		if err := netlink.LinkSetMaster(link, br); err != nil {
			return fmt.Errorf("enslave %s to %s: %w", t.name, cfg.Bridge, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", t.name, err)
	}
	return nil
}

// Name is the kernel's name for the device.
func (t *TAP) Name() string { return t.name }

// ReadFrame implements Port.
func (t *TAP) ReadFrame(buf []byte) (int, error) {
	for {
		n, err := t.ifc.Read(buf)
		if err != nil {
			if t.closed.Load() || errors.Is(err, os.ErrClosed) {
				return 0, ErrClosed
			}
			return 0, fmt.Errorf("read tap %s: %w", t.name, err)
		}
		if n < 14 { // runt: not an Ethernet frame
			continue
		}
		return n, nil
	}
}

// WriteFrame implements Port.
func (t *TAP) WriteFrame(f []byte) error {
	if t.closed.Load() {
		return ErrClosed
	}
	if _, err := t.ifc.Write(f); err != nil {
		return fmt.Errorf("write tap %s: %w", t.name, err)
	}
	return nil
}

// Close implements Port. The device disappears with it unless persistent.
func (t *TAP) Close() error {
	if t.closed.Swap(true) {
		return nil
	}
	return t.ifc.Close()
}

// HardwareAddr returns the TAP's own (host side) MAC address.
func (t *TAP) HardwareAddr() (net.HardwareAddr, error) {
	link, err := netlink.LinkByName(t.name)
	if err != nil {
		return nil, fmt.Errorf("find link %s: %w", t.name, err)
	}
	return link.Attrs().HardwareAddr, nil
}
