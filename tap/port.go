// Package tap moves Ethernet frames between ftbox and the kernel: TAP devices
// (songgao/water) with their link plumbing (vishvananda/netlink), and Pipe,
// an in-memory twin for tests. Both implement Port.
package tap

import "errors"

// Port carries whole Ethernet frames (no FCS).
//
// ReadFrame blocks until a frame arrives, copies it into buf and returns its
// length; a frame longer than buf is truncated to len(buf) and reported with
// ErrTruncated. WriteFrame sends f and does not keep it: the caller owns f
// again when it returns. Close unblocks a pending ReadFrame, which then
// returns ErrClosed, as do all later calls. One goroutine may read while
// another writes.
type Port interface {
	ReadFrame(buf []byte) (int, error)
	WriteFrame(f []byte) error
	Close() error
}

var (
	// ErrClosed is returned by a Port's methods after Close.
	ErrClosed = errors.New("port closed")
	// ErrTruncated means the frame did not fit the read buffer.
	ErrTruncated = errors.New("frame truncated")
)

// MaxFrame is the largest frame a Port carries at the default 1500-byte MTU
// (Ethernet header plus a VLAN tag).
const MaxFrame = 1518
