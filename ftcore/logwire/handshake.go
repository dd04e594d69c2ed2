package logwire

import (
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"
)

// KeySize is the size of the pre-shared key.
const KeySize = 32

// HKDF labels; changing one is a protocol change (golden tests catch it).
const (
	labelHello   = "ftbox/logwire v1 hello"
	labelSession = "ftbox/logwire v1 session"
)

// helloFrameLen is the exact length of a hello frame.
const helloFrameLen = HeaderLen + EntryHeaderLen + helloBody + TagLen

// Options tune an Endpoint and the sessions it makes.
type Options struct {
	// MTU is the largest frame payload (bytes after the Ethernet header) sent
	// or accepted. 0 means DefaultMTU; it must lie in [MinMTU, MaxMTU].
	MTU int
	// Reassembly bounds fragment reassembly; zero fields take defaults.
	Reassembly ReassemblyLimits
}

// Endpoint is one box's end of the logging link before and across sessions:
// it holds the pre-shared key, the handshake key derived from it, and the
// verdict counters that it and every session it makes share.
type Endpoint struct {
	psk      [KeySize]byte
	helloKey [32]byte
	opts     Options
	counters Counters
}

// NewEndpoint derives the handshake key from psk. The Endpoint keeps a copy
// of the key; the caller may wipe its own.
func NewEndpoint(psk [KeySize]byte, opts Options) (*Endpoint, error) {
	if opts.MTU == 0 {
		opts.MTU = DefaultMTU
	}
	if opts.MTU < MinMTU || opts.MTU > MaxMTU {
		return nil, fmt.Errorf("logwire endpoint: MTU %d outside [%d, %d]: %w", opts.MTU, MinMTU, MaxMTU, ErrMalformed)
	}
	opts.Reassembly = opts.Reassembly.withDefaults()
	ep := &Endpoint{psk: psk, opts: opts}
	r := hkdf.New(sha256.New, psk[:], nil, []byte(labelHello))
	if _, err := io.ReadFull(r, ep.helloKey[:]); err != nil {
		return nil, fmt.Errorf("logwire endpoint: derive hello key: %w", err)
	}
	return ep, nil
}

// Counters returns the verdict counters shared by the endpoint's hello
// frames and all of its sessions.
func (ep *Endpoint) Counters() *Counters { return &ep.counters }

// MTU returns the endpoint's frame size limit.
func (ep *Endpoint) MTU() int { return ep.opts.MTU }

func (ep *Endpoint) helloTag(dst *[TagLen]byte, msg []byte) {
	m := hmac.New(sha256.New, ep.helloKey[:])
	m.Write(msg)
	var sum [sha256.Size]byte
	copy(dst[:], m.Sum(sum[:0]))
}

// SealHello appends a hello frame carrying h to dst[:0] and returns it. The
// frame is in the clear (nonces are not secret) and authenticated with an
// HMAC-SHA256 (truncated to 16 bytes) keyed from the pre-shared key alone.
func (ep *Endpoint) SealHello(dst []byte, h Hello) ([]byte, error) {
	h.Version = Version
	if err := checkEncodable(h); err != nil {
		return nil, fmt.Errorf("seal hello: %w", err)
	}
	hdr := Header{Flags: FlagHello, Role: h.Role, Count: 1, Epoch: h.Epoch}
	b := append(dst[:0], make([]byte, HeaderLen)...)
	hdr.put(b)
	b = appendEntry(b, h)
	var tag [TagLen]byte
	ep.helloTag(&tag, b)
	return append(b, tag[:]...), nil
}

// OpenHello authenticates and decodes a hello frame. Hellos from an epoch
// below minEpoch are refused as stale. It counts its verdict. A hello proves
// only that its sender knew the key at some time: it may be a replay; see
// NewSession for how freshness is obtained.
func (ep *Endpoint) OpenHello(frame []byte, minEpoch uint64) (Hello, Verdict, error) {
	h, err := ep.openHello(frame, minEpoch)
	v := VerdictOf(err)
	ep.counters.Add(v)
	if err != nil {
		return Hello{}, v, fmt.Errorf("open hello: %w", err)
	}
	return h, v, nil
}

