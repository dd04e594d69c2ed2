package bpf

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Direction is the side of a device a program is attached to.
type Direction int

const (
	// Ingress sees the frames the device receives. On a TAP these are the
	// frames the process holding the TAP writes (the guest's outputs).
	Ingress Direction = iota
	// Egress sees the frames the device transmits.
	Egress
)

func (d Direction) String() string {
	switch d {
	case Ingress:
		return "ingress"
	case Egress:
		return "egress"
	}
	return fmt.Sprintf("Direction(%d)", int(d))
}

// Hook names as Gate.Hook reports them.
const (
	HookTCX = "tcx" // a TCX link (Linux 6.6 and later)
	HookTC  = "tc"  // a direct-action bpf filter on a clsact qdisc
)

var memlockOnce sync.Once
var memlockErr error

// removeMemlock lifts RLIMIT_MEMLOCK on kernels that still charge BPF memory
// to it (before 5.11); later kernels account to the memory cgroup and this is
// a no-op.
func removeMemlock() error {
	memlockOnce.Do(func() { memlockErr = rlimit.RemoveMemlock() })
	return memlockErr
}

// attachment is a SchedCLS program attached to one side of one device, by TCX
// or by a tc filter. It is bound to the network namespace it was made in.
type attachment struct {
	hook string
	tcx  link.Link // HookTCX

	// HookTC: a netlink handle opened in the device's namespace, so that
	// detach works from any thread; the filter; whether we added clsact.
	nl           *netlink.Handle
	filter       *netlink.BpfFilter
	addedClsact  bool
	clsactLinkID int
}

// attach attaches prog to the dir side of device ifname in the calling
// thread's network namespace: by TCX unless forceTC, falling back to a tc
// filter (priority prio) when the kernel has no TCX. With first, the TCX
// program goes before those already attached (so none of them can pass a
// frame before prog sees it); otherwise after them.
func attach(ifname string, prog *ebpf.Program, dir Direction, name string, prio uint16, first, forceTC bool) (*attachment, error) {
	nl, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink handle: %w", err)
	}
	dev, err := nl.LinkByName(ifname)
	if err != nil {
		nl.Close()
		return nil, fmt.Errorf("find device %s: %w", ifname, err)
	}
	ifindex := dev.Attrs().Index
	if !forceTC {
		at := ebpf.AttachTCXIngress
		if dir == Egress {
			at = ebpf.AttachTCXEgress
		}
		anchor := link.Tail()
		if first {
			anchor = link.Head()
		}
		l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: at, Anchor: anchor})
		if err == nil {
			nl.Close()
			return &attachment{hook: HookTCX, tcx: l}, nil
		}
		if !errors.Is(err, ebpf.ErrNotSupported) {
			nl.Close()
			return nil, fmt.Errorf("tcx %s: %w", dir, err)
		}
		// An older kernel: fall back to tc.
	}
	a := &attachment{hook: HookTC, nl: nl, clsactLinkID: ifindex}
	if err := a.attachTC(dev, prog, dir, name, prio); err != nil {
		nl.Close()
		return nil, err
	}
	return a, nil
}

func (a *attachment) attachTC(dev netlink.Link, prog *ebpf.Program, dir Direction, name string, prio uint16) error {
	qdiscs, err := a.nl.QdiscList(dev)
	if err != nil {
		return fmt.Errorf("list qdiscs: %w", err)
	}
	have := false
	for _, q := range qdiscs {
		if q.Type() == "clsact" {
			have = true
		}
	}
	if !have {
		q := clsact(dev.Attrs().Index)
		if err := a.nl.QdiscAdd(q); err != nil {
			return fmt.Errorf("add clsact qdisc: %w", err)
		}
		a.addedClsact = true
	}
	parent := uint32(netlink.HANDLE_MIN_INGRESS)
	if dir == Egress {
		parent = netlink.HANDLE_MIN_EGRESS
	}
	f := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: dev.Attrs().Index,
			Parent:    parent,
			Handle:    netlink.MakeHandle(0, 1),
			Protocol:  unix.ETH_P_ALL,
			Priority:  prio,
		},
		Fd:           prog.FD(),
		Name:         name,
		DirectAction: true,
	}
	if err := a.nl.FilterAdd(f); err != nil {
		if a.addedClsact {
			_ = a.nl.QdiscDel(clsact(dev.Attrs().Index))
		}
		return fmt.Errorf("add tc %s filter (prio %d): %w", dir, prio, err)
	}
	a.filter = f
	return nil
}

func clsact(ifindex int) *netlink.GenericQdisc {
	return &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: ifindex,
			Handle:    netlink.MakeHandle(0xffff, 0),
			Parent:    netlink.HANDLE_CLSACT,
		},
		QdiscType: "clsact",
	}
}

// detach removes the program from the device. In the tc case it deletes the
// filter and, if attach added the clsact qdisc and no other filter is left
// on it, the qdisc. A device that is already gone counts as detached.
func (a *attachment) detach() error {
	if a.tcx != nil {
		err := a.tcx.Close()
		a.tcx = nil
		if err != nil {
			return fmt.Errorf("close tcx link: %w", err)
		}
		return nil
	}
	if a.nl == nil {
		return nil
	}
	defer func() { a.nl.Close(); a.nl = nil }()
	var errs []error
	if err := a.nl.FilterDel(a.filter); err != nil && !gone(err) {
		errs = append(errs, fmt.Errorf("delete tc filter: %w", err))
	}
	if a.addedClsact {
		dev, err := a.nl.LinkByIndex(a.clsactLinkID)
		switch {
		case err != nil && !gone(err):
			errs = append(errs, fmt.Errorf("find device %d: %w", a.clsactLinkID, err))
		case err == nil:
			left := 0
			for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
				fs, err := a.nl.FilterList(dev, parent)
				if err != nil {
					errs = append(errs, fmt.Errorf("list tc filters: %w", err))
					left++
				}
				left += len(fs)
			}
			if left == 0 {
				if err := a.nl.QdiscDel(clsact(a.clsactLinkID)); err != nil && !gone(err) {
					errs = append(errs, fmt.Errorf("delete clsact qdisc: %w", err))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// gone reports whether err says the device, qdisc or filter no longer exists.
func gone(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENOENT) || errors.As(err, &lnf)
}
