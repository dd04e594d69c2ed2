package logwire

import (
	"errors"
	"fmt"
	"sync/atomic"
)

// Sentinel errors. Every error this package returns wraps exactly one of them
// (test with errors.Is), and VerdictOf maps it to the reason it is counted by.
var (
	ErrMalformed    = errors.New("logwire: malformed")
	ErrBadTag       = errors.New("logwire: authentication failed")
	ErrReplay       = errors.New("logwire: replayed or too old")
	ErrStaleEpoch   = errors.New("logwire: stale epoch")
	ErrVersion      = errors.New("logwire: unsupported version")
	ErrTooLarge     = errors.New("logwire: too large")
	ErrReassembly   = errors.New("logwire: reassembly failed")
	ErrWrongSession = errors.New("logwire: not this session")

	// Sender-side errors (never a receive verdict).
	ErrFull      = errors.New("logwire: entry does not fit in the frame's remaining room")
	ErrHandshake = errors.New("logwire: handshake refused")
	ErrExhausted = errors.New("logwire: sequence numbers exhausted; a new handshake is needed")
)

// VersionError is returned for a frame of another protocol version. It
// carries the peer's version and matches ErrVersion under errors.Is.
type VersionError struct {
	Version uint8 // the version the frame claims
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("logwire: unsupported version %d (this side speaks %d)", e.Version, Version)
}

// Is makes errors.Is(err, ErrVersion) true.
func (e *VersionError) Is(target error) bool { return target == ErrVersion }

// Verdict is what the receive path decided about one frame (or, for the
// reassembly reasons, one fragment). Only VerdictOK comes with entries.
type Verdict uint8

const (
	VerdictOK             Verdict = iota
	VerdictMalformed              // structurally invalid header, entries or hello
	VerdictBadTag                 // AEAD / HMAC tag did not verify: forged, corrupted or wrong key
	VerdictReplay                 // sequence number already seen or older than the window
	VerdictStaleEpoch             // authentic, but from an epoch older than ours
	VerdictUnknownVersion         // another protocol version (see VersionError)
	VerdictTooLarge               // frame above the MTU, or a reassembled entry above the limit
	VerdictReassembly             // inconsistent, overlapping or expired fragments, too many partial entries
	VerdictWrongSession           // session id or sender role is not this session's peer
	NumVerdicts                   // number of verdicts, for arrays of counters
)

var verdictNames = [NumVerdicts]string{
	"ok", "malformed", "bad_tag", "replay", "stale_epoch", "unknown_version", "too_large", "reassembly", "wrong_session",
}

// String returns the verdict's metric label (ok, bad_tag, …).
func (v Verdict) String() string {
	if v < NumVerdicts {
		return verdictNames[v]
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

// VerdictOf maps an error from this package to its verdict: nil is
// VerdictOK, an unknown error VerdictMalformed.
func VerdictOf(err error) Verdict {
	switch {
	case err == nil:
		return VerdictOK
	case errors.Is(err, ErrVersion):
		return VerdictUnknownVersion
	case errors.Is(err, ErrBadTag):
		return VerdictBadTag
	case errors.Is(err, ErrReplay):
		return VerdictReplay
	case errors.Is(err, ErrStaleEpoch):
		return VerdictStaleEpoch
	case errors.Is(err, ErrTooLarge):
		return VerdictTooLarge
	case errors.Is(err, ErrReassembly):
		return VerdictReassembly
	case errors.Is(err, ErrWrongSession):
		return VerdictWrongSession
	}
	return VerdictMalformed
}

// Counters counts verdicts by reason. It is safe for concurrent use (the box
// loop counts, status readers read); the zero value is ready.
type Counters struct {
	n [NumVerdicts]atomic.Uint64
}

// Add counts one verdict.
func (c *Counters) Add(v Verdict) {
	if v < NumVerdicts {
		c.n[v].Add(1)
	}
}

// Get returns the count for one verdict.
func (c *Counters) Get(v Verdict) uint64 {
	if v < NumVerdicts {
		return c.n[v].Load()
	}
	return 0
}

// Snapshot returns every count, indexed by Verdict.
func (c *Counters) Snapshot() [NumVerdicts]uint64 {
	var s [NumVerdicts]uint64
	for i := range s {
		s[i] = c.n[i].Load()
	}
	return s
}
