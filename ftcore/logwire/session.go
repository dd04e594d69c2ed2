package logwire

import (
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"math"
)

// Session is one authenticated, encrypted session between a primary and a
// backup: per-direction keys, the send sequence counter and the receive
// replay window. It is not safe for concurrent use: the box loop owns it
// (its Counters are safe to read from anywhere).
type Session struct {
	ep        *Endpoint
	role      Role
	epoch     uint64
	id        uint32
	mtu       int
	tx, rx    cipher.AEAD
	txSeq     uint64 // last sequence number sealed
	txNonce   [12]byte
	rxNonce   [12]byte
	win       replayWindow
	reasm     Reassembler
	confirmed bool
}

// Role returns this side's role.
func (s *Session) Role() Role { return s.role }

// ID returns the session id carried in every data frame's header.
func (s *Session) ID() uint32 { return s.id }

// Epoch returns the epoch frames are sealed with; frames from older epochs
// are refused.
func (s *Session) Epoch() uint64 { return s.epoch }

// SetEpoch raises the session's epoch (it never lowers it).
func (s *Session) SetEpoch(e uint64) {
	if e > s.epoch {
		s.epoch = e
	}
}

// Confirmed reports whether the peer has proven it holds this session's
// keys: true for the initiator from the start (the peer answered our fresh
// nonce), for the responder after the first authentic data frame.
func (s *Session) Confirmed() bool { return s.confirmed }

// Counters returns the verdict counters (shared with the Endpoint).
func (s *Session) Counters() *Counters { return &s.ep.counters }

// MTU returns the largest frame this session sends or accepts.
func (s *Session) MTU() int { return s.mtu }

// MaxEntry returns the largest encoded entry (EncodedLen) that fits in one
// frame; larger ones must be sent as Fragments.
func (s *Session) MaxEntry() int { return s.mtu - Overhead }

// LastSeq returns the sequence number of the last frame sealed (0: none).
func (s *Session) LastSeq() uint64 { return s.txSeq }

// Batch builds the entries of one data frame in a caller-supplied buffer.
// Make one with Session.NewBatch, Add entries, then Session.Seal it. Do
// not copy a Batch: copies share the buffer, and only one may be sealed.
type Batch struct {
	s     *Session
	buf   []byte
	count int
}

// NewBatch starts a frame in buf (its contents are overwritten; if its
// capacity is below the MTU a new buffer is allocated). ack and base are
// carried in the header for the channel layer. The frame Seal returns
// aliases buf.
func (s *Session) NewBatch(buf []byte, ack, base uint64) Batch {
	if cap(buf) < s.mtu {
		buf = make([]byte, 0, s.mtu)
	}
	buf = buf[:HeaderLen]
	h := Header{Role: s.role, Session: s.id, Ack: ack, Base: base}
	h.put(buf)
	return Batch{s: s, buf: buf}
}

// Len returns the number of entries added.
func (b *Batch) Len() int { return b.count }

// Room returns the bytes left for encoded entries.
func (b *Batch) Room() int {
	if b.s == nil {
		return 0
	}
	return b.s.mtu - TagLen - len(b.buf)
}

// Add appends e to the batch. It returns ErrFull (unwrapped, so the common
// case does not allocate) if e does not fit in the remaining room; an entry
// that would not fit even in an empty batch (EncodedLen > MaxEntry) gives
// ErrTooLarge and must be sent with Session.Fragment. Entries the sender's
// role may not send, and hellos, are refused as ErrMalformed.
func (b *Batch) Add(e Entry) error {
	if b.s == nil {
		return fmt.Errorf("batch add: batch not started or already sealed: %w", ErrMalformed)
	}
	t, n, err := encodable(e)
	if err != nil {
		return fmt.Errorf("batch add: %w", err)
	}
	if !t.AllowedFrom(b.s.role) {
		return fmt.Errorf("batch add: %v from %v: %w", t, b.s.role, ErrMalformed)
	}
	if n += EntryHeaderLen; n > b.Room() || b.count == math.MaxUint16 {
		if n > b.s.MaxEntry() {
			return fmt.Errorf("batch add: %v of %d bytes, max %d per frame: %w", t, n, b.s.MaxEntry(), ErrTooLarge)
		}
		return ErrFull
	}
	b.buf = appendBody(append(b.buf, byte(t), byte((n-EntryHeaderLen)>>8), byte(n-EntryHeaderLen)), e)
	b.count++
	return nil
}

// Seal encrypts the batch into a frame and returns it with its sequence
// number. The frame aliases the batch's buffer; the batch is spent. The
// entries are encrypted with ChaCha20-Poly1305 under this direction's key,
// nonce = 0⁴ ‖ seq (big-endian), associated data = the header.
func (s *Session) Seal(b *Batch) ([]byte, uint64, error) {
	if b.s != s {
		return nil, 0, fmt.Errorf("seal: batch of another session or already sealed: %w", ErrMalformed)
	}
	if s.txSeq == math.MaxUint64 {
		return nil, 0, fmt.Errorf("seal: %w", ErrExhausted)
	}
	s.txSeq++
	hv := headerView(b.buf)
	hv.setSeq(s.txSeq)
	hv.setEpoch(s.epoch)
	hv.setCount(uint16(b.count))
	binary.BigEndian.PutUint64(s.txNonce[4:], s.txSeq)
	frame := s.tx.Seal(b.buf[HeaderLen:HeaderLen], s.txNonce[:], b.buf[HeaderLen:], b.buf[:HeaderLen])
	b.s = nil
	return b.buf[:HeaderLen+len(frame)], s.txSeq, nil
}

