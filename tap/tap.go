package tap

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"syscall"

	"github.com/songgao/water"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Config describes a TAP device to create (or attach to) and how to plumb it.
type Config struct {
	Name   string // interface name, e.g. "tap0"
	MTU    int    // 0 keeps the kernel's default (1500)
	Bridge string // if set, enslave the TAP to this bridge
}

// TAP is a Port on a Linux TAP device.
//
// The device and the netlink queries of HardwareAddr and MTU stay in the
// network namespace of the thread that called Open, whichever goroutine uses
// the TAP later.
type TAP struct {
	name     string
	ifc      *water.Interface
	rc       syscall.RawConn // the TAP's file descriptor; nil: read through water
	overflow []byte          // receives the part of a frame that did not fit ReadFrame's buf
	nl       *netlink.Handle
	closed   atomic.Bool
}

// maxTAPFrame bounds what one read of a TAP returns: the largest MTU (65535)
// plus an Ethernet header and two VLAN tags.
const maxTAPFrame = 65535 + 14 + 8

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
	if f, ok := ifc.ReadWriteCloser.(*os.File); ok {
		if rc, err := f.SyscallConn(); err == nil {
			t.rc = rc
			t.overflow = make([]byte, maxTAPFrame)
		}
	}
	nl, err := netlink.NewHandle()
	if err != nil {
		ifc.Close()
		return nil, fmt.Errorf("open tap %s: netlink handle: %w", t.name, err)
	}
	t.nl = nl
	if err := t.plumb(cfg); err != nil {
		ifc.Close()
		nl.Close()
		return nil, err
	}
	return t, nil
}

func (t *TAP) plumb(cfg Config) error {
	link, err := t.nl.LinkByName(t.name)
	if err != nil {
		return fmt.Errorf("find link %s: %w", t.name, err)
	}
	if cfg.MTU != 0 {
		if err := t.nl.LinkSetMTU(link, cfg.MTU); err != nil {
			return fmt.Errorf("set mtu %d on %s: %w", cfg.MTU, t.name, err)
		}
	}
	if cfg.Bridge != "" {
		br, err := t.nl.LinkByName(cfg.Bridge)
		if err != nil {
			return fmt.Errorf("find bridge %s: %w", cfg.Bridge, err)
		}
		if err := t.nl.LinkSetMaster(link, br); err != nil {
			return fmt.Errorf("enslave %s to %s: %w", t.name, cfg.Bridge, err)
		}
	}
	if err := t.nl.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", t.name, err)
	}
	return nil
}

// Name is the kernel's name for the device.
func (t *TAP) Name() string { return t.name }

// ReadFrame implements Port. One goroutine at a time may read.
func (t *TAP) ReadFrame(buf []byte) (int, error) {
	for {
		if t.closed.Load() {
			return 0, ErrClosed
		}
		n, err := t.read(buf)
		if err != nil {
			if t.closed.Load() || errors.Is(err, os.ErrClosed) {
				return 0, ErrClosed
			}
			return 0, fmt.Errorf("read tap %s: %w", t.name, err)
		}
		if n < 14 { // runt: not an Ethernet frame
			continue
		}
		if n > len(buf) {
			return len(buf), ErrTruncated
		}
		return n, nil
	}
}

// read reads one frame. A read(2) on a TAP silently cuts a frame to the
// buffer's size, so the frame is read into buf and then t.overflow
// (readv(2)): a length beyond len(buf) means it did not fit. Frames that fit
// cost no extra copy.
func (t *TAP) read(buf []byte) (int, error) {
	if t.rc == nil {
		return t.ifc.Read(buf)
	}
	var (
		n    int
		rerr error
	)
	iov := [][]byte{buf, t.overflow}
	err := t.rc.Read(func(fd uintptr) bool {
		n, rerr = unix.Readv(int(fd), iov)
		return rerr != unix.EAGAIN && rerr != unix.EINTR
	})
	if err != nil {
		return 0, err
	}
	return n, rerr
}

// WriteFrame implements Port.
func (t *TAP) WriteFrame(f []byte) error {
	if t.closed.Load() {
		return ErrClosed
	}
	if _, err := t.ifc.Write(f); err != nil {
		if t.closed.Load() {
			return ErrClosed
		}
		return fmt.Errorf("write tap %s: %w", t.name, err)
	}
	return nil
}

// Close implements Port. The device disappears with it unless persistent.
func (t *TAP) Close() error {
	if t.closed.Swap(true) {
		return nil
	}
	err := t.ifc.Close()
	t.nl.Close()
	if err != nil {
		return fmt.Errorf("close tap %s: %w", t.name, err)
	}
	return nil
}

// HardwareAddr returns the TAP's own (host side) MAC address.
func (t *TAP) HardwareAddr() (net.HardwareAddr, error) {
	link, err := t.link()
	if err != nil {
		return nil, err
	}
	return link.Attrs().HardwareAddr, nil
}

// MTU returns the TAP's current MTU.
func (t *TAP) MTU() (int, error) {
	link, err := t.link()
	if err != nil {
		return 0, err
	}
	return link.Attrs().MTU, nil
}

func (t *TAP) link() (netlink.Link, error) {
	if t.closed.Load() {
		return nil, ErrClosed
	}
	link, err := t.nl.LinkByName(t.name)
	if err != nil {
		return nil, fmt.Errorf("find link %s: %w", t.name, err)
	}
	return link, nil
}
