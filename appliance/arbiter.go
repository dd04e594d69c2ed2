package appliance

// The arbiter: a test-and-set service on the LAN that breaks ties on
// failover (`ftbox arbiter`), and the client a box calls it with.
//
// # Semantics
//
// Exactly ftcore.MemArbiter's, per pair: a claim of epoch E by claimant W is
// granted if E is above the last granted epoch; a claim of the last granted
// epoch by its holder is granted again (so a claimant whose answer was lost
// may ask again); everything else is refused, and the refusal carries the
// current epoch and holder. A grant is on disk (temp file, fsync, rename,
// fsync of the directory) before it is answered, so a restarted arbiter never
// grants an epoch twice.
//
// # Transport: UDP
//
// One datagram asks, one answers. The operation is idempotent from the
// client's point of view (a retry by the winner wins again, a loser keeps
// losing), so lost datagrams are handled by resending with a fresh nonce
// until the caller's deadline, and a late answer to an earlier attempt of
// the same call is as good as the latest. There is no connection to set up,
// time out or leak on either side, no head-of-line blocking behind a dead
// peer, and the server handles one datagram at a time, which makes the
// test-and-set atomic without further locking of the protocol. TCP would add
// a handshake round trip and connection state to a failover's critical path
// and still need application-level retries across reconnects.
//
// # Wire format (version 1, big-endian)
//
// Request, 80+n bytes:
//
//	0 magic "FTAQ" | 4 version 1 | 5 op 1 (test-and-set) or 2 (query) | 6 n = claimant length (1..64) | 7 reserved 0
//	8 pair id [8] | 16 epoch u64 | 24 client time (Unix ns, i64) | 32 nonce [16]
//	48 claimant [n] (UTF-8, no control characters) | 48+n tag [32]
//
// Reply, 88+n bytes (n = holder length, 0..64):
//
//	0 magic "FTAR" | 4 version 1 | 5 status | 6 n | 7 reserved 0
//	8 pair id [8] | 16 requested epoch | 24 current epoch | 32 server time (Unix ns)
//	40 nonce [16] (the request's) | 56 holder [n] | 56+n tag [32]
//
// Status 1 granted, 2 refused, 3 clock (the request's time is outside the
// server's window; the reply carries the server's time so the client can
// correct its offset and ask again at once), 4 current (the answer to a
// query). These four are authenticated.
//
// A query (op 2, epoch 0, claimant = the asker's name) is read-only: the
// answer says the last granted epoch and its holder and changes nothing. A
// starting box asks it to learn the epoch it is in (ftcore.StartRole). It is
// authenticated and replay-protected exactly like a claim.
// Statuses 16 malformed, 17 unknown pair, 18 bad MAC are hints: 56 bytes,
// no holder, no tag, sent only for requests long enough to carry a pair id
// and nonce. A client never acts on a hint; it only names the likely cause
// when the call times out ("wrong key?").
//
// # Keys
//
// From the pair's pre-shared key (the logging link's key file):
// HKDF-SHA256(PSK, info "ftbox/arbiter v1 request") keys the request HMAC,
// "… reply" the reply HMAC (so a request can never pass for a reply), and
// "… pair id" gives the 8-byte pair id, a public fingerprint by which an
// arbiter serving several pairs finds the key. The log link's keys use other
// labels, so no key is shared between the two protocols.
//
// # Replays
//
// A reply is bound to the request's nonce (and epoch and pair): the client
// accepts only replies to nonces it sent in the current call, so a recorded
// grant cannot be replayed to it. A request carries the client's time; the
// server refuses requests outside ±MaxSkew of its clock and remembers the
// nonces of the requests inside the window, dropping (and counting) a nonce
// seen before. Replaying a request could at worst re-ask a question its
// claimant asked: it cannot move the state anywhere the claimant did not
// ask it to go, and after a restart (the nonce memory is not kept on disk)
// the persisted state already reflects every answered request.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/hkdf"
	"golang.org/x/sys/unix"

	"ftbox/ftcore"
)

// Arbiter wire constants.
const (
	arbVersion     = 1
	arbOpTAS       = 1
	arbOpQuery     = 2
	arbReqFixed    = 48
	arbRepFixed    = 56
	arbTagLen      = sha256.Size
	arbNonceLen    = 16
	arbReqMin      = arbReqFixed + 1 + arbTagLen
	arbHintLen     = arbRepFixed
	arbMaxDatagram = 512

	// MaxClaimant is the longest claimant (box) name the arbiter accepts.
	MaxClaimant = 64
	// DefaultArbiterMaxSkew is how far a request's time may be from the
	// arbiter's clock.
	DefaultArbiterMaxSkew = 2 * time.Minute
	// DefaultArbiterRetry is the first resend interval of a client call; it
	// doubles up to 4× per resend.
	DefaultArbiterRetry = 50 * time.Millisecond

	arbNonceMemory = 1 << 16 // remembered request nonces, at most
)

