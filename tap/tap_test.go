package tap_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"ftbox/tap"
	"ftbox/tap/porttest"
	"ftbox/tools/testenv"
)

func openTAP(t *testing.T, ns string, cfg tap.Config) *tap.TAP {
	t.Helper()
	var p *tap.TAP
	inNS(t, ns, func() error {
		var err error
		p, err = tap.Open(cfg)
		return err
	})
	t.Cleanup(func() { p.Close() })
	return p
}

// TestTAPConformance runs the suite with the TAP port as A and, as B, a raw
// socket on the same interface: what the TAP port writes the kernel receives
// on fttap0 (AF_PACKET sees it as incoming), and what the raw socket sends on
// fttap0 the kernel transmits to the TAP's file descriptor.
func TestTAPConformance(t *testing.T) {
	ns := quietNetNS(t, "fttap")
	for _, c := range []struct {
		name string
		typ  uint16
	}{{"LogEtherType", 0}, {"EtherTypeAll", tap.EtherTypeAll}} {
		t.Run(c.name, func(t *testing.T) {
			porttest.Run(t, func(t *testing.T) porttest.Pair {
				a := openTAP(t, ns, tap.Config{Name: "fttap0"})
				return porttest.Pair{A: a, B: openRaw(t, ns, "fttap0", c.typ)}
			})
		})
	}
}

// TestTAPPlumbing checks what Open does to the link: MTU, bridge master, up.
func TestTAPPlumbing(t *testing.T) {
	ns := quietNetNS(t, "fttapplumb")
	testenv.Run(t, "ip", "-n", ns, "link", "add", "ftbr0", "type", "bridge")
	testenv.Run(t, "ip", "-n", ns, "link", "set", "ftbr0", "up")
	p := openTAP(t, ns, tap.Config{Name: "fttap1", MTU: 9000, Bridge: "ftbr0"})
	if p.Name() != "fttap1" {
		t.Errorf("Name() = %q, want fttap1", p.Name())
	}

	var link, br netlink.Link
	inNS(t, ns, func() error {
		var err error
		if link, err = netlink.LinkByName("fttap1"); err != nil {
			return err
		}
		br, err = netlink.LinkByName("ftbr0")
		return err
	})
	a := link.Attrs()
	if link.Type() != "tuntap" {
		t.Errorf("link type %q, want tuntap", link.Type())
	}
	if tt, ok := link.(*netlink.Tuntap); ok && tt.Mode != netlink.TUNTAP_MODE_TAP {
		t.Errorf("tuntap mode %v, want tap", tt.Mode)
	}
	if a.MTU != 9000 {
		t.Errorf("netlink MTU %d, want 9000", a.MTU)
	}
	if a.MasterIndex != br.Attrs().Index {
		t.Errorf("master index %d, want ftbr0's %d", a.MasterIndex, br.Attrs().Index)
	}
	if a.Flags&net.FlagUp == 0 {
		t.Errorf("fttap1 is not up: %v", a.Flags)
	}
	if a.OperState != netlink.OperUp && a.OperState != netlink.OperUnknown {
		t.Errorf("fttap1 operstate %v with its file descriptor open", a.OperState)
	}

	// Asked from outside the namespace: the TAP's netlink handle stays in it.
	if mtu, err := p.MTU(); err != nil || mtu != 9000 {
		t.Errorf("MTU() = %d, %v; want 9000", mtu, err)
	}
	mac, err := p.HardwareAddr()
	if err != nil || !bytes.Equal(mac, a.HardwareAddr) {
		t.Errorf("HardwareAddr() = %v, %v; want %v", mac, err, a.HardwareAddr)
	}

	// The bridged TAP carries a jumbo frame to a raw socket on the bridge.
	r := openRaw(t, ns, "ftbr0", 0)
	f := make([]byte, 9014)
	copy(f, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x88, 0xb5})
	for i := 14; i < len(f); i++ {
		f[i] = byte(i)
	}
	if err := p.WriteFrame(f); err != nil {
		t.Fatalf("WriteFrame(9014 bytes): %v", err)
	}
	buf := make([]byte, 10000)
	n, err := readWithin(r, buf, 5*time.Second)
	if err != nil {
		t.Fatalf("raw port on the bridge: %v", err)
	}
	if !bytes.Equal(buf[:n], f) {
		t.Fatalf("frame through the bridge: got %d bytes, want the 9014 written", n)
	}

	p.Close()
	if _, err := p.MTU(); !errors.Is(err, tap.ErrClosed) {
		t.Errorf("MTU() after Close: %v, want ErrClosed", err)
	}
	inNS(t, ns, func() error {
		if _, err := netlink.LinkByName("fttap1"); err == nil {
			return errors.New("fttap1 still exists after Close")
		}
		return nil
	})
}

func TestTAPOpenErrors(t *testing.T) {
	ns := quietNetNS(t, "fttaperr")
	for _, name := range []string{"", "a-name-of-16-chr"} {
		if _, err := tap.Open(tap.Config{Name: name}); err == nil {
			t.Errorf("Open(%q) succeeded", name)
		}
	}
	err := testenv.InNetNS(ns, func() error {
		p, err := tap.Open(tap.Config{Name: "fttap2", Bridge: "nosuchbr"})
		if err == nil {
			p.Close()
			return errors.New("Open with a missing bridge succeeded")
		}
		if !strings.Contains(err.Error(), "nosuchbr") {
			return fmt.Errorf("error %q does not name the bridge", err)
		}
		if _, err := netlink.LinkByName("fttap2"); err == nil {
			return errors.New("fttap2 left behind by a failed Open")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func readWithin(p tap.Port, buf []byte, d time.Duration) (int, error) {
	type res struct {
		n   int
		err error
	}
	c := make(chan res, 1)
	go func() {
		n, err := p.ReadFrame(buf)
		c <- res{n, err}
	}()
	select {
	case r := <-c:
		return r.n, r.err
	case <-time.After(d):
		p.Close()
		<-c
		return 0, fmt.Errorf("no frame within %v", d)
	}
}
