package ftcore

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"ftbox/ftcore/logwire"
)

// Backup replays the primary's log on its own copy of the guest: it runs the
// guest up to each entry's instruction count (never past the last count the
// log reached) and injects the entry there, acknowledges the log it holds,
// keeps its guest's outputs beyond the primary's released-output watermark,
// compares digests, and goes live when the primary falls silent. It is not
// safe for concurrent use.
type Backup struct {
	cfg   Config
	m     Machine
	ch    *channel
	st    Status
	ob    Outbox
	role  Role
	epoch uint64
	now   time.Duration

	started   bool
	startedAt time.Duration

	log       []logwire.Entry // delivered entries; log[next:] not yet applied
	next      int
	primaryIC uint64 // the furthest icount the log or a heartbeat reached

	outN     uint64 // outputs produced by the replica
	wm       uint64 // the primary's released-output watermark
	buf      []heldOut
	diverged bool
	alarm    *logwire.DivergenceAlarm
	exited   bool
	idle     bool // the guest's last Run stopped idle at the current count (no event since)

	claimEpoch uint64
	claimAt    time.Duration
	claimWon   bool
	// primaryClaim: when the primary was first heard claiming the next
	// epoch (its frames carry an epoch above ours; 0: not heard so).
	primaryClaim time.Duration
	pendingLAN   [][]byte
	live         *Primary

	// State transfer (see the package documentation, "Rejoining").
	mustSync bool   // may not go live: no InSync mark (or cold log) received since the last sync started
	fresh    bool   // the machine was never run or restored: a log from instruction 0 fits it
	started2 bool   // the current session's stream has delivered an entry
	snap     []byte // snapshot being received (nil: none)
	snapHdr  logwire.Snapshot
	snapDone bool // snap is complete and waits for Restore in replay
	snapSeen bool // the current session's stream began with a snapshot

	fenceEpoch uint64        // the peer is live in (or was granted) this epoch
	lastTick   time.Duration // when the owner last called in (a longer gap: this box was frozen)
	quietUntil time.Duration // after a freeze: no claim before this
}

// NewBackup returns the backup of a pair in epoch cfg.Epoch, replaying onto
// m (freshly loaded with the same image as the primary's).
func NewBackup(cfg Config, m Machine) (*Backup, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("new backup: %w", err)
	}
	if m == nil {
		return nil, fmt.Errorf("new backup: no machine: %w", ErrConfig)
	}
	b := &Backup{cfg: cfg, m: m, role: RoleBackup, epoch: cfg.Epoch, mustSync: cfg.Join, fresh: true}
	b.ch = newChannel(&b.cfg, &b.st, logwire.RoleBackup, b.epoch)
	return b, nil
}

// abortSync forgets a session that fell silent before this backup could
// take over (a transfer in progress, or a joiner that never got its first
// log): it waits for a primary's hello again. The guest is not touched; the
// next primary must send a snapshot (a log from 0 fits only a fresh guest).
func (b *Backup) abortSync(now time.Duration) {
	b.st.SyncAborts++
	b.ch = newChannel(&b.cfg, &b.st, logwire.RoleBackup, b.epoch)
	b.primaryClaim = 0
	b.log, b.next, b.primaryIC = nil, 0, 0
	b.snap, b.snapDone, b.started2, b.snapSeen = nil, false, false, false
	b.mustSync = true
	b.st.SyncBytes, b.st.SyncTotal, b.st.SyncICount = 0, 0, 0 // no stale progress in status
	b.ob.Events = append(b.ob.Events, Event{Kind: EventPeerLost, At: now, Role: b.role, Epoch: b.epoch, ICount: b.m.ICount()})
}