var (
	arbReqMagic = [4]byte{'F', 'T', 'A', 'Q'}
	arbRepMagic = [4]byte{'F', 'T', 'A', 'R'}
)

// ArbiterReplyStatus is a reply's status byte.
type ArbiterReplyStatus uint8

// Reply statuses. Granted, Refused and Clock are authenticated; the others
// are unauthenticated hints.
const (
	ArbiterGranted      ArbiterReplyStatus = 1
	ArbiterRefused      ArbiterReplyStatus = 2
	ArbiterClock        ArbiterReplyStatus = 3
	ArbiterCurrent      ArbiterReplyStatus = 4
	ArbiterMalformed    ArbiterReplyStatus = 16
	ArbiterUnknownPair  ArbiterReplyStatus = 17
	ArbiterBadMAC       ArbiterReplyStatus = 18
	arbiterFirstHint                       = ArbiterMalformed
	arbiterStatusSentry                    = 19
)

func (s ArbiterReplyStatus) String() string {
	switch s {
	case ArbiterGranted:
		return "granted"
	case ArbiterRefused:
		return "refused"
	case ArbiterClock:
		return "clock outside the arbiter's window"
	case ArbiterCurrent:
		return "current"
	case ArbiterMalformed:
		return "malformed request"
	case ArbiterUnknownPair:
		return "unknown pair (the arbiter has no key with this request's pair id: wrong key file?)"
	case ArbiterBadMAC:
		return "bad MAC (the arbiter's key for this pair differs from ours?)"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// ErrArbiterProtocol is wrapped by every error about an arbiter datagram
// that does not parse or authenticate.
var ErrArbiterProtocol = errors.New("arbiter protocol")

// arbiterKeys are the arbiter's keys for one pair, derived from its PSK.
type arbiterKeys struct {
	pair     [8]byte
	req, rep [32]byte
}

func deriveArbiterKeys(psk [KeySize]byte) (arbiterKeys, error) {
	var k arbiterKeys
	prk := hkdf.Extract(sha256.New, psk[:], nil)
	for _, d := range []struct {
		label string
		out   []byte
	}{
		{"ftbox/arbiter v1 pair id", k.pair[:]},
		{"ftbox/arbiter v1 request", k.req[:]},
		{"ftbox/arbiter v1 reply", k.rep[:]},
	} {
		if _, err := hkdf.Expand(sha256.New, prk, []byte(d.label)).Read(d.out); err != nil {
			return k, fmt.Errorf("derive arbiter key %q: %w", d.label, err)
		}
	}
	return k, nil
}

// ArbiterPairID returns the public pair id an arbiter knows a pair's key by
// (a fingerprint of the key), in hex.
func ArbiterPairID(psk [KeySize]byte) string {
	k, err := deriveArbiterKeys(psk)
	if err != nil {
		return "?"
	}
	return hex.EncodeToString(k.pair[:])
}

func arbMAC(key *[32]byte, msg []byte) []byte {
	m := hmac.New(sha256.New, key[:])
	m.Write(msg)
	return m.Sum(nil)
}

// checkClaimant validates a claimant (or holder) name.
func checkClaimant(s string) error {
	if s == "" {
		return errors.New("empty claimant")
	}
	if len(s) > MaxClaimant {
		return fmt.Errorf("claimant of %d bytes, max %d", len(s), MaxClaimant)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("claimant %q is not UTF-8", s)
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return fmt.Errorf("claimant %q has control characters", s)
	}
	return nil
}

// arbRequest is a decoded request.
type arbRequest struct {
	Op       uint8 // arbOpTAS or arbOpQuery
	Pair     [8]byte
	Epoch    uint64
	Time     int64 // client's clock, Unix ns
	Nonce    [arbNonceLen]byte
	Claimant string
	Tag      [arbTagLen]byte
}

// appendArbRequest encodes r and computes its tag under key.
func appendArbRequest(b []byte, r *arbRequest, key *[32]byte) []byte {
	start := len(b)
	b = append(b, arbReqMagic[:]...)
	op := r.Op
	if op == 0 {
		op = arbOpTAS
	}
	b = append(b, arbVersion, op, byte(len(r.Claimant)), 0)
	b = append(b, r.Pair[:]...)
	b = binary.BigEndian.AppendUint64(b, r.Epoch)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Time))
	b = append(b, r.Nonce[:]...)
	b = append(b, r.Claimant...)
	return append(b, arbMAC(key, b[start:])...)
}

