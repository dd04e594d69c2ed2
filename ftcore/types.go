package ftcore

import (
	"errors"
	"fmt"
	"io"
	"time"

	"ftbox/ftcore/logwire"
)

// Stop says why Machine.Run returned (the same values as guestvm's).
type Stop uint8

const (
	StopBound  Stop = iota // reached the requested instruction count
	StopOutput             // the guest emitted frames (TakeFrames)
	StopIdle               // the guest waits for an interrupt (NextDeadline)
	StopExit               // the guest ended
)

// Machine is what ftcore needs of the deterministic guest machine
// (*guestvm.Machine through a thin adapter). The contract:
//   - Run executes until the instruction count reaches until, or earlier at
//     an output, at idle (WFI with nothing pending) or at exit.
//   - Inject applies an InputFrame, ClockSync or ConsoleInput exactly at the
//     current instruction count (the entry's ICount must equal ICount());
//     a valid event the guest's device has no room for is dropped by the
//     machine, identically on replay, and is not an error.
//   - TakeFrames returns the frames emitted since the last call, in order;
//     the caller owns them.
//   - Digest is a hash of the whole machine state; Now is guest time (mtime)
//     and NextDeadline the armed timer's guest time.
//   - Save returns a snapshot of the whole machine (the caller owns it);
//     Restore replaces the whole state with one, taken by Save of a machine
//     of the same configuration, after which Digest equals the saved
//     machine's. A Restore that fails leaves the machine unusable.
type Machine interface {
	ICount() uint64
	Run(until uint64) Stop
	Inject(e logwire.Entry) error
	TakeFrames() [][]byte
	Digest() [32]byte
	Now() uint64
	NextDeadline() (uint64, bool)
	Save() []byte
	Restore(snapshot []byte) error
}

// Role is a box's place in the pair.
type Role uint8

const (
	RolePrimary     Role = iota + 1 // runs the guest live and logs its inputs to the backup
	RoleBackup                      // replays the log; its outputs are suppressed
	RoleGoingLive                   // backup that lost its primary: replaying to the end, claiming the next epoch
	RoleUnprotected                 // runs the guest live without a backup
	RoleHalted                      // lost the arbiter (or diverged): does nothing more
)

