package logwire

import (
	"bytes"
	"fmt"
	"slices"
)

// Fragments splits an entry into Fragment entries whose encodings are at
// most maxEncoded bytes each (use Session.MaxEntry to fill frames). id names
// the entry for reassembly; it must be unique per direction within a session
// (the entry's stream position will do). The pieces alias one fresh buffer
// holding e's encoding.
func Fragments(e Entry, id uint64, maxEncoded int) ([]Fragment, error) {
	if err := checkEncodable(e); err != nil {
		return nil, fmt.Errorf("fragment: %w", err)
	}
	if _, ok := e.(Fragment); ok {
		return nil, fmt.Errorf("fragment: a fragment cannot be fragmented: %w", ErrMalformed)
	}
	piece := maxEncoded - EntryHeaderLen - fragmentHead
	if piece < 1 {
		return nil, fmt.Errorf("fragment: %d bytes per fragment leaves no room for a piece: %w", maxEncoded, ErrTooLarge)
	}
	enc := appendEntry(make([]byte, 0, EncodedLen(e)), e)
	out := make([]Fragment, 0, (len(enc)+piece-1)/piece)
	for off := 0; off < len(enc); off += piece {
		end := min(off+piece, len(enc))
		out = append(out, Fragment{ID: id, Offset: uint32(off), Total: uint32(len(enc)), Piece: enc[off:end:end]})
	}
	return out, nil
}

// Fragment splits e into fragments that each fill one frame of this
// session.
func (s *Session) Fragment(e Entry, id uint64) ([]Fragment, error) {
	if t := typeOf(e); !t.AllowedFrom(s.role) {
		return nil, fmt.Errorf("fragment: %v from %v: %w", t, s.role, ErrMalformed)
	}
	return Fragments(e, id, s.MaxEntry())
}

// ReassemblyLimits bound what a peer can make the receiver hold.
type ReassemblyLimits struct {
	// MaxSize is the largest reassembled (encoded) entry. Default
	// MaxEncoded (3 + 65535).
	MaxSize int
	// MaxPartial is how many entries may be partly received at once; a
	// fragment of one more is refused. Default 8.
	MaxPartial int
	// Timeout, in sequence numbers: a partial entry whose first fragment
	// came in frame seq s is dropped once a frame with seq ≥ s+Timeout is
	// seen. Default ReplayWindow (older fragments could not arrive anyway).
	Timeout uint64
}

func (l ReassemblyLimits) withDefaults() ReassemblyLimits {
	if l.MaxSize <= 0 || l.MaxSize > MaxEncoded {
		l.MaxSize = MaxEncoded
	}
	if l.MaxPartial <= 0 {
		l.MaxPartial = 8
	}
	if l.Timeout == 0 {
		l.Timeout = ReplayWindow
	}
	return l
}

type span struct{ off, end uint32 }

type partial struct {
	id    uint64
	first uint64 // seq of the frame its first fragment came in
	buf   []byte // Total bytes
	spans []span // received pieces, sorted, disjoint
	got   int
}

// recentDone is how many completed entry ids are remembered, so that late
// duplicates of their fragments are dropped instead of starting a new
// partial entry.
const recentDone = 32

// Reassembler rebuilds entries from Fragments, in any order and with
// duplicates, within ReassemblyLimits. The zero value is not ready; use
// NewReassembler (or the one inside Session). Not safe for concurrent use.
type Reassembler struct {
	lim     ReassemblyLimits
	parts   []partial
	done    [recentDone]uint64
	doneN   int
	maxSeq  uint64
	expired uint64
}

// NewReassembler returns a reassembler with the given limits (zero fields
// take defaults).
func NewReassembler(lim ReassemblyLimits) *Reassembler {
	r := new(Reassembler)
	r.init(lim)
	return r
}

func (r *Reassembler) init(lim ReassemblyLimits) {
	r.lim = lim.withDefaults()
	r.parts = make([]partial, 0, r.lim.MaxPartial)
}

// Pending returns the number of partly received entries.
func (r *Reassembler) Pending() int { return len(r.parts) }

// Expired returns how many partial entries timed out so far.
func (r *Reassembler) Expired() uint64 { return r.expired }

func (r *Reassembler) isDone(id uint64) bool {
	n := min(r.doneN, recentDone)
	return slices.Contains(r.done[:n], id)
}

func (r *Reassembler) drop(i int) { r.parts = slices.Delete(r.parts, i, i+1) }

// Expire drops partial entries that timed out by frame seq and returns how
// many it dropped.
func (r *Reassembler) Expire(seq uint64) int {
	r.maxSeq = max(r.maxSeq, seq)
	n := 0
	for i := 0; i < len(r.parts); {
		if r.maxSeq-r.parts[i].first >= r.lim.Timeout && r.maxSeq > r.parts[i].first {
			r.drop(i)
			n++
			continue
		}
		i++
	}
	r.expired += uint64(n)
	return n
}