// onStream takes the entries the channel delivered in order.
func (b *Backup) onStream(now time.Duration, stream []logwire.Entry) error {
	for _, e := range stream {
		first := !b.started2
		b.started2 = true
		switch e := e.(type) {
		case logwire.Snapshot:
			if err := b.onSnapshot(now, e, first); err != nil {
				b.st.ProtocolErrors++
				return err
			}
			continue
		case logwire.InSync:
			if !b.snapSeen {
				b.st.ProtocolErrors++
				return fmt.Errorf("in-sync mark without a snapshot: %w", ErrProtocol)
			}
			if b.snap != nil && !b.snapDone {
				b.st.ProtocolErrors++
				return fmt.Errorf("in-sync mark before the snapshot's end: %w", ErrProtocol)
			}
			b.mustSync = false // the log we hold covers every released output
		default:
			if first && b.snap == nil {
				// A cold pair: the primary's log runs from instruction 0
				// and it released nothing unprotected.
				if !b.fresh {
					b.st.ProtocolErrors++
					return fmt.Errorf("log from instruction 0 for a guest that already ran: %w", ErrProtocol)
				}
				b.mustSync = false
				if b.cfg.Join && b.epoch > b.cfg.Epoch {
					// We joined a peer that held the state (its grant was
					// the latest); it came back in a later epoch with a
					// fresh guest: the state died in a double failure.
					b.ob.Events = append(b.ob.Events, Event{Kind: EventColdStart, At: now, Role: b.role, Epoch: b.epoch, ICount: 0})
				}
			}
			// Log after a snapshot's count is kept until it is restored.
		}
		b.log = append(b.log, e)
		if ic, ok := icountOf(e); ok {
			b.primaryIC = max(b.primaryIC, ic)
		}
	}
	return nil
}

func (b *Backup) onSnapshot(now time.Duration, e logwire.Snapshot, first bool) error {
	if b.snap == nil {
		switch {
		case !first || e.Offset != 0:
			return fmt.Errorf("snapshot piece at %d not at the stream's start: %w", e.Offset, ErrProtocol)
		case e.Total > b.cfg.MaxSnapshot:
			return fmt.Errorf("snapshot of %d bytes, limit %d: %w", e.Total, b.cfg.MaxSnapshot, ErrProtocol)
		}
		b.snapHdr, b.snapSeen = e, true
		b.snap = make([]byte, 0, min(e.Total, 64<<20))
		b.snapDone, b.mustSync = false, true
		b.st.SyncTransfers++
		b.st.SyncStarted, b.st.SyncDone = now, 0
		b.st.SyncTotal, b.st.SyncICount = e.Total, e.ICount
	}
	h := b.snapHdr
	if b.snapDone || e.ICount != h.ICount || e.Outputs != h.Outputs || e.Total != h.Total || e.Sum != h.Sum || e.Offset != uint64(len(b.snap)) {
		return fmt.Errorf("snapshot piece [%d,+%d) of %d at %d does not continue [0,%d) of %d at %d: %w",
			e.Offset, len(e.Data), e.Total, e.ICount, len(b.snap), h.Total, h.ICount, ErrProtocol)
	}
	b.snap = append(b.snap, e.Data...)
	b.st.SyncBytes = uint64(len(b.snap))
	b.primaryIC = max(b.primaryIC, e.ICount)
	if uint64(len(b.snap)) == h.Total {
		b.snapDone = true
	}
	return nil
}

// restore installs a complete snapshot and checks the digest sent with it.
func (b *Backup) restore(now time.Duration) error {
	h, snap := b.snapHdr, b.snap
	b.snap, b.snapDone = nil, false
	b.st.SnapshotBytes = uint64(len(snap))
	if err := b.m.Restore(snap); err != nil {
		b.diverge(now, h.ICount, [32]byte{}, h.Sum)
		return fmt.Errorf("state transfer: restore: %w: %w", ErrProtocol, err)
	}
	b.fresh = false
	if local := b.m.Digest(); local != h.Sum || b.m.ICount() != h.ICount {
		b.diverge(now, h.ICount, local, h.Sum)
		return fmt.Errorf("state transfer: restored machine at %d differs from the primary's at %d: %w", b.m.ICount(), h.ICount, ErrProtocol)
	}
	b.outN, b.wm, b.buf = h.Outputs, h.Outputs, nil
	b.idle = false
	b.st.DigestsCompared++
	return nil
}

