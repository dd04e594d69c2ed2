package logwire

import (
	"encoding/binary"
	"fmt"
)

// Wire constants of protocol version 2 (version 1 lacked the state-transfer
// entries Snapshot and InSync; a version-1 frame is refused as
// UnknownVersion, so a box of either version never half-understands the
// other).
const (
	EtherType = 0x88B5 // the logging link's EtherType (IEEE local experimental 1)

	Magic   uint16 = 0x4654 // "FT"
	Version uint8  = 2

	HeaderLen      = 44                 // fixed frame header, authenticated as associated data
	TagLen         = 16                 // Poly1305 tag (data frames) or truncated HMAC-SHA256 (hello frames)
	Overhead       = HeaderLen + TagLen // bytes per frame beyond its entries
	EntryHeaderLen = 3                  // type (1) + body length (2)
	MaxBody        = 0xFFFF             // largest entry body the length field can say
	MaxEncoded     = EntryHeaderLen + MaxBody

	DefaultMTU = 1500  // payload bytes after the Ethernet header
	MinMTU     = 256   // room for a hello and useful fragments
	MaxMTU     = 65535 // jumbo frames are fine; the count and length fields are 16-bit

	ReplayWindow = 1024 // sequence numbers remembered per direction
)

// Flags is the header's flag byte. Unknown flags make a frame malformed.
type Flags uint8

const (
	// FlagHello marks a handshake frame: one Hello entry, in the clear,
	// authenticated with an HMAC keyed from the pre-shared key alone.
	FlagHello Flags = 1 << 0

	knownFlags = FlagHello
)

// Role is the sender's side of the pair on the wire. It names a direction
// (who sends log, who acknowledges it), not ftcore's role state machine.
type Role uint8

const (
	RolePrimary Role = 1 // sends the log
	RoleBackup  Role = 2 // replays it and acknowledges
)

// Valid reports whether r is a defined role.
func (r Role) Valid() bool { return r == RolePrimary || r == RoleBackup }

// Peer returns the other side's role (0 for an invalid role).
func (r Role) Peer() Role {
	switch r {
	case RolePrimary:
		return RoleBackup
	case RoleBackup:
		return RolePrimary
	}
	return 0
}

func (r Role) String() string {
	switch r {
	case RolePrimary:
		return "primary"
	case RoleBackup:
		return "backup"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// Header is the decoded fixed header of a frame.
type Header struct {
	Version uint8
	Flags   Flags
	Role    Role   // sender's role
	Count   uint16 // number of entries
	Session uint32 // session id (0 in hello frames)
	Epoch   uint64 // sender's epoch
	Seq     uint64 // packet number: AEAD nonce and replay-window index; never reused under one key (0 in hello frames)
	Ack     uint64 // cumulative acknowledgement, opaque to logwire (the channel layer's)
	Base    uint64 // stream position of the first entry, opaque to logwire (the channel layer's)
}

// IsHello reports whether the header announces a handshake frame.
func (h *Header) IsHello() bool { return h.Flags&FlagHello != 0 }

func (h Header) String() string {
	return fmt.Sprintf("v%d %s flags=%#x sess=%08x epoch=%d seq=%d ack=%d base=%d n=%d",
		h.Version, h.Role, uint8(h.Flags), h.Session, h.Epoch, h.Seq, h.Ack, h.Base, h.Count)
}

// headerView is a frame's header as a byte view with accessors. Offsets:
//
//	0 magic  2 version  3 flags  4 role  5 reserved  6 count
//	8 session  12 epoch  20 seq  28 ack  36 base  44 entries…
type headerView []byte

func (b headerView) magic() uint16   { return binary.BigEndian.Uint16(b[0:]) }
func (b headerView) version() uint8  { return b[2] }
func (b headerView) flags() Flags    { return Flags(b[3]) }
func (b headerView) role() Role      { return Role(b[4]) }
func (b headerView) reserved() uint8 { return b[5] }
func (b headerView) count() uint16   { return binary.BigEndian.Uint16(b[6:]) }
func (b headerView) session() uint32 { return binary.BigEndian.Uint32(b[8:]) }
func (b headerView) epoch() uint64   { return binary.BigEndian.Uint64(b[12:]) }
func (b headerView) seq() uint64     { return binary.BigEndian.Uint64(b[20:]) }
func (b headerView) ack() uint64     { return binary.BigEndian.Uint64(b[28:]) }
func (b headerView) base() uint64    { return binary.BigEndian.Uint64(b[36:]) }

func (b headerView) setCount(n uint16)   { binary.BigEndian.PutUint16(b[6:], n) }
func (b headerView) setEpoch(e uint64)   { binary.BigEndian.PutUint64(b[12:], e) }
func (b headerView) setSeq(s uint64)     { binary.BigEndian.PutUint64(b[20:], s) }
func (b headerView) setSession(s uint32) { binary.BigEndian.PutUint32(b[8:], s) }

// put writes h (with magic and the current version) into b[:HeaderLen].
func (h *Header) put(b []byte) {
	_ = b[HeaderLen-1]
	binary.BigEndian.PutUint16(b[0:], Magic)
	b[2] = Version
	b[3] = byte(h.Flags)
	b[4] = byte(h.Role)
	b[5] = 0
	binary.BigEndian.PutUint16(b[6:], h.Count)
	binary.BigEndian.PutUint32(b[8:], h.Session)
	binary.BigEndian.PutUint64(b[12:], h.Epoch)
	binary.BigEndian.PutUint64(b[20:], h.Seq)
	binary.BigEndian.PutUint64(b[28:], h.Ack)
	binary.BigEndian.PutUint64(b[36:], h.Base)
}

// ParseHeader decodes and checks the structure of a frame's header. It does
// not authenticate anything: use it to demultiplex (hello or data) and for
// dumps, never to act on the contents. A frame of another version yields a
// *VersionError as soon as its first three bytes are readable.
func ParseHeader(frame []byte) (Header, error) {
	if len(frame) < 3 {
		return Header{}, fmt.Errorf("header: %d bytes: %w", len(frame), ErrMalformed)
	}
	v := headerView(frame)
	if v.magic() != Magic {
		return Header{}, fmt.Errorf("header: magic %#04x: %w", v.magic(), ErrMalformed)
	}
	if v.version() != Version {
		return Header{}, &VersionError{Version: v.version()}
	}
	if len(frame) < HeaderLen {
		return Header{}, fmt.Errorf("header: %d bytes, need %d: %w", len(frame), HeaderLen, ErrMalformed)
	}
	if v.flags()&^knownFlags != 0 {
		return Header{}, fmt.Errorf("header: unknown flags %#x: %w", uint8(v.flags()), ErrMalformed)
	}
	if v.reserved() != 0 {
		return Header{}, fmt.Errorf("header: reserved byte %#x: %w", v.reserved(), ErrMalformed)
	}
	if !v.role().Valid() {
		return Header{}, fmt.Errorf("header: %v: %w", v.role(), ErrMalformed)
	}
	return Header{
		Version: v.version(),
		Flags:   v.flags(),
		Role:    v.role(),
		Count:   v.count(),
		Session: v.session(),
		Epoch:   v.epoch(),
		Seq:     v.seq(),
		Ack:     v.ack(),
		Base:    v.base(),
	}, nil
}