// parseArbRequest checks a request's structure (not its tag). It returns
// what it could read of the pair id and nonce even on error, so that the
// server can address a hint; ok reports whether they were read.
func parseArbRequest(b []byte) (r arbRequest, hintable bool, err error) {
	if len(b) < arbReqFixed {
		return r, false, fmt.Errorf("request of %d bytes, need at least %d: %w", len(b), arbReqMin, ErrArbiterProtocol)
	}
	if !bytes.Equal(b[0:4], arbReqMagic[:]) {
		return r, false, fmt.Errorf("request magic %q: %w", b[0:4], ErrArbiterProtocol)
	}
	copy(r.Pair[:], b[8:16])
	r.Epoch = binary.BigEndian.Uint64(b[16:])
	r.Time = int64(binary.BigEndian.Uint64(b[24:]))
	copy(r.Nonce[:], b[32:48])
	r.Op = b[5]
	switch {
	case b[4] != arbVersion:
		return r, true, fmt.Errorf("request version %d, want %d: %w", b[4], arbVersion, ErrArbiterProtocol)
	case b[5] != arbOpTAS && b[5] != arbOpQuery:
		return r, true, fmt.Errorf("request op %d: %w", b[5], ErrArbiterProtocol)
	case b[5] == arbOpQuery && r.Epoch != 0:
		return r, true, fmt.Errorf("query with epoch %d: %w", r.Epoch, ErrArbiterProtocol)
	case b[7] != 0:
		return r, true, fmt.Errorf("request reserved byte %#x: %w", b[7], ErrArbiterProtocol)
	}
	n := int(b[6])
	if want := arbReqFixed + n + arbTagLen; len(b) != want {
		return r, true, fmt.Errorf("request of %d bytes, claimant length %d says %d: %w", len(b), n, want, ErrArbiterProtocol)
	}
	r.Claimant = string(b[arbReqFixed : arbReqFixed+n])
	if err := checkClaimant(r.Claimant); err != nil {
		return r, true, fmt.Errorf("request: %v: %w", err, ErrArbiterProtocol)
	}
	copy(r.Tag[:], b[arbReqFixed+n:])
	return r, true, nil
}

// arbReply is a decoded reply.
type arbReply struct {
	Status     ArbiterReplyStatus
	Pair       [8]byte
	Requested  uint64 // the epoch asked for
	Current    uint64 // the last granted epoch after this request
	ServerTime int64
	Nonce      [arbNonceLen]byte
	Holder     string // holder of Current
	Tag        [arbTagLen]byte
	Hint       bool // unauthenticated hint
}

func appendArbReply(b []byte, r *arbReply, key *[32]byte) []byte {
	start := len(b)
	holder := r.Holder
	if r.Status >= arbiterFirstHint {
		holder = ""
	}
	b = append(b, arbRepMagic[:]...)
	b = append(b, arbVersion, byte(r.Status), byte(len(holder)), 0)
	b = append(b, r.Pair[:]...)
	b = binary.BigEndian.AppendUint64(b, r.Requested)
	b = binary.BigEndian.AppendUint64(b, r.Current)
	b = binary.BigEndian.AppendUint64(b, uint64(r.ServerTime))
	b = append(b, r.Nonce[:]...)
	b = append(b, holder...)
	if r.Status >= arbiterFirstHint {
		return b
	}
	return append(b, arbMAC(key, b[start:])...)
}

// parseArbReply decodes a reply and, for authenticated statuses, checks its
// tag under key.
func parseArbReply(b []byte, key *[32]byte) (arbReply, error) {
	var r arbReply
	if len(b) < arbRepFixed {
		return r, fmt.Errorf("reply of %d bytes: %w", len(b), ErrArbiterProtocol)
	}
	if !bytes.Equal(b[0:4], arbRepMagic[:]) || b[4] != arbVersion || b[7] != 0 {
		return r, fmt.Errorf("reply header % x: %w", b[:8], ErrArbiterProtocol)
	}
	r.Status = ArbiterReplyStatus(b[5])
	copy(r.Pair[:], b[8:16])
	r.Requested = binary.BigEndian.Uint64(b[16:])
	r.Current = binary.BigEndian.Uint64(b[24:])
	r.ServerTime = int64(binary.BigEndian.Uint64(b[32:]))
	copy(r.Nonce[:], b[40:56])
	n := int(b[6])
	switch {
	case r.Status >= arbiterFirstHint && r.Status < arbiterStatusSentry:
		if n != 0 || len(b) != arbHintLen {
			return r, fmt.Errorf("hint of %d bytes: %w", len(b), ErrArbiterProtocol)
		}
		r.Hint = true
		return r, nil
	case r.Status == ArbiterGranted || r.Status == ArbiterRefused || r.Status == ArbiterClock || r.Status == ArbiterCurrent:
	default:
		return r, fmt.Errorf("reply status %d: %w", b[5], ErrArbiterProtocol)
	}
	if len(b) != arbRepFixed+n+arbTagLen {
		return r, fmt.Errorf("reply of %d bytes, holder length %d: %w", len(b), n, ErrArbiterProtocol)
	}
	if !hmac.Equal(arbMAC(key, b[:arbRepFixed+n]), b[arbRepFixed+n:]) {
		return r, fmt.Errorf("reply tag: %w", ErrArbiterProtocol)
	}
	r.Holder = string(b[arbRepFixed : arbRepFixed+n])
	copy(r.Tag[:], b[arbRepFixed+n:])
	return r, nil
}