// snapPending: a snapshot is arriving; nothing can be replayed before it is whole.
func (b *Backup) snapPending() bool { return b.snap != nil && !b.snapDone }

// Role returns the current role; Epoch the current epoch.
func (b *Backup) Role() Role {
	if b.live != nil {
		return b.live.role
	}
	return b.role
}

// Epoch returns the current epoch.
func (b *Backup) Epoch() uint64 {
	if b.live != nil {
		return b.live.epoch
	}
	return b.epoch
}

// Machine returns the guest.
func (b *Backup) Machine() Machine { return b.m }

// Diverged reports whether a digest comparison or the replay itself showed
// that the replica no longer follows the primary.
func (b *Backup) Diverged() bool { return b.diverged }

func (b *Backup) tick(now time.Duration) {
	if b.lastTick != 0 && now-b.lastTick > b.cfg.Timeout {
		// Frozen past the timeout (see Primary.tick): hear a primary
		// that went live meanwhile before claiming.
		b.quietUntil = now + 2*b.cfg.HelloInterval
	}
	b.lastTick = max(b.lastTick, now)
	if now > b.now {
		b.now = now
	}
	if !b.started {
		b.started, b.startedAt = true, now
	}
}

func (b *Backup) setRole(now time.Duration, r Role) {
	if r == b.role {
		return
	}
	b.role = r
	b.st.RoleChanges++
	b.ob.Events = append(b.ob.Events, Event{Kind: EventRoleChanged, At: now, Role: r, Epoch: b.epoch, ICount: b.m.ICount()})
}

// OnLANFrame takes a frame for the guest from the LAN. Until the backup is
// live the primary's copy is the one that counts: it is dropped (or kept, a
// few, while going live, and injected once live).
func (b *Backup) OnLANFrame(now time.Duration, frame []byte) error {
	b.tick(now)
	switch {
	case b.live != nil:
		return b.live.OnLANFrame(now, frame)
	case b.role == RoleGoingLive && len(b.pendingLAN) < b.cfg.MaxQueuedInput:
		b.pendingLAN = append(b.pendingLAN, append([]byte(nil), frame...))
	case b.role == RoleHalted:
		return fmt.Errorf("LAN frame: %w", ErrHalted)
	}
	return nil
}

// OnLogFrame takes a frame from the logging link. Once the backup has
// declared the primary failed it accepts nothing more: it must not
// acknowledge log it will not replay.
func (b *Backup) OnLogFrame(now time.Duration, frame []byte) error {
	return b.onFrame(now, frame, false)
}

// OnPeerLANFrame takes a frame the primary sent over the second path (its
// Outbox.PeerLAN). The backup declares the primary failed only when both
// paths were silent for Timeout: a primary heard on the LAN is alive, and
// taking over from it would be a needless failover (and, were the arbiter
// not there, a split brain). See the package documentation.
func (b *Backup) OnPeerLANFrame(now time.Duration, frame []byte) error {
	return b.onFrame(now, frame, true)
}