func (r Role) String() string {
	switch r {
	case RolePrimary:
		return "PRIMARY"
	case RoleBackup:
		return "BACKUP"
	case RoleGoingLive:
		return "GOING_LIVE"
	case RoleUnprotected:
		return "UNPROTECTED"
	case RoleHalted:
		return "HALTED"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// GapBuckets are the upper bounds of Status.PeerGaps.
var GapBuckets = [...]time.Duration{
	time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, 15 * time.Millisecond,
	20 * time.Millisecond, 30 * time.Millisecond, 40 * time.Millisecond, 50 * time.Millisecond, 75 * time.Millisecond,
	100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond, time.Second,
}

func (s *Status) recordGap(d time.Duration) {
	i := 0
	for i < len(GapBuckets) && d > GapBuckets[i] {
		i++
	}
	s.PeerGaps[i]++
	s.PeerGapMax = max(s.PeerGapMax, d)
}

// Errors. Every error ftcore returns wraps one of them.
var (
	ErrConfig   = errors.New("ftcore: bad configuration")
	ErrHalted   = errors.New("ftcore: halted")
	ErrRole     = errors.New("ftcore: not in a role that can do this")
	ErrFrame    = errors.New("ftcore: frame refused")
	ErrProtocol = errors.New("ftcore: peer broke the protocol")
)

// Config tunes a Primary or a Backup. Zero fields take the defaults below.
type Config struct {
	Name  string // this box's name, given to the arbiter
	Epoch uint64 // the epoch both boxes start in (≥ 1)

	Endpoint *logwire.Endpoint // the logging link's endpoint (pre-shared key, MTU)
	Rand     io.Reader         // source of handshake nonces (crypto/rand.Reader in the appliance)

	// Failure detection. A heartbeat goes out every HeartbeatInterval on the
	// logging link (and on the second path if SecondPath is set); a peer from
	// which no authentic frame arrived for Timeout is declared failed. With
	// 10 ms and 90 ms, a crash is detected 80–90 ms after it on a quiet link,
	// and a false detection needs nine heartbeats in a row (plus any data and
	// ack frames in between) lost: 0.1^9 per window at 10 % loss.
	HeartbeatInterval time.Duration // default 10 ms
	Timeout           time.Duration // default 90 ms
	SecondPath        bool          // also emit heartbeats for the LAN path (Outbox.PeerLAN)
	HelloInterval     time.Duration // handshake retry, default 20 ms
	// ConnectTimeout is how long a box that has never heard its peer waits
	// for it before failure detection starts (and a primary or backup
	// claims the next epoch to go on alone: a cold start without a peer).
	// Failure detection never starts before the peer was first heard or
	// this ran out, so a peer started late does not cause a failover.
	// 0 means 10 s; negative waits forever.
	ConnectTimeout time.Duration
	// Join makes a Backup a joiner: it was started while the peer may be
	// live (the arbiter's latest grant is the peer's), so its fresh guest
	// is worth nothing: it must not go live before it received the primary's
	// snapshot and the log up to the primary's InSync mark, and it never
	// claims an epoch for a peer it never heard (see StartRole).
	Join bool
	// MaxSnapshot bounds a snapshot a backup accepts, default 4 GiB.
	MaxSnapshot  uint64
	ArbiterRetry time.Duration // re-ask an arbiter that did not answer, default 50 ms
	// ClaimGrace is how long a backup still counts as alive a primary it
	// hears only claiming the next epoch (its frames carry the claimed
	// epoch: it gave up its backup and waits for the arbiter; see "The
	// second path" in the package documentation). A primary whose claim
	// stays unanswered longer (it cannot reach the arbiter) is declared
	// failed and the backup claims as well. 0 means 1 s; negative waits
	// as long as the primary is heard.
	ClaimGrace time.Duration
	// StartClaim makes a Primary win its epoch (Config.Epoch) from the
	// arbiter before it does anything else: it sends nothing (no hello),
	// runs no guest and only listens until the arbiter granted the epoch.
	// Every primary that starts a fresh guest claims, so that two live
	// primaries never share an epoch and the arbiter's latest grant always
	// names the box whose guest holds the state (see StartRole).
	StartClaim bool
	// ColdStart says the fresh guest replaces state that died with the
	// pair (a double failure): the claim waits ColdStartDelay first, so a
	// surviving peer that holds the state wins the epoch instead (and the
	// box yields to it on hearing it live); winning reports EventColdStart.
	ColdStart      bool
	ColdStartDelay time.Duration // default ClaimGrace + Timeout

	// Channel.
	RTOInitial time.Duration // first retransmission timeout, default 4 ms
	// RTOMax caps the backoff; default Timeout/4 (at most 32 ms): the
	// primary gives its backup up once the oldest unacknowledged entry
	// waited 2×Timeout, so that window must hold several retransmissions,
	// not four (4+8+16+32 ms) that 10 % loss each way defeats once in a
	// thousand losses at a 30 ms timeout.
	RTOMax           time.Duration
	RecvWindow       uint64 // out-of-order entries the receiver buffers, default 8192
	MaxUnackedEntry  uint64 // flow control: unacknowledged entries, default 4096
	MaxUnackedBytes  int    // flow control: unacknowledged encoded bytes, default 1 MiB
	MaxLagInstr      uint64 // flow control: primary icount − backup applied icount, default 200 M
	RetransmitFrames int    // frames resent per timeout, default 16

	// Guest.
	Slice          uint64        // instructions per Step at most, default 2 M
	TickDuration   time.Duration // host time per guest mtime tick, default 100 ns (10 MHz)
	ClockInterval  time.Duration // clock sync period while running, default 5 ms
	DigestInterval time.Duration // state digest period (0: default 1 s; <0: never)
	MaxHeldOutputs int           // backup: buffered outputs beyond the watermark, default 4096
	MaxQueuedInput int           // LAN frames waiting for injection, default 1024
}

func (c Config) withDefaults() (Config, error) {
	d := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	d(&c.HeartbeatInterval, 10*time.Millisecond)
	d(&c.Timeout, 90*time.Millisecond)
	d(&c.HelloInterval, 20*time.Millisecond)
	d(&c.ArbiterRetry, 50*time.Millisecond)
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.ClaimGrace == 0 {
		c.ClaimGrace = time.Second
	}
	if c.ColdStartDelay <= 0 {
		c.ColdStartDelay = max(c.ClaimGrace, 0) + c.Timeout
	}
	if c.MaxSnapshot == 0 {
		c.MaxSnapshot = 4 << 30
	}
	d(&c.RTOInitial, 4*time.Millisecond)
	d(&c.RTOMax, max(min(32*time.Millisecond, c.Timeout/4), c.RTOInitial))
	d(&c.TickDuration, 100*time.Nanosecond)
	d(&c.ClockInterval, 5*time.Millisecond)
	if c.DigestInterval == 0 {
		c.DigestInterval = time.Second
	}
	u := func(v *uint64, def uint64) {
		if *v == 0 {
			*v = def
		}
	}
	u(&c.RecvWindow, 8192)
	u(&c.MaxUnackedEntry, 4096)
	u(&c.MaxLagInstr, 200_000_000)
	u(&c.Slice, 2_000_000)
	i := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	i(&c.MaxUnackedBytes, 1<<20)
	i(&c.RetransmitFrames, 16)
	i(&c.MaxHeldOutputs, 4096)
	i(&c.MaxQueuedInput, 1024)
	switch {
	case c.Endpoint == nil:
		return c, fmt.Errorf("config: no logging-link endpoint: %w", ErrConfig)
	case c.Rand == nil:
		return c, fmt.Errorf("config: no randomness for nonces: %w", ErrConfig)
	case c.Epoch == 0:
		return c, fmt.Errorf("config: epoch 0: %w", ErrConfig)
	case c.Timeout <= c.HeartbeatInterval:
		return c, fmt.Errorf("config: timeout %v not above the heartbeat interval %v: %w", c.Timeout, c.HeartbeatInterval, ErrConfig)
	case c.MaxUnackedEntry > c.RecvWindow:
		return c, fmt.Errorf("config: %d unacked entries exceed the receive window %d: %w", c.MaxUnackedEntry, c.RecvWindow, ErrConfig)
	}
	return c, nil
}

// EventKind names something the appliance may want to act on.
type EventKind uint8

const (
	EventRoleChanged EventKind = iota + 1 // Role/Epoch hold the new values
	EventPeerLost                         // the peer was silent for Timeout
	EventAnnounce                         // went live: announce the guest's MAC now (gratuitous ARP)
	EventDivergence                       // digests differ at ICount (Local, Remote)
	EventGuestExit                        // the guest ended
	EventYield                            // a fresh primary heard a live primary of Epoch: restart as its backup (Join) in that epoch
	EventSynced                           // state transfer done: the pair is protected again
	// EventColdStart: the guest started from blank in a new epoch (Epoch)
	// although the pair had served before: its state was lost in a double
	// failure. A primary reports it when it wins a ColdStart claim; a
	// joining backup when its primary's log starts from instruction 0.
	EventColdStart
	// EventRival: a primary of this box's own epoch is live on the
	// logging link (two grants of one epoch: an arbiter that lost its
	// state). The box holds its output and asks the arbiter whether it
	// holds the epoch; it halts if not (Role HALTED follows).
	EventRival
)

func (k EventKind) String() string {
	names := [...]string{"?", "role_changed", "peer_lost", "announce", "divergence", "guest_exit", "yield", "synced", "cold_start", "rival"}
	if int(k) >= len(names) {
		return "?"
	}
	return names[k]
}

// Event is a notable happening, reported through the outbox.
type Event struct {
	Kind          EventKind
	At            time.Duration
	Role          Role
	Epoch         uint64
	ICount        uint64
	Local, Remote [32]byte
}

// Start is how a starting box joins its pair (StartRole).
type Start struct {
	Role  Role
	Epoch uint64
	Join  bool // a joining backup (Config.Join)
	Claim bool // a primary that must win Epoch first (Config.StartClaim)
	Cold  bool // the guest's state died with the pair (Config.ColdStart)
}

// StartRole says how a starting box joins its pair, from what the arbiter
// answered to the current-epoch query (latest granted epoch and its
// holder; 0 and "" if nothing was ever granted):
//   - nothing granted: a new pair. The configured primary (preferPrimary)
//     claims epoch 1; the other box is its backup in epoch 1, a cold pair
//     (both guests fresh, the log from instruction 0).
//   - the latest grant is this box's (name): it was the last live box and
//     its guest died with it (else the peer would hold a later grant). It
//     starts a fresh guest as primary and claims latest+1 (a cold start:
//     the state is lost), after a delay in which a surviving peer that
//     holds the state would win that epoch first.
//   - the latest grant is the peer's: the peer may be live, serving
//     unprotected. This box starts as a joining backup (Config.Join) in
//     that epoch: it waits for the peer's hello and takes its snapshot,
//     and never preempts it.
func StartRole(name string, preferPrimary bool, latest uint64, holder string) Start {
	switch {
	case latest == 0 || holder == "":
		if preferPrimary {
			return Start{Role: RolePrimary, Epoch: latest + 1, Claim: true}
		}
		return Start{Role: RoleBackup, Epoch: max(latest, 1)}
	case holder == name:
		return Start{Role: RolePrimary, Epoch: latest + 1, Claim: true, Cold: true}
	}
	return Start{Role: RoleBackup, Epoch: latest, Join: true}
}

// ArbiterRequest asks the arbiter for an atomic test-and-set: grant Epoch to
// Who if no one holds it yet (see Arbiter). Feed the answer to
// OnArbiterReply.
type ArbiterRequest struct {
	Epoch uint64
	Who   string
}

// Outbox is what a box has to send. The caller owns the slices.
type Outbox struct {
	LAN     [][]byte         // guest output frames to release to the LAN, in order
	Log     [][]byte         // logwire frames for the logging link
	PeerLAN [][]byte         // logwire heartbeat frames for the second path (SecondPath)
	Replica [][]byte         // backup: its guest's suppressed outputs (for the gated tap)
	Arbiter []ArbiterRequest // test-and-set requests to make
	Events  []Event
}

func (o *Outbox) take() Outbox {
	r := *o
	*o = Outbox{}
	return r
}

func (o *Outbox) merge(x Outbox) {
	o.LAN = append(o.LAN, x.LAN...)
	o.Log = append(o.Log, x.Log...)
	o.PeerLAN = append(o.PeerLAN, x.PeerLAN...)
	o.Replica = append(o.Replica, x.Replica...)
	o.Arbiter = append(o.Arbiter, x.Arbiter...)
	o.Events = append(o.Events, x.Events...)
}

// Status is every counter and gauge a status page shows. Times are on the
// caller's monotonic clock; zero means never.
type Status struct {
	Role  Role
	Epoch uint64

	ICount        uint64 // the guest's instruction count
	PeerICount    uint64 // the other side's, from its last heartbeat or ack
	LogAppended   uint64 // primary: stream position of the last entry appended
	LogSent       uint64 // primary: highest position transmitted
	LogAcked      uint64 // primary: cumulative ack from the backup
	LogDelivered  uint64 // backup: highest position received in order
	LogApplied    uint64 // backup: entries applied by replay
	LagEntries    uint64 // primary: appended − acked; backup: delivered − applied
	LagInstr      uint64 // primary icount − backup applied icount
	LogEntryBytes uint64 // encoded bytes of entries appended
	InputBytes    uint64 // bytes of LAN frames injected

	OutputsProduced uint64
	OutputsReleased uint64        // primary: the watermark; backup: released at go-live
	Watermark       uint64        // primary: outputs released; backup: the last watermark it applied
	GoLiveFirst     uint64        // backup: number of the first output released at go-live (0: none)
	OutputsHeld     int           // waiting for an ack (primary) or beyond the watermark (backup)
	OldestHeld      time.Duration // when the oldest held output was produced
	OldestUnacked   time.Duration // primary: when the oldest unacknowledged log entry was sent (0: none); at 2×Timeout the backup is given up
	OutputsDropped  uint64        // backup: held outputs dropped for a full buffer
	InputsDropped   uint64        // input frames not logged (queue full, or a size the guest NIC cannot take) or dropped by the guest's device

	FramesSent, FramesReceived uint64
	BytesSent                  uint64
	Retransmits                uint64 // frames resent on a timeout
	FastRetransmits            uint64 // frames resent on duplicate acks
	Duplicates                 uint64 // stream entries received twice
	OutOfOrder                 uint64 // stream entries buffered ahead of a gap
	Verdicts                   [logwire.NumVerdicts]uint64
	FlowStalls                 uint64 // times the guest was held back by flow control
	ProtocolErrors             uint64

	DigestsSent, DigestsCompared, DigestMismatches uint64

	RoleChanges, EpochChanges uint64
	PeerLastHeard             time.Duration
	FailureDetected           time.Duration // when the peer was declared failed
	WentLive                  time.Duration // backup: when it released and announced
	ArbiterRequests           uint64

	// State transfer (rejoin). Syncing: a primary is sending its snapshot
	// (or waiting for the ack of its InSync mark); a backup is receiving
	// one, or has not yet received the InSync mark.
	Syncing        bool
	SyncBytes      uint64        // snapshot bytes sent (primary) or received (backup) in the current transfer
	SyncTotal      uint64        // the snapshot's size (0: none)
	SyncICount     uint64        // instruction count of the snapshot
	SyncStarted    time.Duration // when the current transfer started
	SyncDone       time.Duration // when the last transfer completed (the pair protected again)
	SyncTransfers  uint64        // transfers started
	SyncAborts     uint64        // transfers abandoned because the peer fell silent
	SnapshotBytes  uint64        // size of the last snapshot taken or restored
	PeerEpochHeard uint64        // the highest epoch a peer's authentic hello carried

	// Gaps between consecutive authentic frames from the peer (either
	// path), counted in GapBuckets: what failure detection sees, the
	// distribution a heartbeat timeout must sit above.
	PeerGaps   [len(GapBuckets) + 1]uint64 // PeerGaps[i]: gaps ≤ GapBuckets[i]; the last: longer
	PeerGapMax time.Duration

	// Epoch fencing (see "Epochs and fencing" in the package documentation).
	LivePeerEpoch uint64        // the highest epoch in which the peer was heard live (a primary's hello) or granted by the arbiter
	PeerHelloAt   time.Duration // when the peer last said hello as a primary (either path; 0: never): it is live
	Rivals        uint64        // times a primary of this box's own epoch was heard (two grants of one epoch)
	Proving       bool          // holding output until the arbiter says whether this box holds its epoch
}