// Add takes one fragment that arrived in the frame with sequence number seq.
// It returns the whole entry when f completes one (its byte slices are the
// caller's), nil and no error while the entry is incomplete or when f
// duplicates a piece already held or an entry already completed, and an
// error wrapping ErrReassembly or ErrTooLarge when f is refused; a refused
// fragment discards its partial entry. Entries that time out are dropped
// first (see Expire).
func (r *Reassembler) Add(seq uint64, f Fragment) (Entry, error) {
	r.Expire(seq)
	if err := checkFragment(f); err != nil {
		return nil, fmt.Errorf("reassemble: %w", err)
	}
	if int64(f.Total) > int64(r.lim.MaxSize) {
		return nil, fmt.Errorf("reassemble %d: total %d > %d: %w", f.ID, f.Total, r.lim.MaxSize, ErrTooLarge)
	}
	if r.isDone(f.ID) {
		return nil, nil
	}
	i := slices.IndexFunc(r.parts, func(p partial) bool { return p.id == f.ID })
	if i < 0 {
		if len(r.parts) >= r.lim.MaxPartial {
			return nil, fmt.Errorf("reassemble %d: %d entries already partial: %w", f.ID, len(r.parts), ErrReassembly)
		}
		r.parts = append(r.parts, partial{id: f.ID, first: seq, buf: make([]byte, f.Total)})
		i = len(r.parts) - 1
	}
	p := &r.parts[i]
	if int(f.Total) != len(p.buf) {
		total := len(p.buf)
		r.drop(i)
		return nil, fmt.Errorf("reassemble %d: total %d, earlier fragments said %d: %w", f.ID, f.Total, total, ErrReassembly)
	}
	nw := span{f.Offset, f.Offset + uint32(len(f.Piece))}
	at, _ := slices.BinarySearchFunc(p.spans, nw.off, func(s span, off uint32) int { return cmpU32(s.off, off) })
	if at < len(p.spans) && p.spans[at] == nw {
		if !bytes.Equal(p.buf[nw.off:nw.end], f.Piece) {
			r.drop(i)
			return nil, fmt.Errorf("reassemble %d: duplicate piece at %d differs: %w", f.ID, nw.off, ErrReassembly)
		}
		return nil, nil // exact duplicate
	}
	if (at > 0 && p.spans[at-1].end > nw.off) || (at < len(p.spans) && p.spans[at].off < nw.end) {
		r.drop(i)
		return nil, fmt.Errorf("reassemble %d: piece [%d,%d) overlaps: %w", f.ID, nw.off, nw.end, ErrReassembly)
	}
	copy(p.buf[nw.off:], f.Piece)
	p.spans = slices.Insert(p.spans, at, nw)
	p.got += len(f.Piece)
	if p.got < len(p.buf) {
		return nil, nil
	}
	buf := p.buf
	r.drop(i)
	r.done[r.doneN%recentDone] = f.ID
	r.doneN++
	es, err := ParseEntries(buf)
	if err != nil {
		return nil, fmt.Errorf("reassemble %d: %w: %w", f.ID, ErrReassembly, err)
	}
	if es.Len() != 1 {
		return nil, fmt.Errorf("reassemble %d: %d entries inside: %w", f.ID, es.Len(), ErrReassembly)
	}
	for e := range es.All() {
		if t := e.Type(); t == TypeFragment || t == TypeHello {
			return nil, fmt.Errorf("reassemble %d: %v inside: %w", f.ID, t, ErrReassembly)
		}
		return e, nil
	}
	return nil, fmt.Errorf("reassemble %d: empty: %w", f.ID, ErrReassembly)
}

func cmpU32(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Reassemble feeds a Fragment from an opened frame (seq is that frame's
// Seq) to the session's reassembler and counts failures and time-outs by
// verdict. The completed entry must be one the peer's role may send.
func (s *Session) Reassemble(seq uint64, f Fragment) (Entry, error) {
	before := s.reasm.expired
	e, err := s.reasm.Add(seq, f)
	for range s.reasm.expired - before {
		s.ep.counters.Add(VerdictReassembly)
	}
	if err == nil && e != nil && !e.Type().AllowedFrom(s.role.Peer()) {
		err = fmt.Errorf("reassemble %d: %v from %v: %w", f.ID, e.Type(), s.role.Peer(), ErrReassembly)
		e = nil
	}
	if err != nil {
		s.ep.counters.Add(VerdictOf(err))
		return nil, err
	}
	return e, nil
}