func (ep *Endpoint) openHello(frame []byte, minEpoch uint64) (Hello, error) {
	if len(frame) > ep.opts.MTU {
		return Hello{}, fmt.Errorf("%d bytes, MTU %d: %w", len(frame), ep.opts.MTU, ErrTooLarge)
	}
	hdr, err := ParseHeader(frame)
	if err != nil {
		return Hello{}, err
	}
	if !hdr.IsHello() {
		return Hello{}, fmt.Errorf("data frame: %w", ErrMalformed)
	}
	if len(frame) != helloFrameLen || hdr.Count != 1 || hdr.Session != 0 || hdr.Seq != 0 || hdr.Ack != 0 || hdr.Base != 0 {
		return Hello{}, fmt.Errorf("hello frame shape (%d bytes, %v): %w", len(frame), hdr, ErrMalformed)
	}
	var tag [TagLen]byte
	ep.helloTag(&tag, frame[:len(frame)-TagLen])
	if subtle.ConstantTimeCompare(tag[:], frame[len(frame)-TagLen:]) != 1 {
		return Hello{}, ErrBadTag
	}
	es, err := ParseEntries(frame[HeaderLen : len(frame)-TagLen])
	if err != nil {
		return Hello{}, err
	}
	var h Hello
	for e := range es.All() {
		var ok bool
		if h, ok = e.(Hello); !ok {
			return Hello{}, fmt.Errorf("hello frame carries %v: %w", e.Type(), ErrMalformed)
		}
	}
	if h.Version != Version {
		return Hello{}, &VersionError{Version: h.Version}
	}
	if h.Role != hdr.Role || h.Epoch != hdr.Epoch {
		return Hello{}, fmt.Errorf("hello says %v epoch %d, header %v epoch %d: %w", h.Role, h.Epoch, hdr.Role, hdr.Epoch, ErrMalformed)
	}
	if h.Epoch < minEpoch {
		return Hello{}, fmt.Errorf("hello epoch %d < %d: %w", h.Epoch, minEpoch, ErrStaleEpoch)
	}
	return h, nil
}

// NewSession derives a session from the hello this side sent (local) and the
// authentic hello it received (peer). The two must have opposite roles and
// the same epoch, and one must answer the other:
//
//   - initiator: peer.Echo == local.Nonce. The answer was made after our
//     fresh nonce existed, so the peer is live (freshness proven).
//   - responder: local.Echo == peer.Nonce. The peer's hello may be a replay;
//     the session is then unconfirmed (Confirmed() false) until an authentic
//     data frame arrives, which only a holder of the key who saw our nonce
//     can produce.
//
// Keys: HKDF-SHA256(ikm = PSK, salt = primary nonce ‖ backup nonce, info =
// label ‖ epoch) expands to the primary→backup key, the backup→primary key
// and the 32-bit session id. Both nonces are fresh per handshake on an
// honest side, so keys (and thus AEAD nonces = sequence numbers) never repeat
// across sessions as long as one side's nonce is fresh.
func (ep *Endpoint) NewSession(local, peer Hello) (*Session, error) {
	var zero [32]byte
	switch {
	case !local.Role.Valid() || peer.Role != local.Role.Peer():
		return nil, fmt.Errorf("new session: roles %v and %v: %w", local.Role, peer.Role, ErrHandshake)
	case local.Epoch != peer.Epoch:
		return nil, fmt.Errorf("new session: epochs %d and %d: %w", local.Epoch, peer.Epoch, ErrHandshake)
	case local.Nonce == zero || peer.Nonce == zero || local.Nonce == peer.Nonce:
		return nil, fmt.Errorf("new session: zero or equal nonces: %w", ErrHandshake)
	case peer.Echo != local.Nonce && local.Echo != peer.Nonce:
		return nil, fmt.Errorf("new session: neither hello answers the other: %w", ErrHandshake)
	}
	pn, bn := local.Nonce, peer.Nonce
	if local.Role == RoleBackup {
		pn, bn = bn, pn
	}
	salt := make([]byte, 0, 64)
	salt = append(append(salt, pn[:]...), bn[:]...)
	info := binary.BigEndian.AppendUint64([]byte(labelSession), local.Epoch)
	var okm [32 + 32 + 4]byte
	if _, err := io.ReadFull(hkdf.New(sha256.New, ep.psk[:], salt, info), okm[:]); err != nil {
		return nil, fmt.Errorf("new session: derive keys: %w", err)
	}
	p2b, err := chacha20poly1305.New(okm[0:32])
	if err != nil {
		return nil, fmt.Errorf("new session: %w", err)
	}
	b2p, err := chacha20poly1305.New(okm[32:64])
	if err != nil {
		return nil, fmt.Errorf("new session: %w", err)
	}
	s := &Session{
		ep:        ep,
		role:      local.Role,
		epoch:     local.Epoch,
		id:        binary.BigEndian.Uint32(okm[64:]),
		mtu:       ep.opts.MTU,
		confirmed: peer.Echo == local.Nonce,
	}
	s.tx, s.rx = cipher.AEAD(p2b), cipher.AEAD(b2p)
	if local.Role == RoleBackup {
		s.tx, s.rx = s.rx, s.tx
	}
	s.reasm.init(ep.opts.Reassembly)
	clear(okm[:])
	return s, nil
}