// ---------------------------------------------------------------------------
// State file

// arbiterStateFormat names the state file's format; a file of another format
// is refused.
const arbiterStateFormat = "ftbox-arbiter-state v1"

// ArbiterGrant is the last grant made for one pair.
type ArbiterGrant struct {
	Pair   string `json:"pair"` // hex pair id
	Epoch  uint64 `json:"epoch"`
	Holder string `json:"holder"`
}

type arbiterStateFile struct {
	Format string         `json:"format"`
	Grants []ArbiterGrant `json:"grants"`
	SHA256 string         `json:"sha256"` // of the JSON encoding of Grants
}

// ErrArbiterState is wrapped by errors about an unreadable state file.
var ErrArbiterState = errors.New("arbiter state file is corrupt")

func grantsSum(gs []ArbiterGrant) (string, error) {
	b, err := json.Marshal(gs)
	if err != nil {
		return "", err
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:]), nil
}

// LoadArbiterState reads a state file. A missing file is an empty state
// (first start; exists reports false); anything unreadable, truncated,
// edited or inconsistent is an error wrapping ErrArbiterState — the arbiter
// must not forget grants silently.
func LoadArbiterState(path string) (grants []ArbiterGrant, exists bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read arbiter state: %w", err)
	}
	var f arbiterStateFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, true, fmt.Errorf("%s: %w: %v", path, ErrArbiterState, err)
	}
	if dec.More() {
		return nil, true, fmt.Errorf("%s: %w: trailing data", path, ErrArbiterState)
	}
	if f.Format != arbiterStateFormat {
		return nil, true, fmt.Errorf("%s: %w: format %q, want %q", path, ErrArbiterState, f.Format, arbiterStateFormat)
	}
	if f.Grants == nil {
		f.Grants = []ArbiterGrant{}
	}
	sum, err := grantsSum(f.Grants)
	if err != nil || sum != f.SHA256 {
		return nil, true, fmt.Errorf("%s: %w: checksum mismatch (edited or damaged)", path, ErrArbiterState)
	}
	seen := map[string]bool{}
	for _, g := range f.Grants {
		p, err := hex.DecodeString(g.Pair)
		switch {
		case err != nil || len(p) != 8 || g.Pair != strings.ToLower(g.Pair):
			return nil, true, fmt.Errorf("%s: %w: pair id %q", path, ErrArbiterState, g.Pair)
		case seen[g.Pair]:
			return nil, true, fmt.Errorf("%s: %w: pair %s twice", path, ErrArbiterState, g.Pair)
		case g.Epoch == 0:
			return nil, true, fmt.Errorf("%s: %w: pair %s: epoch 0 granted", path, ErrArbiterState, g.Pair)
		}
		if err := checkClaimant(g.Holder); err != nil {
			return nil, true, fmt.Errorf("%s: %w: pair %s: holder: %v", path, ErrArbiterState, g.Pair, err)
		}
		seen[g.Pair] = true
	}
	return f.Grants, true, nil
}

// writeArbiterState replaces the state file atomically and durably: a temp
// file in the same directory, fsync, rename, fsync of the directory.
func writeArbiterState(path string, grants []ArbiterGrant) error {
	gs := append([]ArbiterGrant{}, grants...) // never null in the file: it loads as empty
	sort.Slice(gs, func(i, j int) bool { return gs[i].Pair < gs[j].Pair })
	sum, err := grantsSum(gs)
	if err != nil {
		return fmt.Errorf("encode arbiter state: %w", err)
	}
	b, err := json.MarshalIndent(arbiterStateFile{Format: arbiterStateFormat, Grants: gs, SHA256: sum}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode arbiter state: %w", err)
	}
	b = append(b, '\n')
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return fmt.Errorf("write arbiter state: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(b); err != nil {
		return fmt.Errorf("write arbiter state %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("fsync arbiter state %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close arbiter state %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace arbiter state: %w", err)
	}
	ok = true
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync arbiter state directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync arbiter state directory %s: %w", dir, err)
	}
	return nil
}

// ---------------------------------------------------------------------------
// Server