// Frame is an opened data frame: its header and its validated entries.
type Frame struct {
	Header
	Entries Entries
}

// Open authenticates, decrypts and validates a data frame. It applies
// nothing: it returns entries only with VerdictOK; every other verdict comes
// with a zero Frame and an error wrapping the reason's sentinel. The verdict
// is counted.
//
// Open decrypts in place: afterwards frame holds the plaintext (or zeros
// after a bad tag) and the returned Frame aliases it.
//
// Order of checks: size, header structure and version, hello flag, session
// id and sender role, replay window (pre-check, so floods of old frames cost
// no decryption), tag, then — only for authentic frames — the window is
// advanced, the epoch checked (older than ours: VerdictStaleEpoch; newer is
// returned for the caller to act on) and the entries validated, including
// that the sender's role may send each entry.
func (s *Session) Open(frame []byte) (Frame, Verdict, error) {
	f, err := s.open(frame)
	v := VerdictOf(err)
	s.ep.counters.Add(v)
	if err != nil {
		return Frame{}, v, fmt.Errorf("open frame: %w", err)
	}
	return f, v, nil
}

func (s *Session) open(frame []byte) (Frame, error) {
	if len(frame) > s.mtu {
		return Frame{}, fmt.Errorf("%d bytes, MTU %d: %w", len(frame), s.mtu, ErrTooLarge)
	}
	h, err := ParseHeader(frame)
	if err != nil {
		return Frame{}, err
	}
	if h.IsHello() {
		return Frame{}, fmt.Errorf("hello frame on a data session: %w", ErrMalformed)
	}
	if h.Session != s.id || h.Role != s.role.Peer() {
		return Frame{}, fmt.Errorf("session %08x from %v, want %08x from %v: %w", h.Session, h.Role, s.id, s.role.Peer(), ErrWrongSession)
	}
	if len(frame) < Overhead {
		return Frame{}, fmt.Errorf("%d bytes, need %d: %w", len(frame), Overhead, ErrMalformed)
	}
	if h.Seq == 0 {
		return Frame{}, fmt.Errorf("sequence 0: %w", ErrMalformed)
	}
	if !s.win.check(h.Seq) {
		return Frame{}, fmt.Errorf("seq %d (highest %d): %w", h.Seq, s.win.top, ErrReplay)
	}
	binary.BigEndian.PutUint64(s.rxNonce[4:], h.Seq)
	plain, err := s.rx.Open(frame[HeaderLen:HeaderLen], s.rxNonce[:], frame[HeaderLen:], frame[:HeaderLen])
	if err != nil {
		return Frame{}, fmt.Errorf("seq %d: %w", h.Seq, ErrBadTag)
	}
	s.win.mark(h.Seq)
	s.confirmed = true
	if h.Epoch < s.epoch {
		return Frame{}, fmt.Errorf("seq %d: epoch %d < %d: %w", h.Seq, h.Epoch, s.epoch, ErrStaleEpoch)
	}
	es, err := ParseEntries(plain)
	if err != nil {
		return Frame{}, fmt.Errorf("seq %d: %w", h.Seq, err)
	}
	if es.Len() != int(h.Count) {
		return Frame{}, fmt.Errorf("seq %d: %d entries, header says %d: %w", h.Seq, es.Len(), h.Count, ErrMalformed)
	}
	for t := range es.Raw() {
		if !t.AllowedFrom(h.Role) {
			return Frame{}, fmt.Errorf("seq %d: %v from %v: %w", h.Seq, t, h.Role, ErrMalformed)
		}
	}
	return Frame{Header: h, Entries: es}, nil
}

// replayWindow remembers which of the last ReplayWindow sequence numbers
// were accepted (RFC 6479's ring of words, with one spare word so the
// window's oldest and newest bits never share a word).
type replayWindow struct {
	top  uint64 // highest accepted; 0 = none
	bits [ReplayWindow/64 + 1]uint64
}

const windowWords = ReplayWindow/64 + 1

// check reports whether seq is new and inside the window. It changes nothing.
func (w *replayWindow) check(seq uint64) bool {
	switch {
	case seq == 0:
		return false
	case seq > w.top:
		return true
	case w.top-seq >= ReplayWindow:
		return false
	}
	return w.bits[(seq/64)%windowWords]&(1<<(seq%64)) == 0
}

// mark records seq as accepted; call only after check and authentication.
func (w *replayWindow) mark(seq uint64) {
	if seq > w.top {
		from, to := w.top/64+1, seq/64
		if to-w.top/64 >= windowWords {
			clear(w.bits[:])
		} else {
			for i := from; i <= to; i++ {
				w.bits[i%windowWords] = 0
			}
		}
		w.top = seq
	}
	w.bits[(seq/64)%windowWords] |= 1 << (seq % 64)
}
