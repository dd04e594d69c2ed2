package logwire

import (
	"encoding/binary"
	"fmt"
	"iter"
)

// Type is an entry's type byte.
type Type uint8

const (
	TypeHello           Type = 1  // handshake (hello frames only)
	TypeInputFrame      Type = 2  // P→B
	TypeClockSync       Type = 3  // P→B
	TypeConsoleInput    Type = 4  // P→B
	TypeProgress        Type = 5  // P→B
	TypeReleasedOutput  Type = 6  // P→B
	TypeDigest          Type = 7  // both
	TypeAck             Type = 8  // B→P
	TypeHeartbeat       Type = 9  // B→P (a primary may send them too)
	TypeDivergenceAlarm Type = 10 // B→P
	TypeFragment        Type = 11 // both: a piece of an entry too large for one frame
	TypeSnapshot        Type = 12 // P→B: a piece of the machine snapshot (state transfer, version 2)
	TypeInSync          Type = 13 // P→B: the log covers every released output again (version 2)
	numTypes                 = 14
)

var typeNames = [numTypes]string{"", "hello", "input_frame", "clock_sync", "console_input", "progress",
	"released_output", "digest", "ack", "heartbeat", "divergence_alarm", "fragment", "snapshot", "in_sync"}

func (t Type) String() string {
	if t > 0 && t < numTypes {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// AllowedFrom reports whether a sender of role r may put an entry of type t
// in a data frame. Hello travels only in hello frames.
func (t Type) AllowedFrom(r Role) bool {
	switch t {
	case TypeInputFrame, TypeClockSync, TypeConsoleInput, TypeProgress, TypeReleasedOutput, TypeSnapshot, TypeInSync:
		return r == RolePrimary
	case TypeAck, TypeDivergenceAlarm:
		return r == RoleBackup
	case TypeDigest, TypeHeartbeat, TypeFragment:
		return r.Valid()
	}
	return false
}

// Entry is one log or control entry: one of the value types below. Decoded
// entries' byte slices alias the buffer they were decoded from.
type Entry interface {
	Type() Type
	isEntry()
}

// InputFrame: a frame arrives at the guest's NIC at instruction count ICount.
type InputFrame struct {
	ICount uint64
	Frame  []byte
}

// ClockSync mirrors guestvm's EvClock: from ICount on, mtime = max(mtime,
// Time) and advances RateNum/RateDen ticks per instruction (RateDen 0 keeps
// the rate).
type ClockSync struct {
	ICount, Time, RateNum, RateDen uint64
}

// ConsoleInput: bytes arrive at the guest's UART at ICount.
type ConsoleInput struct {
	ICount uint64
	Data   []byte
}

// Progress: the primary has logged every event before ICount ("no event
// before ICount"); the backup may run up to it.
type Progress struct {
	ICount uint64
}

// ReleasedOutput: the primary has released Watermark output frames in all.
type ReleasedOutput struct {
	Watermark uint64
}

// Digest: the sender's machine state digest at ICount.
type Digest struct {
	ICount uint64
	Sum    [32]byte
}

// Ack: the backup has received the log up to Seq (cumulative, in the
// channel layer's numbering) and applied it up to ICount.
type Ack struct {
	Seq, ICount uint64
}

// Heartbeat: the sender is alive; Time is its monotonic clock in ns.
type Heartbeat struct {
	Time, ICount uint64
}

// DivergenceAlarm: at ICount the backup's digest (Local) differs from the
// primary's (Remote).
type DivergenceAlarm struct {
	ICount        uint64
	Local, Remote [32]byte
}

// Snapshot is a piece of the primary's machine snapshot, sent to a joining
// backup (state transfer): bytes [Offset, Offset+len(Data)) of a snapshot
// of Total bytes taken at instruction count ICount, when the primary's guest
// had produced Outputs output frames. Sum is the machine's digest at
// ICount; the backup checks it after restoring. Every piece of one snapshot
// carries the same ICount, Outputs, Total and Sum.
type Snapshot struct {
	ICount, Outputs, Total, Offset uint64
	Sum                            [32]byte
	Data                           []byte
}

// InSync: the log up to this entry covers every output the primary has
// released (those it released unprotected while the snapshot travelled
// included): from here on the Output Rule holds again, and a backup holding
// the log to here may take over. ICount is the primary's count there.
type InSync struct {
	ICount uint64
}

// Hello is the handshake entry. Nonce is 32 random bytes chosen by the
// caller for this handshake; Echo is the peer's nonce being answered (zero in
// an initiating hello).
type Hello struct {
	Version uint8 // protocol version spoken (Version)
	Role    Role
	Epoch   uint64
	Nonce   [32]byte
	Echo    [32]byte
}

// Fragment is a piece of an encoded entry (type, length, body) that does not
// fit in one frame. ID names the entry (unique per session and direction, e.g.
// its stream position); Total is the encoded entry's length.
type Fragment struct {
	ID     uint64
	Offset uint32
	Total  uint32
	Piece  []byte
}

func (InputFrame) Type() Type      { return TypeInputFrame }
func (ClockSync) Type() Type       { return TypeClockSync }
func (ConsoleInput) Type() Type    { return TypeConsoleInput }
func (Progress) Type() Type        { return TypeProgress }
func (ReleasedOutput) Type() Type  { return TypeReleasedOutput }
func (Digest) Type() Type          { return TypeDigest }
func (Ack) Type() Type             { return TypeAck }
func (Heartbeat) Type() Type       { return TypeHeartbeat }
func (DivergenceAlarm) Type() Type { return TypeDivergenceAlarm }
func (Hello) Type() Type           { return TypeHello }
func (Fragment) Type() Type        { return TypeFragment }
func (Snapshot) Type() Type        { return TypeSnapshot }
func (InSync) Type() Type          { return TypeInSync }

func (InputFrame) isEntry()      {}
func (ClockSync) isEntry()       {}
func (ConsoleInput) isEntry()    {}
func (Progress) isEntry()        {}
func (ReleasedOutput) isEntry()  {}
func (Digest) isEntry()          {}
func (Ack) isEntry()             {}
func (Heartbeat) isEntry()       {}
func (DivergenceAlarm) isEntry() {}
func (Hello) isEntry()           {}
func (Fragment) isEntry()        {}
func (Snapshot) isEntry()        {}
func (InSync) isEntry()          {}

// Body sizes: fixed types have min == max; variable ones a minimum.
const (
	helloBody    = 1 + 1 + 8 + 32 + 32
	icountBody   = 8
	clockBody    = 32
	digestBody   = 8 + 32
	pairBody     = 16
	alarmBody    = 8 + 32 + 32
	fragmentHead = 8 + 4 + 4
	snapshotHead = 4*8 + 32

	// SnapshotHead is the encoded size of a Snapshot entry without its
	// data: a piece of n bytes takes SnapshotHead+n in a frame.
	SnapshotHead = EntryHeaderLen + snapshotHead
)

// typeOf is e.Type() without a dynamic call, so that e does not escape.
func typeOf(e Entry) Type {
	switch e.(type) {
	case InputFrame:
		return TypeInputFrame
	case ClockSync:
		return TypeClockSync
	case ConsoleInput:
		return TypeConsoleInput
	case Progress:
		return TypeProgress
	case ReleasedOutput:
		return TypeReleasedOutput
	case Digest:
		return TypeDigest
	case Ack:
		return TypeAck
	case Heartbeat:
		return TypeHeartbeat
	case DivergenceAlarm:
		return TypeDivergenceAlarm
	case Hello:
		return TypeHello
	case Fragment:
		return TypeFragment
	case Snapshot:
		return TypeSnapshot
	case InSync:
		return TypeInSync
	}
	return 0
}

// bodyLen returns the body length of e, or -1 if e is not an entry of this
// package (nil, or an unknown implementation).
func bodyLen(e Entry) int {
	switch e := e.(type) {
	case InputFrame:
		return icountBody + len(e.Frame)
	case ClockSync:
		return clockBody
	case ConsoleInput:
		return icountBody + len(e.Data)
	case Progress, ReleasedOutput, InSync:
		return icountBody
	case Snapshot:
		return snapshotHead + len(e.Data)
	case Digest:
		return digestBody
	case Ack, Heartbeat:
		return pairBody
	case DivergenceAlarm:
		return alarmBody
	case Hello:
		return helloBody
	case Fragment:
		return fragmentHead + len(e.Piece)
	}
	return -1
}

// EncodedLen returns the bytes e takes in a frame (entry header included),
// or -1 for an entry that cannot be encoded.
func EncodedLen(e Entry) int {
	n := bodyLen(e)
	if n < 0 || n > MaxBody {
		return -1
	}
	return EntryHeaderLen + n
}

// checkEncodable reports why e cannot be encoded, if it cannot.
func checkEncodable(e Entry) error {
	_, _, err := encodable(e)
	return err
}

// encodable returns e's type and body length, or why it cannot be encoded.
func encodable(e Entry) (Type, int, error) {
	n := bodyLen(e)
	if n < 0 {
		return 0, 0, fmt.Errorf("encode: not a logwire entry: %w", ErrMalformed)
	}
	t := typeOf(e)
	if n > MaxBody {
		return t, n, fmt.Errorf("encode %v: body of %d bytes: %w", t, n, ErrTooLarge)
	}
	switch e := e.(type) {
	case Fragment:
		if err := checkFragment(e); err != nil {
			return t, n, fmt.Errorf("encode: %w", err)
		}
	case Hello:
		if !e.Role.Valid() {
			return t, n, fmt.Errorf("encode hello: %v: %w", e.Role, ErrMalformed)
		}
	case Snapshot:
		if err := checkSnapshot(e); err != nil {
			return t, n, fmt.Errorf("encode: %w", err)
		}
	}
	return t, n, nil
}

func checkSnapshot(s Snapshot) error {
	if s.Total == 0 || s.Offset > s.Total || uint64(len(s.Data)) > s.Total-s.Offset {
		return fmt.Errorf("snapshot piece [%d,+%d) of %d: %w", s.Offset, len(s.Data), s.Total, ErrMalformed)
	}
	return nil
}

func checkFragment(f Fragment) error {
	if len(f.Piece) == 0 || f.Total == 0 || uint64(f.Offset)+uint64(len(f.Piece)) > uint64(f.Total) {
		return fmt.Errorf("fragment %d: piece [%d,+%d) of %d: %w", f.ID, f.Offset, len(f.Piece), f.Total, ErrMalformed)
	}
	return nil
}

// appendEntry appends e's encoding to b; e must have passed checkEncodable.
// It allocates only if b lacks capacity.
func appendEntry(b []byte, e Entry) []byte {
	return appendBody(append(b, byte(typeOf(e)), byte(bodyLen(e)>>8), byte(bodyLen(e))), e)
}

// appendBody appends e's body to b.
func appendBody(b []byte, e Entry) []byte {
	be := binary.BigEndian
	switch e := e.(type) {
	case InputFrame:
		b = be.AppendUint64(b, e.ICount)
		b = append(b, e.Frame...)
	case ClockSync:
		b = be.AppendUint64(b, e.ICount)
		b = be.AppendUint64(b, e.Time)
		b = be.AppendUint64(b, e.RateNum)
		b = be.AppendUint64(b, e.RateDen)
	case ConsoleInput:
		b = be.AppendUint64(b, e.ICount)
		b = append(b, e.Data...)
	case Progress:
		b = be.AppendUint64(b, e.ICount)
	case InSync:
		b = be.AppendUint64(b, e.ICount)
	case Snapshot:
		b = be.AppendUint64(b, e.ICount)
		b = be.AppendUint64(b, e.Outputs)
		b = be.AppendUint64(b, e.Total)
		b = be.AppendUint64(b, e.Offset)
		b = append(b, e.Sum[:]...)
		b = append(b, e.Data...)
	case ReleasedOutput:
		b = be.AppendUint64(b, e.Watermark)
	case Digest:
		b = be.AppendUint64(b, e.ICount)
		b = append(b, e.Sum[:]...)
	case Ack:
		b = be.AppendUint64(b, e.Seq)
		b = be.AppendUint64(b, e.ICount)
	case Heartbeat:
		b = be.AppendUint64(b, e.Time)
		b = be.AppendUint64(b, e.ICount)
	case DivergenceAlarm:
		b = be.AppendUint64(b, e.ICount)
		b = append(b, e.Local[:]...)
		b = append(b, e.Remote[:]...)
	case Hello:
		b = append(b, e.Version, byte(e.Role))
		b = be.AppendUint64(b, e.Epoch)
		b = append(b, e.Nonce[:]...)
		b = append(b, e.Echo[:]...)
	case Fragment:
		b = be.AppendUint64(b, e.ID)
		b = be.AppendUint32(b, e.Offset)
		b = be.AppendUint32(b, e.Total)
		b = append(b, e.Piece...)
	}
	return b
}

// AppendEntry appends the encoding of e (type, length, body) to b.
func AppendEntry(b []byte, e Entry) ([]byte, error) {
	if err := checkEncodable(e); err != nil {
		return b, err
	}
	return appendEntry(b, e), nil
}

// checkBody validates a body's structure for its type without decoding it.
func checkBody(t Type, body []byte) error {
	n := len(body)
	var ok bool
	switch t {
	case TypeInputFrame, TypeConsoleInput:
		ok = n >= icountBody
	case TypeClockSync:
		ok = n == clockBody
	case TypeProgress, TypeReleasedOutput, TypeInSync:
		ok = n == icountBody
	case TypeSnapshot:
		if n < snapshotHead {
			break
		}
		return checkSnapshot(decodeSnapshot(body))
	case TypeDigest:
		ok = n == digestBody
	case TypeAck, TypeHeartbeat:
		ok = n == pairBody
	case TypeDivergenceAlarm:
		ok = n == alarmBody
	case TypeHello:
		ok = n == helloBody && Role(body[1]).Valid()
	case TypeFragment:
		if n < fragmentHead {
			break
		}
		return checkFragment(decodeFragment(body))
	default:
		return fmt.Errorf("entry: unknown %v: %w", t, ErrMalformed)
	}
	if !ok {
		return fmt.Errorf("entry %v: body of %d bytes: %w", t, n, ErrMalformed)
	}
	return nil
}

func decodeFragment(b []byte) Fragment {
	be := binary.BigEndian
	return Fragment{ID: be.Uint64(b), Offset: be.Uint32(b[8:]), Total: be.Uint32(b[12:]), Piece: b[fragmentHead:]}
}

func decodeSnapshot(b []byte) Snapshot {
	be := binary.BigEndian
	s := Snapshot{ICount: be.Uint64(b), Outputs: be.Uint64(b[8:]), Total: be.Uint64(b[16:]), Offset: be.Uint64(b[24:]), Data: b[snapshotHead:]}
	copy(s.Sum[:], b[32:])
	return s
}

// decodeBody decodes a body that passed checkBody.
func decodeBody(t Type, b []byte) Entry {
	be := binary.BigEndian
	switch t {
	case TypeInputFrame:
		return InputFrame{ICount: be.Uint64(b), Frame: b[8:]}
	case TypeClockSync:
		return ClockSync{ICount: be.Uint64(b), Time: be.Uint64(b[8:]), RateNum: be.Uint64(b[16:]), RateDen: be.Uint64(b[24:])}
	case TypeConsoleInput:
		return ConsoleInput{ICount: be.Uint64(b), Data: b[8:]}
	case TypeProgress:
		return Progress{ICount: be.Uint64(b)}
	case TypeReleasedOutput:
		return ReleasedOutput{Watermark: be.Uint64(b)}
	case TypeInSync:
		return InSync{ICount: be.Uint64(b)}
	case TypeSnapshot:
		return decodeSnapshot(b)
	case TypeDigest:
		d := Digest{ICount: be.Uint64(b)}
		copy(d.Sum[:], b[8:])
		return d
	case TypeAck:
		return Ack{Seq: be.Uint64(b), ICount: be.Uint64(b[8:])}
	case TypeHeartbeat:
		return Heartbeat{Time: be.Uint64(b), ICount: be.Uint64(b[8:])}
	case TypeDivergenceAlarm:
		a := DivergenceAlarm{ICount: be.Uint64(b)}
		copy(a.Local[:], b[8:])
		copy(a.Remote[:], b[40:])
		return a
	case TypeHello:
		h := Hello{Version: b[0], Role: Role(b[1]), Epoch: be.Uint64(b[2:])}
		copy(h.Nonce[:], b[10:])
		copy(h.Echo[:], b[42:])
		return h
	case TypeFragment:
		return decodeFragment(b)
	}
	return nil
}

// DecodeEntry decodes one entry body of type t. Byte slices in the result
// alias body.
func DecodeEntry(t Type, body []byte) (Entry, error) {
	if err := checkBody(t, body); err != nil {
		return nil, err
	}
	return decodeBody(t, body), nil
}

// Entries is a validated run of encoded entries: every entry's length and
// body structure were checked when it was made, so iterating cannot fail.
// It aliases the buffer it was parsed from.
type Entries struct {
	b []byte
	n int
}

// ParseEntries checks that b is a whole number of well-formed entries (no
// trailing bytes) and returns them.
func ParseEntries(b []byte) (Entries, error) {
	n := 0
	for off := 0; off < len(b); n++ {
		if len(b)-off < EntryHeaderLen {
			return Entries{}, fmt.Errorf("entry %d at %d: %d bytes left: %w", n, off, len(b)-off, ErrMalformed)
		}
		t := Type(b[off])
		l := int(b[off+1])<<8 | int(b[off+2])
		off += EntryHeaderLen
		if l > len(b)-off {
			return Entries{}, fmt.Errorf("entry %d (%v): length %d, %d bytes left: %w", n, t, l, len(b)-off, ErrMalformed)
		}
		if err := checkBody(t, b[off:off+l]); err != nil {
			return Entries{}, fmt.Errorf("entry %d: %w", n, err)
		}
		off += l
	}
	return Entries{b: b, n: n}, nil
}

// Len returns the number of entries.
func (es Entries) Len() int { return es.n }

// Bytes returns the encoded entries.
func (es Entries) Bytes() []byte { return es.b }

// Raw iterates over the entries' types and bodies without allocating.
func (es Entries) Raw() iter.Seq2[Type, []byte] {
	return func(yield func(Type, []byte) bool) {
		b := es.b
		for len(b) >= EntryHeaderLen {
			l := int(b[1])<<8 | int(b[2])
			if l > len(b)-EntryHeaderLen { // cannot happen for parsed Entries
				return
			}
			if !yield(Type(b[0]), b[EntryHeaderLen:EntryHeaderLen+l]) {
				return
			}
			b = b[EntryHeaderLen+l:]
		}
	}
}

// All iterates over the decoded entries (each boxed in the Entry interface;
// byte slices alias the buffer).
func (es Entries) All() iter.Seq[Entry] {
	return func(yield func(Entry) bool) {
		for t, body := range es.Raw() {
			e, err := DecodeEntry(t, body)
			if err != nil { // cannot happen for parsed Entries
				return
			}
			if !yield(e) {
				return
			}
		}
	}
}