// ArbiterServerConfig configures an ArbiterServer.
type ArbiterServerConfig struct {
	// Keys are the pre-shared keys of the pairs served (one per pair).
	Keys [][KeySize]byte
	// StatePath is the state file. A missing one is an error unless Init
	// is set; an existing file that does not load is an error.
	StatePath string
	// Init creates a state file with nothing granted; it refuses to run
	// if the file exists. An arbiter must never start blank by accident
	// (a wrong path, a tmpfs, a reinstalled host): a blank arbiter grants
	// again an epoch a live box holds.
	Init bool
	// MaxSkew bounds |request time − server time|; 0 means
	// DefaultArbiterMaxSkew.
	MaxSkew time.Duration
	// Log receives grants and bad requests (rate-limited); nil discards.
	Log *slog.Logger
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// ArbiterStats are the server's counters.
type ArbiterStats struct {
	Requests      uint64 `json:"requests"`       // datagrams received
	Queries       uint64 `json:"queries"`        // current-epoch queries answered
	Granted       uint64 `json:"granted"`        // new epochs granted
	Regranted     uint64 `json:"regranted"`      // repeated claims by the holder, granted again
	RefusedStale  uint64 `json:"refused_stale"`  // claims of an epoch below the current one
	RefusedTaken  uint64 `json:"refused_taken"`  // claims of the current epoch by someone else
	Malformed     uint64 `json:"malformed"`      // datagrams that do not parse
	UnknownPair   uint64 `json:"unknown_pair"`   // pair ids we hold no key for
	BadMAC        uint64 `json:"bad_mac"`        // forged or wrong-key requests
	Replayed      uint64 `json:"replayed"`       // nonces seen before (dropped)
	ClockSkew     uint64 `json:"clock_skew"`     // requests outside the time window
	PersistErrors uint64 `json:"persist_errors"` // grants not answered because the state could not be saved
}

type arbiterCounters struct {
	requests, queries, granted, regranted, refusedStale, refusedTaken, malformed,
	unknownPair, badMAC, replayed, clockSkew, persistErrors atomic.Uint64
}

// ArbiterServer is the test-and-set service. Requests are handled one at a
// time (under a lock), so each test-and-set is atomic.
type ArbiterServer struct {
	cfg  ArbiterServerConfig
	log  *slog.Logger
	keys map[[8]byte]*arbiterKeys
	lock *os.File

	mu     sync.Mutex
	grants map[string]ArbiterGrant // by hex pair id
	nonces map[[arbNonceLen]byte]int64
	floor  int64 // requests at or below this time are refused as replays (nonce memory overflowed)

	logMu   sync.Mutex
	lastLog map[string]time.Time

	c arbiterCounters
}

// NewArbiterServer loads the state file (refusing a corrupt one) and takes
// an exclusive lock on STATE.lock, so two arbiters never share a state file.
// Close releases the lock.
func NewArbiterServer(cfg ArbiterServerConfig) (*ArbiterServer, error) {
	if cfg.StatePath == "" {
		return nil, errors.New("arbiter: no state file")
	}
	if len(cfg.Keys) == 0 {
		return nil, errors.New("arbiter: no pair key")
	}
	if cfg.MaxSkew <= 0 {
		cfg.MaxSkew = DefaultArbiterMaxSkew
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &ArbiterServer{
		cfg:     cfg,
		log:     cfg.Log,
		keys:    map[[8]byte]*arbiterKeys{},
		grants:  map[string]ArbiterGrant{},
		nonces:  map[[arbNonceLen]byte]int64{},
		lastLog: map[string]time.Time{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	for i, psk := range cfg.Keys {
		k, err := deriveArbiterKeys(psk)
		if err != nil {
			return nil, fmt.Errorf("arbiter: key %d: %w", i, err)
		}
		if _, dup := s.keys[k.pair]; dup {
			return nil, fmt.Errorf("arbiter: key %d is given twice (pair %x)", i, k.pair)
		}
		s.keys[k.pair] = &k
	}
	lock, err := os.OpenFile(cfg.StatePath+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("arbiter: lock state file: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("arbiter: state file %s is in use by another arbiter (lock %s.lock): %w", cfg.StatePath, cfg.StatePath, err)
	}
	s.lock = lock
	grants, exists, err := LoadArbiterState(cfg.StatePath)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("arbiter: %w (refusing to start: a reset state could grant an epoch twice; restore the file or remove it deliberately)", err)
	}
	switch {
	case exists && cfg.Init:
		lock.Close()
		return nil, fmt.Errorf("arbiter: --init, but the state file %s exists (it holds the grants: start without --init)", cfg.StatePath)
	case !exists && !cfg.Init:
		lock.Close()
		return nil, fmt.Errorf("arbiter: state file %s does not exist: refusing to start with nothing granted, which could grant a live box's epoch twice. "+
			"A new arbiter: start it once with --init. A lost state file: restore it, or start with --init knowing that the live box re-asserts its epoch within a second", cfg.StatePath)
	case cfg.Init:
		if err := writeArbiterState(cfg.StatePath, nil); err != nil {
			lock.Close()
			return nil, fmt.Errorf("arbiter: --init: %w", err)
		}
		s.log.Warn("arbiter: --init: new state file, nothing granted", "state", cfg.StatePath)
	}
	for _, g := range grants {
		s.grants[g.Pair] = g
	}
	for p := range s.keys {
		g := s.grants[hex.EncodeToString(p[:])]
		s.log.Info("arbiter: pair", "pair", hex.EncodeToString(p[:]), "epoch", g.Epoch, "holder", g.Holder)
	}
	return s, nil
}

// Close releases the state file's lock. It does not close connections
// given to Serve.
func (s *ArbiterServer) Close() error {
	if s.lock == nil {
		return nil
	}
	err := s.lock.Close()
	s.lock = nil
	return err
}

// Stats returns a snapshot of the counters.
func (s *ArbiterServer) Stats() ArbiterStats {
	c := &s.c
	return ArbiterStats{
		Requests: c.requests.Load(), Queries: c.queries.Load(), Granted: c.granted.Load(), Regranted: c.regranted.Load(),
		RefusedStale: c.refusedStale.Load(), RefusedTaken: c.refusedTaken.Load(),
		Malformed: c.malformed.Load(), UnknownPair: c.unknownPair.Load(), BadMAC: c.badMAC.Load(),
		Replayed: c.replayed.Load(), ClockSkew: c.clockSkew.Load(), PersistErrors: c.persistErrors.Load(),
	}
}

// Grant returns the last grant for the pair of psk (zero if none).
func (s *ArbiterServer) Grant(psk [KeySize]byte) ArbiterGrant {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.grants[ArbiterPairID(psk)]
}

// Serve answers requests on pc until it is closed (then it returns nil) or
// fails. Several Serve calls (one per socket) may run at once.
func (s *ArbiterServer) Serve(pc net.PacketConn) error {
	buf := make([]byte, arbMaxDatagram+1)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("arbiter: read: %w", err)
		}
		reply := s.Handle(buf[:n], addr.String())
		if reply == nil {
			continue
		}
		if _, err := pc.WriteTo(reply, addr); err != nil {
			s.logBad("write", "arbiter: cannot answer", "from", addr.String(), "err", err)
		}
	}
}

// logBad logs at most once a second per kind.
func (s *ArbiterServer) logBad(kind, msg string, args ...any) {
	s.logMu.Lock()
	now := time.Now()
	last := s.lastLog[kind]
	if now.Sub(last) < time.Second {
		s.logMu.Unlock()
		return
	}
	s.lastLog[kind] = now
	s.logMu.Unlock()
	s.log.Warn(msg, args...)
}

// Handle decides one request datagram and returns the reply to send (nil:
// send nothing). from names the sender in logs.
func (s *ArbiterServer) Handle(b []byte, from string) []byte {
	s.c.requests.Add(1)
	now := s.cfg.Now()
	req, hintable, err := parseArbRequest(b)
	hint := func(st ArbiterReplyStatus) []byte {
		if !hintable || len(b) < arbReqMin { // a hint is never larger than what provoked it
			return nil
		}
		return appendArbReply(nil, &arbReply{Status: st, Pair: req.Pair, Requested: req.Epoch, ServerTime: now.UnixNano(), Nonce: req.Nonce}, nil)
	}
	if err != nil || len(b) > arbMaxDatagram {
		s.c.malformed.Add(1)
		s.logBad("malformed", "arbiter: malformed request", "from", from, "bytes", len(b), "err", err)
		return hint(ArbiterMalformed)
	}
	keys := s.keys[req.Pair]
	if keys == nil {
		s.c.unknownPair.Add(1)
		s.logBad("pair", "arbiter: request for an unknown pair (wrong key file on the box or here?)", "from", from, "pair", hex.EncodeToString(req.Pair[:]))
		return hint(ArbiterUnknownPair)
	}
	n := len(b) - arbTagLen
	if !hmac.Equal(arbMAC(&keys.req, b[:n]), b[n:]) {
		s.c.badMAC.Add(1)
		s.logBad("mac", "arbiter: request with a bad MAC (forged, corrupted, or a different key)", "from", from)
		return hint(ArbiterBadMAC)
	}
	pair := hex.EncodeToString(req.Pair[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	reply := func(st ArbiterReplyStatus, g ArbiterGrant) []byte {
		r := arbReply{Status: st, Pair: req.Pair, Requested: req.Epoch, Current: g.Epoch, Holder: g.Holder,
			ServerTime: now.UnixNano(), Nonce: req.Nonce}
		return appendArbReply(nil, &r, &keys.rep)
	}
	cur := s.grants[pair]
	if d := time.Duration(now.UnixNano() - req.Time); d > s.cfg.MaxSkew || d < -s.cfg.MaxSkew {
		s.c.clockSkew.Add(1)
		s.logBad("clock", "arbiter: request time outside the window; told the client our time", "from", from, "skew", d, "max", s.cfg.MaxSkew)
		return reply(ArbiterClock, cur)
	}
	if _, seen := s.nonces[req.Nonce]; seen || req.Time <= s.floor {
		s.c.replayed.Add(1)
		s.logBad("replay", "arbiter: replayed request dropped", "from", from, "epoch", req.Epoch, "claimant", req.Claimant)
		return nil
	}
	s.remember(req.Nonce, req.Time, now)
	if req.Op == arbOpQuery {
		s.c.queries.Add(1)
		return reply(ArbiterCurrent, cur)
	}
	switch {
	case req.Epoch > cur.Epoch:
		next := ArbiterGrant{Pair: pair, Epoch: req.Epoch, Holder: req.Claimant}
		all := make([]ArbiterGrant, 0, len(s.grants)+1)
		for p, g := range s.grants {
			if p != pair {
				all = append(all, g)
			}
		}
		if err := writeArbiterState(s.cfg.StatePath, append(all, next)); err != nil {
			s.c.persistErrors.Add(1)
			delete(s.nonces, req.Nonce) // let the client's retry through
			s.log.Error("arbiter: cannot save the grant; not answering", "epoch", req.Epoch, "claimant", req.Claimant, "err", err)
			return nil
		}
		s.grants[pair] = next
		s.c.granted.Add(1)
		s.log.Info("arbiter: granted", "pair", pair, "epoch", req.Epoch, "holder", req.Claimant, "previous_epoch", cur.Epoch, "previous_holder", cur.Holder, "from", from)
		return reply(ArbiterGranted, next)
	case req.Epoch == cur.Epoch && req.Claimant == cur.Holder:
		s.c.regranted.Add(1)
		return reply(ArbiterGranted, cur)
	case req.Epoch < cur.Epoch:
		s.c.refusedStale.Add(1)
		s.log.Info("arbiter: refused stale epoch", "pair", pair, "epoch", req.Epoch, "claimant", req.Claimant, "current", cur.Epoch, "holder", cur.Holder)
	default:
		s.c.refusedTaken.Add(1)
		s.log.Info("arbiter: refused, epoch already held", "pair", pair, "epoch", req.Epoch, "claimant", req.Claimant, "holder", cur.Holder)
	}
	return reply(ArbiterRefused, cur)
}

// remember records an accepted nonce; s.mu is held. Entries older than the
// window are forgotten (the window refuses them anyway); if authentic
// requests alone overflow the memory, the oldest half is forgotten and the
// floor raised past it, so a forgotten nonce can still not be replayed.
func (s *ArbiterServer) remember(n [arbNonceLen]byte, t int64, now time.Time) {
	if len(s.nonces) >= arbNonceMemory {
		old := now.Add(-s.cfg.MaxSkew).UnixNano()
		for k, v := range s.nonces {
			if v < old {
				delete(s.nonces, k)
			}
		}
	}
	if len(s.nonces) >= arbNonceMemory {
		ts := make([]int64, 0, len(s.nonces))
		for _, v := range s.nonces {
			ts = append(ts, v)
		}
		slices.Sort(ts)
		s.floor = max(s.floor, ts[len(ts)/2])
		for k, v := range s.nonces {
			if v <= s.floor {
				delete(s.nonces, k)
			}
		}
	}
	s.nonces[n] = t
}

// ---------------------------------------------------------------------------
// Client

// ArbiterClientOptions tune an ArbiterClient.
type ArbiterClientOptions struct {
	// Timeout bounds a TestAndSet call (Claim calls are bounded by their
	// context, and by Timeout too if the context has no deadline). 0 means
	// DefaultArbiterTimeout.
	Timeout time.Duration
	// Retry is the first resend interval; 0 means DefaultArbiterRetry.
	Retry time.Duration
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// ArbiterClient asks an arbiter for test-and-sets. It is safe for
// concurrent use; each call blocks (use it from an I/O goroutine, not the
// box loop) until an authentic answer, the deadline or cancellation.
type ArbiterClient struct {
	addr   string
	keys   arbiterKeys
	opts   ArbiterClientOptions
	offset atomic.Int64 // server clock − our clock, learned from ArbiterClock replies
}

var _ ftcore.Arbiter = (*ArbiterClient)(nil)

// NewArbiterClient returns a client of the arbiter at addr (host:port) for
// the pair whose pre-shared key is psk.
func NewArbiterClient(addr string, psk [KeySize]byte, opts ArbiterClientOptions) (*ArbiterClient, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("arbiter client: address %q: %w", addr, err)
	}
	k, err := deriveArbiterKeys(psk)
	if err != nil {
		return nil, fmt.Errorf("arbiter client: %w", err)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultArbiterTimeout
	}
	if opts.Retry <= 0 {
		opts.Retry = DefaultArbiterRetry
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &ArbiterClient{addr: addr, keys: k, opts: opts}, nil
}

// ArbiterDecision is an authentic answer to a claim.
type ArbiterDecision struct {
	Won    bool
	Epoch  uint64 // the last granted epoch after the claim
	Holder string // its holder
}

// TestAndSet implements ftcore.Arbiter with the client's Timeout. err
// means no authentic answer arrived: the claim is neither won nor lost.
func (c *ArbiterClient) TestAndSet(epoch uint64, who string) (bool, error) {
	d, err := c.Claim(context.Background(), epoch, who)
	return d.Won, err
}

// Claim asks for epoch on behalf of who and returns the arbiter's decision.
// It sends a request with a fresh nonce, resends (new nonce, backing off
// from Retry up to 4×Retry) until an authentic reply to any of its nonces
// arrives, and gives up at the deadline.
func (c *ArbiterClient) Claim(ctx context.Context, epoch uint64, who string) (ArbiterDecision, error) {
	return c.call(ctx, arbOpTAS, epoch, who)
}

// Current implements ftcore.Arbiter with the client's Timeout, asking on
// behalf of an unnamed box.
func (c *ArbiterClient) Current() (uint64, string, error) {
	d, err := c.Query(context.Background(), "ftbox")
	return d.Epoch, d.Holder, err
}

// Query asks, on behalf of who, for the last granted epoch and its holder
// (Won is always false). It is read-only, authenticated and retried like
// Claim.
func (c *ArbiterClient) Query(ctx context.Context, who string) (ArbiterDecision, error) {
	return c.call(ctx, arbOpQuery, 0, who)
}

func (c *ArbiterClient) call(ctx context.Context, op uint8, epoch uint64, who string) (ArbiterDecision, error) {
	if err := checkClaimant(who); err != nil {
		return ArbiterDecision{}, fmt.Errorf("arbiter claim: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.Timeout)
		defer cancel()
	}
	start := time.Now()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", c.addr)
	if err != nil {
		return ArbiterDecision{}, fmt.Errorf("arbiter %s: %w", c.addr, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	sent := map[[arbNonceLen]byte]bool{}
	var (
		buf     = make([]byte, arbMaxDatagram)
		out     []byte
		hint    string
		retry   = c.opts.Retry
		resend  time.Time
		clockFx int
	)
	send := func() error {
		r := arbRequest{Op: op, Pair: c.keys.pair, Epoch: epoch, Claimant: who,
			Time: c.opts.Now().UnixNano() + c.offset.Load()}
		if _, err := rand.Read(r.Nonce[:]); err != nil {
			return fmt.Errorf("arbiter claim: nonce: %w", err)
		}
		sent[r.Nonce] = true
		out = appendArbRequest(out[:0], &r, &c.keys.req)
		if _, err := conn.Write(out); err != nil {
			hint = err.Error()
		}
		resend = time.Now().Add(retry)
		retry = min(2*retry, 4*c.opts.Retry)
		return nil
	}
	if err := send(); err != nil {
		return ArbiterDecision{}, err
	}
	for {
		conn.SetReadDeadline(resend)
		if ctx.Err() != nil { // cancelled between AfterFunc and here
			conn.SetReadDeadline(time.Unix(1, 0))
		}
		n, err := conn.Read(buf)
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				what := fmt.Sprintf("the claim of epoch %d", epoch)
				if op == arbOpQuery {
					what = "the current-epoch query"
				}
				msg := fmt.Sprintf("arbiter %s: no answer to %s after %d requests", c.addr, what, len(sent))
				if hint != "" {
					msg += " (" + hint + ")"
				}
				if errors.Is(cerr, context.DeadlineExceeded) {
					msg += fmt.Sprintf(" in %v", time.Since(start).Round(time.Millisecond))
				}
				return ArbiterDecision{}, fmt.Errorf("%s: %w", msg, cerr)
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				// e.g. ECONNREFUSED from an ICMP port unreachable: nobody
				// listens (yet); keep trying until the deadline.
				hint = err.Error()
				if w := time.Until(resend); w > 0 {
					select {
					case <-ctx.Done():
					case <-time.After(w):
					}
				}
			}
			if !time.Now().Before(resend) {
				if err := send(); err != nil {
					return ArbiterDecision{}, err
				}
			}
			continue
		}
		r, err := parseArbReply(buf[:n], &c.keys.rep)
		if err != nil || r.Pair != c.keys.pair || !sent[r.Nonce] || r.Requested != epoch {
			continue // not an answer to this call
		}
		switch r.Status {
		case ArbiterCurrent:
			if op != arbOpQuery {
				continue // inconsistent: cannot come from an honest arbiter
			}
			return ArbiterDecision{Epoch: r.Current, Holder: r.Holder}, nil
		case ArbiterGranted:
			if op != arbOpTAS || r.Current != epoch || r.Holder != who {
				continue // inconsistent: cannot come from an honest arbiter
			}
			return ArbiterDecision{Won: true, Epoch: r.Current, Holder: r.Holder}, nil
		case ArbiterRefused:
			if op != arbOpTAS {
				continue
			}
			return ArbiterDecision{Epoch: r.Current, Holder: r.Holder}, nil
		case ArbiterClock:
			c.offset.Store(r.ServerTime - c.opts.Now().UnixNano())
			hint = fmt.Sprintf("our clock is %v off the arbiter's", time.Duration(-c.offset.Load()).Round(time.Millisecond))
			if clockFx++; clockFx <= 3 {
				if err := send(); err != nil {
					return ArbiterDecision{}, err
				}
			}
		default:
			hint = "arbiter says: " + r.Status.String()
		}
	}
}