func (b *Backup) onFrame(now time.Duration, frame []byte, second bool) error {
	b.tick(now)
	if b.live != nil {
		return b.live.onFrame(now, frame, second) // a new backup may join us
	}
	if b.role == RoleGoingLive || (second && isHello(frame) && b.role == RoleBackup) {
		// We stopped listening to the primary, but not to a primary that
		// says it is live (fence).
		b.ch.noteHello(now, frame)
		b.fence(now)
		return nil
	}
	if b.role != RoleBackup {
		return nil
	}
	defer b.fence(now)
	ctl, stream, err := b.ch.receive(now, frame, second)
	if b.ch.epoch > b.epoch {
		b.epoch = b.ch.epoch // a primary of a later epoch took us on
	}
	if b.ch.peerEpoch > b.epoch && b.primaryClaim == 0 {
		// The primary gave up on us and claims the next epoch: alive,
		// but not serving (see failAt).
		b.primaryClaim = max(now, 1)
	}
	if serr := b.onStream(now, stream); serr != nil {
		b.diverge(now, b.m.ICount(), [32]byte{}, [32]byte{})
		return fmt.Errorf("backup: %w", serr)
	}
	for _, e := range ctl {
		if hb, ok := e.(logwire.Heartbeat); ok {
			b.st.PeerICount = hb.ICount
		}
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	b.st.PeerLastHeard = now
	return nil
}

// OnArbiterReply feeds the arbiter's answer to an ArbiterRequest.
func (b *Backup) OnArbiterReply(now time.Duration, epoch uint64, won bool, err error) error {
	b.tick(now)
	if b.live != nil {
		return b.live.OnArbiterReply(now, epoch, won, err)
	}
	if b.claimEpoch == 0 || epoch != b.claimEpoch || b.claimWon {
		return nil
	}
	if err != nil {
		b.claimAt = now + b.cfg.ArbiterRetry
		return nil
	}
	if !won || b.fenceEpoch >= b.claimEpoch || b.ch.livePeer >= b.claimEpoch {
		// Lost; or granted while the peer was heard live in that epoch
		// (an arbiter that lost its state grants twice): never go live
		// beside it.
		if b.fence(now); b.role != RoleHalted {
			b.claimEpoch = 0
			b.setRole(now, RoleHalted)
		}
		return nil
	}
	b.claimWon = true
	return b.maybePromote(now)
}

// OnArbiterCurrent feeds an answer to the read-only current-epoch query
// (see Primary.OnArbiterCurrent): a later epoch granted to the peer
// supersedes this backup (it yields: the owner rejoins it as the peer's
// backup in that epoch).
func (b *Backup) OnArbiterCurrent(now time.Duration, epoch uint64, holder string) {
	b.tick(now)
	if b.live != nil {
		b.live.OnArbiterCurrent(now, epoch, holder)
		return
	}
	if holder != "" && holder != b.cfg.Name {
		b.fenceEpoch = max(b.fenceEpoch, epoch)
	}
	b.fence(now)
}

// fence yields when the peer is live in (or was granted) an epoch that
// leaves this backup nothing to do: the one it claims, or, while it follows
// a primary of its own epoch on a confirmed session, a later one (the
// primary gave it up and went on alone). A waiting backup simply follows
// the next primary's hello instead.
func (b *Backup) fence(now time.Duration) {
	lp := max(b.fenceEpoch, b.ch.livePeer)
	b.st.LivePeerEpoch = max(b.st.LivePeerEpoch, lp)
	switch {
	case b.live != nil || b.role == RoleHalted:
		return
	case b.role == RoleGoingLive && b.claimEpoch != 0 && lp >= b.claimEpoch,
		b.role == RoleBackup && lp > b.epoch && (b.ch.confirmed() || b.fenceEpoch > b.epoch):
		b.claimEpoch = 0
		b.ob.Events = append(b.ob.Events, Event{Kind: EventYield, At: now, Role: b.role, Epoch: lp, ICount: b.m.ICount()})
		b.setRole(now, RoleHalted)
	}
}

// failAt is when the primary counts as failed if nothing more arrives:
// Timeout after the last authentic frame on either path; before the first
// one, ConnectTimeout after the start (0: never, with a negative
// ConnectTimeout or for a joiner, which must never claim an epoch for a
// peer it never heard).
//
// A primary heard claiming the next epoch (it lost us and waits for the
// arbiter; it goes on sending heartbeats meanwhile) is alive: it will serve
// once it won, and falls silent then. But it serves nothing while it
// waits, so it counts as alive for at most ClaimGrace from the first such
// frame: one that cannot reach the arbiter must not keep us from claiming
// (and the guest from being served by us, if we can reach it).
func (b *Backup) failAt() time.Duration {
	switch {
	case b.ch.heard:
		d := b.ch.lastRx + b.cfg.Timeout
		if b.primaryClaim != 0 && b.cfg.ClaimGrace > 0 {
			d = min(d, b.primaryClaim+b.cfg.ClaimGrace)
		}
		return d
	case b.cfg.ConnectTimeout < 0 || b.mustSync:
		return 0
	}
	return b.startedAt + b.cfg.ConnectTimeout
}

// Step does whatever is due: failure detection, replay of at most one slice
// of instructions, heartbeats, and the go-live sequence.
func (b *Backup) Step(now time.Duration) error {
	b.tick(now)
	if b.live != nil {
		return b.live.Step(now)
	}
	if b.fence(now); b.role == RoleHalted {
		return nil
	}
	var errs []error
	if fa := b.failAt(); b.role == RoleBackup && fa != 0 && now > fa && b.mustSync {
		b.abortSync(now) // no state to take over with: wait for a primary again
	} else if b.role == RoleBackup && fa != 0 && now > fa {
		b.st.FailureDetected = now
		b.ob.Events = append(b.ob.Events, Event{Kind: EventPeerLost, At: now, Role: b.role, Epoch: b.epoch, ICount: b.m.ICount()})
		if b.diverged {
			b.setRole(now, RoleHalted) // a diverged replica must not take over
			return nil
		}
		b.setRole(now, RoleGoingLive)
		b.claimEpoch, b.claimAt = b.epoch+1, max(now, b.quietUntil)
	}
	if b.role == RoleGoingLive && !b.claimWon && now >= b.claimAt {
		b.ob.Arbiter = append(b.ob.Arbiter, ArbiterRequest{Epoch: b.claimEpoch, Who: b.cfg.Name})
		b.st.ArbiterRequests++
		b.claimAt = now + b.cfg.ArbiterRetry
	}
	if err := b.replay(now, b.cfg.Slice); err != nil {
		errs = append(errs, err)
	}
	if b.role == RoleBackup {
		var extra []logwire.Entry
		if b.alarm != nil {
			extra = append(extra, *b.alarm)
		}
		if err := b.ch.heartbeat(now, b.m.ICount(), extra...); err != nil {
			errs = append(errs, err)
		}
	}
	if err := b.maybePromote(now); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (b *Backup) replayDone() bool {
	return (b.next >= len(b.log) && b.snap == nil) || b.diverged || b.exited
}

// canReplay: replay has something to do now.
func (b *Backup) canReplay() bool {
	return !b.diverged && !b.exited && !b.snapPending() && (b.snapDone || b.next < len(b.log))
}

// maybePromote finishes going live once the log is replayed to its end and
// the arbiter granted the next epoch: release the buffered outputs beyond
// the watermark, announce, and run live.
func (b *Backup) maybePromote(now time.Duration) error {
	if b.role != RoleGoingLive || !b.claimWon || !b.replayDone() || b.live != nil {
		return nil
	}
	for _, h := range b.buf {
		if b.st.GoLiveFirst == 0 {
			b.st.GoLiveFirst = h.n
		}
		b.ob.LAN = append(b.ob.LAN, h.frame)
		b.st.OutputsReleased++
	}
	if b.st.GoLiveFirst == 0 {
		b.st.GoLiveFirst = b.outN + 1 // nothing buffered: the next output is the first
	}
	b.buf = nil
	b.epoch = b.claimEpoch
	b.st.EpochChanges++
	b.st.WentLive = now
	b.ob.Events = append(b.ob.Events, Event{Kind: EventAnnounce, At: now, Role: RoleUnprotected, Epoch: b.epoch, ICount: b.m.ICount()})
	b.setRole(now, RoleUnprotected)
	b.live = newLive(b.cfg, b.m, b.epoch, now, b.outN)
	b.live.exited = b.exited
	if b.idle {
		b.live.setIdle(now) // woken by a clock sync or an input, as on the old primary
	}
	var errs []error
	for _, f := range b.pendingLAN {
		errs = append(errs, b.live.OnLANFrame(now, f))
	}
	b.pendingLAN = nil
	return errors.Join(errs...)
}

func (b *Backup) diverge(now time.Duration, ic uint64, local, remote [32]byte) {
	b.diverged = true
	b.st.DigestMismatches++
	b.alarm = &logwire.DivergenceAlarm{ICount: ic, Local: local, Remote: remote}
	b.ob.Events = append(b.ob.Events, Event{Kind: EventDivergence, At: now, Role: b.role, Epoch: b.epoch, ICount: ic, Local: local, Remote: remote})
}

// replay applies log entries in order, running the guest up to each one's
// instruction count first, for at most budget instructions.
func (b *Backup) replay(now time.Duration, budget uint64) error {
	if b.snapPending() || b.diverged {
		return nil
	}
	if b.snapDone {
		if err := b.restore(now); err != nil {
			return err
		}
	}
	for b.next < len(b.log) && !b.diverged && !b.exited {
		e := b.log[b.next]
		if ic, ok := icountOf(e); ok {
			cur := b.m.ICount()
			if cur > ic {
				b.diverge(now, ic, [32]byte{}, [32]byte{})
				return fmt.Errorf("replay: entry %v at %d, guest already at %d: %w", e.Type(), ic, cur, ErrProtocol)
			}
			if cur < ic {
				if budget == 0 {
					break
				}
				why := b.m.Run(min(ic, cur+budget))
				b.idle = why == StopIdle
				budget -= min(budget, b.m.ICount()-cur)
				if fs := b.m.TakeFrames(); len(fs) > 0 {
					b.outputs(now, fs)
				}
				if (why == StopIdle || why == StopExit) && b.m.ICount() < ic {
					if why == StopExit {
						b.exited = true
					}
					b.diverge(now, b.m.ICount(), [32]byte{}, [32]byte{})
					return fmt.Errorf("replay: guest stopped (%d) at %d before the entry at %d", why, b.m.ICount(), ic)
				}
				continue
			}
		}
		b.apply(now, e)
		if _, ok := e.(logwire.Progress); !ok && e.Type() != logwire.TypeReleasedOutput && e.Type() != logwire.TypeDigest && e.Type() != logwire.TypeInSync {
			b.idle = false // an event was injected: the guest may run again
		}
		b.next++
		b.st.LogApplied++
	}
	if b.next > 4096 && 2*b.next > len(b.log) {
		b.log = slices.Clone(b.log[b.next:])
		b.next = 0
	}
	return nil
}

func (b *Backup) apply(now time.Duration, e logwire.Entry) {
	switch e := e.(type) {
	case logwire.InputFrame, logwire.ConsoleInput, logwire.ClockSync:
		if err := b.m.Inject(e); err != nil {
			b.st.InputsDropped++ // refused identically on the primary
		}
	case logwire.ReleasedOutput:
		if e.Watermark > b.wm {
			b.wm = e.Watermark
			i := 0
			for i < len(b.buf) && b.buf[i].n <= b.wm {
				i++
			}
			clear(b.buf[:i])
			b.buf = b.buf[i:]
		}
	case logwire.InSync:
		b.st.SyncDone = now
		b.ob.Events = append(b.ob.Events, Event{Kind: EventSynced, At: now, Role: b.role, Epoch: b.epoch, ICount: e.ICount})
	case logwire.Digest:
		b.st.DigestsCompared++
		if local := b.m.Digest(); local != e.Sum {
			b.diverge(now, e.ICount, local, e.Sum)
		}
	}
}

func (b *Backup) outputs(now time.Duration, frames [][]byte) {
	for _, f := range frames {
		b.outN++
		b.st.OutputsProduced++
		b.ob.Replica = append(b.ob.Replica, f)
		if b.outN <= b.wm {
			continue
		}
		if len(b.buf) >= b.cfg.MaxHeldOutputs {
			b.buf = b.buf[1:]
			b.st.OutputsDropped++
		}
		b.buf = append(b.buf, heldOut{n: b.outN, at: now, frame: f})
	}
}

// Deadline is when Step must run next at the latest (see Primary.Deadline).
func (b *Backup) Deadline() time.Duration {
	if b.live != nil {
		return b.live.Deadline()
	}
	if b.role == RoleHalted {
		return 0
	}
	if !b.started {
		return max(b.now, 1) // the first Step is due
	}
	if b.canReplay() {
		return b.now
	}
	switch b.role {
	case RoleGoingLive:
		if b.claimWon {
			return b.now
		}
		return b.claimAt
	}
	d := b.ch.hbAt
	if b.ch.sess == nil {
		d = 0
	}
	if fa := b.failAt(); fa != 0 {
		d = minDeadline(d, fa+1)
	}
	return d
}

// Outbox returns and clears what the backup has to send. A pending
// acknowledgement goes out here, one per call however many frames arrived.
func (b *Backup) Outbox() Outbox {
	if b.role == RoleBackup && b.ch.ackDue {
		b.ch.ackDue = false
		_ = b.ch.control(false, logwire.Ack{Seq: b.ch.delivered, ICount: b.m.ICount()})
	}
	b.ch.takeOut(&b.ob)
	ob := b.ob.take()
	if b.live != nil {
		ob.merge(b.live.Outbox())
	}
	return ob
}

// Status returns the counters and gauges.
func (b *Backup) Status() Status {
	s := b.st
	s.Role, s.Epoch, s.ICount = b.Role(), b.Epoch(), b.m.ICount()
	s.LogDelivered = b.ch.delivered
	s.Watermark = b.wm
	s.LagEntries = uint64(len(b.log) - b.next)
	if b.primaryIC > s.ICount {
		s.LagInstr = b.primaryIC - s.ICount
	}
	s.OutputsHeld = len(b.buf)
	if len(b.buf) > 0 {
		s.OldestHeld = b.buf[0].at
	}
	s.Verdicts = b.ch.verdicts()
	s.Syncing = b.mustSync && b.role == RoleBackup
	if b.live != nil {
		l := b.live.Status()
		s.OutputsProduced += l.OutputsProduced
		s.OutputsReleased += l.OutputsReleased - b.outN
		s.OutputsHeld = l.OutputsHeld
		s.OldestHeld = l.OldestHeld
		s.OldestUnacked = l.OldestUnacked
		s.InputBytes += l.InputBytes
		// The live primary's own backup, if one joined.
		s.LogAppended, s.LogSent, s.LogAcked, s.LagEntries, s.LagInstr = l.LogAppended, l.LogSent, l.LogAcked, l.LagEntries, l.LagInstr
		s.LogDelivered = 0
		s.FramesSent += l.FramesSent
		s.FramesReceived += l.FramesReceived
		s.BytesSent += l.BytesSent
		s.Retransmits += l.Retransmits
		s.FastRetransmits += l.FastRetransmits
		s.Duplicates += l.Duplicates
		s.OutOfOrder += l.OutOfOrder
		s.FlowStalls += l.FlowStalls
		s.ProtocolErrors += l.ProtocolErrors
		s.DigestsSent += l.DigestsSent
		s.LogEntryBytes += l.LogEntryBytes
		s.RoleChanges += l.RoleChanges
		s.EpochChanges += l.EpochChanges
		s.ArbiterRequests += l.ArbiterRequests
		s.Syncing, s.SyncBytes, s.SyncTotal, s.SyncICount = l.Syncing, l.SyncBytes, l.SyncTotal, l.SyncICount
		s.SyncStarted, s.SyncDone, s.SyncTransfers, s.SyncAborts = l.SyncStarted, l.SyncDone, l.SyncTransfers, l.SyncAborts
		s.SnapshotBytes = l.SnapshotBytes
		s.PeerICount = l.PeerICount
		s.Proving, s.Rivals = l.Proving, s.Rivals+l.Rivals
		for i, n := range l.PeerGaps {
			s.PeerGaps[i] += n
		}
		s.PeerGapMax = max(s.PeerGapMax, l.PeerGapMax)
		s.LivePeerEpoch = max(s.LivePeerEpoch, l.LivePeerEpoch)
		s.PeerHelloAt = max(s.PeerHelloAt, l.PeerHelloAt)
		if l.PeerLastHeard != 0 {
			s.PeerLastHeard = l.PeerLastHeard
		}
		if l.FailureDetected != 0 {
			s.FailureDetected = l.FailureDetected
		}
	}
	return s
}
