package tap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"

	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

const (
	// EtherTypeLog is the logging link's EtherType, the default of OpenRaw.
	EtherTypeLog uint16 = 0x88B5
	// EtherTypeAll (ETH_P_ALL) makes a Raw port see frames of every
	// EtherType; for tests and captures, not for the logging link.
	EtherTypeAll uint16 = unix.ETH_P_ALL
)

// Raw is a Port on an AF_PACKET socket (mdlayher/packet) bound to one network
// interface and one EtherType: the logging link's transport.
//
// The socket is SOCK_RAW: frames are whole Ethernet frames in both
// directions. WriteFrame sends f as it is — the caller builds the header
// (destination, source, EtherType) and Raw neither checks nor rewrites it, so
// a Raw port may send any EtherType. ReadFrame returns only frames received
// from the link (never the port's own or the host's outgoing frames) whose
// EtherType is the bound one, header included; with EtherTypeAll it returns
// received frames of every type. A frame longer than the read buffer is
// reported with ErrTruncated (the kernel tells the real length), and its rest
// is discarded.
//
// A link that goes down does not end a pending ReadFrame: it waits for the
// link to come back (WriteFrame fails meanwhile). If the interface is deleted
// the port receives nothing more; Close still unblocks it.
//
// On a NIC that filters by MAC in hardware, frames to other unicast
// addresses arrive only in promiscuous mode (SetPromiscuous); veth and TAP do
// not filter.
type Raw struct {
	name      string
	index     int
	etherType uint16
	mac       net.HardwareAddr
	conn      *packet.Conn
	rc        syscall.RawConn
	nl        *netlink.Handle // bound to the namespace the port was opened in
	closed    atomic.Bool
}

// OpenRaw opens a Raw port on the interface ifname for frames of etherType
// (0 means EtherTypeLog). The interface must exist; OpenRaw does not bring it
// up. The port, and the netlink queries of MTU and HardwareAddr, stay in the
// network namespace of the calling thread.
func OpenRaw(ifname string, etherType uint16) (*Raw, error) {
	if etherType == 0 {
		etherType = EtherTypeLog
	}
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("open raw port on %s: %w", ifname, err)
	}
	nl, err := netlink.NewHandle()
	if err != nil {
		return nil, fmt.Errorf("open raw port on %s: netlink handle: %w", ifname, err)
	}
	conn, err := packet.Listen(ifi, packet.Raw, int(etherType), nil)
	if err != nil {
		nl.Close()
		return nil, fmt.Errorf("open raw port on %s (ethertype %#04x): %w", ifname, etherType, err)
	}
	r := &Raw{
		name:      ifi.Name,
		index:     ifi.Index,
		etherType: etherType,
		mac:       ifi.HardwareAddr,
		conn:      conn,
		nl:        nl,
	}
	if err := r.setup(); err != nil {
		conn.Close()
		nl.Close()
		return nil, fmt.Errorf("open raw port on %s: %w", ifname, err)
	}
	return r, nil
}

func (r *Raw) setup() error {
	rc, err := r.conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("syscall conn: %w", err)
	}
	r.rc = rc
	// The host's outgoing frames (and our own) are delivered to ETH_P_ALL
	// sockets; a Port reads only what its peer sent. ReadFrame also filters
	// PACKET_OUTGOING in case the option is missing (kernels before 4.20).
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	}); err != nil {
		return fmt.Errorf("control: %w", err)
	}
	if serr != nil && !errors.Is(serr, unix.ENOPROTOOPT) {
		return fmt.Errorf("setsockopt PACKET_IGNORE_OUTGOING: %w", serr)
	}
	return nil
}

// Name is the interface's name.
func (r *Raw) Name() string { return r.name }

// EtherType is the EtherType the port is bound to.
func (r *Raw) EtherType() uint16 { return r.etherType }

// HardwareAddr is the interface's MAC address as it was at OpenRaw: the
// source address for the frames the caller builds.
func (r *Raw) HardwareAddr() net.HardwareAddr { return append(net.HardwareAddr(nil), r.mac...) }

// MTU asks netlink for the link's current MTU: the largest payload after the
// 14-byte Ethernet header a frame written to the port may carry.
func (r *Raw) MTU() (int, error) {
	if r.closed.Load() {
		return 0, ErrClosed
	}
	link, err := r.nl.LinkByIndex(r.index)
	if err != nil {
		return 0, fmt.Errorf("raw port %s: mtu: %w", r.name, err)
	}
	return link.Attrs().MTU, nil
}

// SetPromiscuous turns promiscuous mode on the interface on or off for as
// long as the port is open.
func (r *Raw) SetPromiscuous(on bool) error {
	if r.closed.Load() {
		return ErrClosed
	}
	if err := r.conn.SetPromiscuous(on); err != nil {
		return fmt.Errorf("raw port %s: promiscuous %v: %w", r.name, on, err)
	}
	return nil
}

// ReadFrame implements Port.
func (r *Raw) ReadFrame(buf []byte) (int, error) {
	for {
		if r.closed.Load() {
			return 0, ErrClosed
		}
		var (
			n    int
			from unix.Sockaddr
			rerr error
		)
		err := r.rc.Read(func(fd uintptr) bool {
			// MSG_TRUNC: n is the frame's real length even when it did
			// not fit buf.
			n, from, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_TRUNC)
			return rerr != unix.EAGAIN && rerr != unix.EINTR
		})
		if r.closed.Load() {
			return 0, ErrClosed
		}
		if err == nil {
			err = rerr
		}
		if errors.Is(err, unix.ENETDOWN) {
			// The link went down (the kernel reports it once per
			// socket); the socket stays bound and receives again when
			// the link comes back up. Link loss is for the failure
			// detector to judge, not a reason to end the reader.
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("read raw port %s: %w", r.name, err)
		}
		if sll, ok := from.(*unix.SockaddrLinklayer); ok && sll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if n < 14 { // runt: not an Ethernet frame
			continue
		}
		if r.etherType != EtherTypeAll && len(buf) >= 14 && binary.BigEndian.Uint16(buf[12:14]) != r.etherType {
			continue // e.g. a VLAN-tagged frame whose inner type matched
		}
		if n > len(buf) {
			return len(buf), ErrTruncated
		}
		return n, nil
	}
}

// WriteFrame implements Port. f is a whole Ethernet frame; it is sent as is.
func (r *Raw) WriteFrame(f []byte) error {
	if r.closed.Load() {
		return ErrClosed
	}
	if len(f) < 14 {
		return fmt.Errorf("write raw port %s: %d-byte frame is shorter than an Ethernet header", r.name, len(f))
	}
	// SOCK_RAW ignores the address's MAC (the frame carries its own); the
	// library wants one to build sockaddr_ll with the port's ifindex.
	if _, err := r.conn.WriteTo(f, &packet.Addr{HardwareAddr: net.HardwareAddr(f[0:6])}); err != nil {
		if r.closed.Load() {
			return ErrClosed
		}
		return fmt.Errorf("write raw port %s: %w", r.name, err)
	}
	return nil
}

// Close implements Port. It unblocks a pending ReadFrame.
func (r *Raw) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	err := r.conn.Close()
	r.nl.Close()
	if err != nil {
		return fmt.Errorf("close raw port %s: %w", r.name, err)
	}
	return nil
}
