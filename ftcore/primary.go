package ftcore

import (
	"errors"
	"fmt"
	"time"

	"ftbox/ftcore/logwire"
)

// Primary owns the live guest: it injects LAN frames and clock syncs at the
// current instruction count, logs each before the guest runs past it, holds
// every output until the backup acknowledged the log up to the instruction
// that produced it (the Output Rule), and claims the next epoch from the
// arbiter when the backup falls silent. It is not safe for concurrent use.
type Primary struct {
	cfg   Config
	m     Machine
	ch    *channel // nil for a promoted backup (it has no backup of its own)
	st    Status
	ob    Outbox
	role  Role
	epoch uint64
	now   time.Duration // latest time passed in

	started    bool
	startedAt  time.Duration
	hostBase   time.Duration // host time at which guest time was guestBase
	guestBase  uint64
	syncAt     time.Duration
	syncHost   time.Duration
	syncICount uint64
	digestAt   time.Duration
	inputs     []logwire.Entry // InputFrame / ConsoleInput waiting for injection
	idle       bool
	idleWake   time.Duration // host time the idle guest's timer fires (0: none)
	exited     bool
	stalled    bool

	logged       bool
	lastLoggedIC uint64 // icount of the last entry appended to the log

	held      []heldOut
	outN      uint64 // outputs produced
	released  uint64 // outputs released
	handed    uint64 // outputs released in an outbox already taken (the watermark)
	wmLogged  uint64
	peerIC    uint64 // backup's applied icount
	alarmedIC map[uint64]bool

	claimEpoch uint64 // nonzero while waiting for the arbiter
	claimAt    time.Duration

	// State transfer to a joining backup (see Step): an unprotected
	// primary keeps a channel open for a backup's hello; once one answers
	// it sends a snapshot and the log after it, releasing output
	// unprotected, until the backup acked the whole snapshot; then it logs
	// InSync and the Output Rule holds again (role PRIMARY).
	syncing bool
	snap    []byte // the snapshot being sent
	snapOff int    // bytes of it appended to the stream
	snapIC  uint64
	snapOut uint64
	snapSum [32]byte
	snapEnd uint64 // stream position of its last piece (0: not all appended)
	syncPos uint64 // position of the InSync mark until the backup acked it (0: none)
	yielded bool

	// Epoch fencing (see "Epochs and fencing" in the package documentation).
	startPending bool          // Config.StartClaim: p.epoch is not won yet
	startAt      time.Duration // when to ask (again) for it
	fenceEpoch   uint64        // the peer is live in (or was granted) this epoch
	proving      bool          // a rival of our epoch was heard: output held until the arbiter answers
	proveAt      time.Duration // when to ask (again)
	provedAt     time.Duration // when the arbiter last confirmed our grant
	bumpEpoch    uint64        // unprotected: asked for this epoch because the peer holds ours (OnArbiterCurrent)
	lastTick     time.Duration // when the owner last called in (a longer gap: this box was frozen)
	quietUntil   time.Duration // after a freeze: no claim and no release before this
}

type heldOut struct {
	n, pos uint64 // output number; stream position the ack must cover
	at     time.Duration
	frame  []byte
}

// NewPrimary returns the primary of a pair in epoch cfg.Epoch, driving m
// (freshly loaded, identical to the backup's). The logging-link handshake
// starts with the first Step.
func NewPrimary(cfg Config, m Machine) (*Primary, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("new primary: %w", err)
	}
	if m == nil {
		return nil, fmt.Errorf("new primary: no machine: %w", ErrConfig)
	}
	p := &Primary{cfg: cfg, m: m, role: RolePrimary, epoch: cfg.Epoch, alarmedIC: map[uint64]bool{}}
	p.ch = newChannel(&p.cfg, &p.st, logwire.RolePrimary, p.epoch)
	if cfg.StartClaim {
		p.startPending, p.ch.mute = true, true
	}
	return p, nil
}

// newLive returns an unprotected primary continuing a promoted backup's guest.
func newLive(cfg Config, m Machine, epoch uint64, now time.Duration, outN uint64) *Primary {
	p := &Primary{cfg: cfg, m: m, role: RoleUnprotected, epoch: epoch, outN: outN, released: outN, alarmedIC: map[uint64]bool{}}
	// now, too: Deadline answers "now" (p.now) while the guest can run,
	// and 0 means "nothing scheduled" — a promoted box left at 0 was never
	// stepped again until some frame arrived, so with an idle LAN it
	// neither ran its guest nor said hello to a restarted peer.
	p.now = now
	p.start(now)
	p.listen()
	return p
}

// protected: the Output Rule holds (a backup is, or may be, in step).
func (p *Primary) protected() bool { return p.role == RolePrimary }

// logging: entries go to the log (protected, or sending a snapshot).
func (p *Primary) logging() bool { return p.protected() || p.syncing }

// listen opens a fresh channel on which an unprotected primary waits for a
// joining backup (it sends hellos in its epoch; see Step).
func (p *Primary) listen() {
	old := p.ch
	p.ch = newChannel(&p.cfg, &p.st, logwire.RolePrimary, p.epoch)
	if old != nil {
		p.ch.own = append(old.own, old.hello.Nonce)
		p.ch.own = p.ch.own[max(len(p.ch.own)-16, 0):]
	}
	p.syncing, p.snap, p.snapOff, p.snapEnd, p.syncPos = false, nil, 0, 0, 0
	p.logged, p.peerIC, p.wmLogged, p.stalled = false, 0, 0, false
}

// startSync takes the snapshot for a backup that just answered our hello,
// at the current instruction count (between steps), and appends its first
// piece: the stream starts with it.
func (p *Primary) startSync(now time.Duration) error {
	p.syncing = true
	p.snapIC, p.snapOut = p.m.ICount(), p.outN
	p.snap = p.m.Save()
	p.snapSum = p.m.Digest()
	p.snapOff, p.snapEnd = 0, 0
	p.peerIC = p.snapIC
	p.logged = false
	p.st.SyncTransfers++
	p.st.SyncStarted, p.st.SyncDone = now, 0
	p.st.SyncBytes, p.st.SyncTotal, p.st.SyncICount = 0, uint64(len(p.snap)), p.snapIC
	p.st.SnapshotBytes = uint64(len(p.snap))
	if len(p.snap) == 0 {
		return fmt.Errorf("state transfer: empty snapshot: %w", ErrConfig)
	}
	return p.feedSnapshot(true)
}

// feedSnapshot appends snapshot pieces while they take at most half of the
// flow-control window (the log of the running guest gets the other half,
// and heartbeats are never queued behind them).
func (p *Primary) feedSnapshot(first bool) error {
	piece := p.ch.maxEntry() - logwire.SnapshotHead
	for p.syncing && p.snapEnd == 0 {
		if !first && (p.ch.qBytes >= p.cfg.MaxUnackedBytes/2 || p.ch.unacked() >= p.cfg.MaxUnackedEntry/2) {
			return nil
		}
		first = false
		n := min(piece, len(p.snap)-p.snapOff)
		pos, err := p.ch.append(logwire.Snapshot{ICount: p.snapIC, Outputs: p.snapOut, Total: uint64(len(p.snap)),
			Offset: uint64(p.snapOff), Sum: p.snapSum, Data: p.snap[p.snapOff : p.snapOff+n]})
		if err != nil {
			return fmt.Errorf("state transfer: %w", err)
		}
		p.snapOff += n
		p.st.SyncBytes = uint64(p.snapOff)
		if p.snapOff == len(p.snap) {
			p.snapEnd = pos
			p.snap = nil
		}
	}
	return nil
}

// inSync ends a transfer whose snapshot the backup acknowledged: the log
// gets an entry reaching the current count (every output released so far
// was produced before it) and the InSync mark; from now on the Output Rule
// holds, and losing the backup means claiming the next epoch, since a
// backup holding the mark may go live.
func (p *Primary) inSync(now time.Duration) error {
	ic := p.m.ICount()
	if !p.logged || p.lastLoggedIC < ic {
		if _, err := p.log(logwire.Progress{ICount: ic}); err != nil {
			return fmt.Errorf("state transfer: %w", err)
		}
	}
	pos, err := p.log(logwire.InSync{ICount: ic})
	if err != nil {
		return fmt.Errorf("state transfer: %w", err)
	}
	p.syncing, p.syncPos = false, pos
	p.setRole(now, RolePrimary)
	return nil
}

func (p *Primary) checkSynced(now time.Duration) {
	if p.syncPos != 0 && p.protected() && p.ch.acked >= p.syncPos {
		p.syncPos = 0
		p.st.SyncDone = now
		p.ob.Events = append(p.ob.Events, Event{Kind: EventSynced, At: now, Role: p.role, Epoch: p.epoch, ICount: p.m.ICount()})
	}
}

func (p *Primary) start(now time.Duration) {
	p.started, p.startedAt = true, now
	p.hostBase, p.guestBase = now, p.m.Now()
	p.syncAt, p.syncHost, p.syncICount = now+p.cfg.ClockInterval, now, p.m.ICount()
	p.digestAt = now + p.cfg.DigestInterval
}

func (p *Primary) tick(now time.Duration) {
	if p.lastTick != 0 && now-p.lastTick > p.cfg.Timeout && p.started {
		// This box was frozen (SIGSTOP, a VM pause, a starved host) past
		// the timeout: the peer may have gone live meanwhile. Its hellos
		// arrive every HelloInterval: hear them before claiming or
		// releasing anything (fence yields), whatever an arbiter that
		// lost its state would grant and whatever acks waited in our
		// socket through the freeze (the peer replayed and released
		// those outputs when it went live).
		p.quietUntil = now + 2*p.cfg.HelloInterval
	}
	p.lastTick = max(p.lastTick, now)
	if now > p.now {
		p.now = now
	}
	if !p.started {
		p.start(now)
	}
}

// Role returns the current role; Epoch the current epoch.
func (p *Primary) Role() Role       { return p.role }
func (p *Primary) Epoch() uint64    { return p.epoch }
func (p *Primary) Machine() Machine { return p.m }

func (p *Primary) setRole(now time.Duration, r Role) {
	if r == p.role {
		return
	}
	p.role = r
	p.st.RoleChanges++
	p.ob.Events = append(p.ob.Events, Event{Kind: EventRoleChanged, At: now, Role: r, Epoch: p.epoch, ICount: p.m.ICount()})
}

// OnLANFrame queues a frame from the LAN for the guest: it is injected at
// the guest's instruction count at the next Step, and logged first. The
// frame is copied.
func (p *Primary) OnLANFrame(now time.Duration, frame []byte) error {
	p.tick(now)
	if p.role == RoleHalted {
		return fmt.Errorf("LAN frame: %w", ErrHalted)
	}
	if len(p.inputs) >= p.cfg.MaxQueuedInput {
		p.st.InputsDropped++
		return fmt.Errorf("LAN frame: %d frames already queued: %w", len(p.inputs), ErrFrame)
	}
	p.inputs = append(p.inputs, logwire.InputFrame{Frame: append([]byte(nil), frame...)})
	return nil
}

// OnConsoleInput queues bytes for the guest's UART, like OnLANFrame.
func (p *Primary) OnConsoleInput(now time.Duration, data []byte) error {
	p.tick(now)
	if p.role == RoleHalted {
		return fmt.Errorf("console input: %w", ErrHalted)
	}
	p.inputs = append(p.inputs, logwire.ConsoleInput{Data: append([]byte(nil), data...)})
	return nil
}

// OnLogFrame takes a frame from the logging link: acks release held outputs
// at once. Frames that fail authentication are counted and refused with an
// error wrapping ErrFrame; they change nothing.
func (p *Primary) OnLogFrame(now time.Duration, frame []byte) error {
	return p.onFrame(now, frame, false)
}

// OnPeerLANFrame takes a frame the backup sent over the second path (its
// Outbox.PeerLAN, carried by the LAN). It shows that the backup is alive
// but, unlike the logging link, not that the backup can be kept in step:
// a primary whose logging link is silent for Timeout, or delivers nothing
// for 2×Timeout, gives up its backup (claims the next epoch) even while
// the second path is up. See the package documentation.
func (p *Primary) OnPeerLANFrame(now time.Duration, frame []byte) error {
	return p.onFrame(now, frame, true)
}

func (p *Primary) onFrame(now time.Duration, frame []byte, second bool) error {
	p.tick(now)
	if p.ch == nil || p.role == RoleHalted {
		return nil
	}
	if p.claimEpoch != 0 || p.startPending || (second && isHello(frame)) {
		// No backup (any more): nothing it says matters; but a live
		// primary's hello does (fence), and it is all a hello on the
		// second path says.
		p.ch.noteHello(now, frame)
		p.fence(now)
		return nil
	}
	defer p.fence(now)
	acked := p.ch.acked
	ctl, stream, err := p.ch.receive(now, frame, second)
	if err != nil {
		return fmt.Errorf("primary: %w", err)
	}
	p.st.PeerLastHeard = now
	if len(stream) > 0 {
		p.st.ProtocolErrors++
	}
	for _, e := range ctl {
		switch e := e.(type) {
		case logwire.Ack:
			p.peerIC = max(p.peerIC, e.ICount)
		case logwire.Heartbeat:
			p.st.PeerICount = e.ICount
		case logwire.DivergenceAlarm:
			if !p.alarmedIC[e.ICount] {
				p.alarmedIC[e.ICount] = true
				p.ob.Events = append(p.ob.Events, Event{Kind: EventDivergence, At: now, Role: p.role, Epoch: p.epoch, ICount: e.ICount, Local: e.Remote, Remote: e.Local})
			}
		}
	}
	if p.ch.acked != acked {
		p.stalled = false
		p.release()
		p.checkSynced(now)
	}
	return nil
}

// OnArbiterReply feeds the arbiter's answer to an ArbiterRequest. A failed
// call (err) is asked again after ArbiterRetry.
func (p *Primary) OnArbiterReply(now time.Duration, epoch uint64, won bool, err error) error {
	p.tick(now)
	if p.role == RoleHalted {
		return nil
	}
	if p.startPending && epoch == p.epoch {
		return p.onStartClaim(now, won, err)
	}
	if p.proving && epoch == p.epoch && p.claimEpoch == 0 {
		return p.onProof(now, won, err)
	}
	if p.bumpEpoch != 0 && epoch == p.bumpEpoch {
		p.bumpEpoch = 0
		switch {
		case err != nil: // asked again at the next query
		case won && p.role == RoleUnprotected && p.fenceEpoch < epoch:
			p.epoch = epoch
			p.st.EpochChanges++
			p.ob.Events = append(p.ob.Events, Event{Kind: EventRoleChanged, At: now, Role: p.role, Epoch: p.epoch, ICount: p.m.ICount()})
			if !p.syncing {
				p.listen() // hellos in the new epoch
			}
		case !won:
			p.fenceEpoch = max(p.fenceEpoch, epoch)
			p.fence(now)
		}
		return nil
	}
	if p.claimEpoch == 0 || epoch != p.claimEpoch {
		return nil
	}
	if err != nil {
		p.claimAt = now + p.cfg.ArbiterRetry
		return nil
	}
	p.claimEpoch = 0
	if won && p.fenceEpoch >= epoch {
		// Granted, yet the peer was heard live in that epoch (or a
		// later one): the arbiter granted it twice (it lost its state).
		// The peer has served since: never a second primary.
		won = false
	}
	if !won {
		p.held = nil
		if p.fenceEpoch >= epoch {
			p.yield(now)
			return nil
		}
		p.setRole(now, RoleHalted)
		return nil
	}
	p.epoch = epoch
	p.st.EpochChanges++
	p.setRole(now, RoleUnprotected)
	p.release()
	p.listen() // a new backup may join (state transfer)
	return nil
}

// onStartClaim takes the arbiter's answer to the start claim
// (Config.StartClaim). Won, the primary starts for real: it says hello and
// waits for its backup, the guest from instruction 0.
func (p *Primary) onStartClaim(now time.Duration, won bool, err error) error {
	if err != nil {
		p.startAt = now + p.cfg.ArbiterRetry
		return nil
	}
	if won && p.fenceEpoch >= p.epoch {
		won = false // the peer is live in it: a second grant (see OnArbiterReply)
	}
	p.startPending = false
	if !won {
		p.held = nil
		if p.fenceEpoch >= p.epoch {
			p.yield(now)
			return nil
		}
		p.setRole(now, RoleHalted)
		return nil
	}
	p.ch.mute = false
	p.start(now) // guest time and the connect timeout count from the grant
	if p.cfg.ColdStart {
		p.ob.Events = append(p.ob.Events, Event{Kind: EventColdStart, At: now, Role: p.role, Epoch: p.epoch, ICount: p.m.ICount()})
	}
	return nil
}

// onProof takes the arbiter's answer to "do we hold our epoch?", asked
// because a rival primary of our epoch was heard: the arbiter grants an
// epoch once, so at most one of two rivals is told yes (a repeated
// request by the holder wins); the other halts.
func (p *Primary) onProof(now time.Duration, won bool, err error) error {
	if err != nil {
		p.proveAt = now + p.cfg.ArbiterRetry
		return nil
	}
	p.proving = false
	if !won {
		p.held = nil
		p.setRole(now, RoleHalted)
		return nil
	}
	p.provedAt = now
	p.release()
	return nil
}

// OnArbiterCurrent feeds an answer to the read-only current-epoch query
// (Arbiter.Current), which the owner may make at any time: a later epoch
// granted to the peer means this box was superseded (it yields, as on
// hearing the peer live in it); its own epoch held by the peer, while it
// serves unprotected, makes it take the next epoch (a second grant to a
// peer that yielded to it). An arbiter behind this live box's epoch (it
// lost its state) is told the epoch again: a test-and-set of the epoch we
// hold.
func (p *Primary) OnArbiterCurrent(now time.Duration, epoch uint64, holder string) {
	p.tick(now)
	if p.role == RoleHalted || holder == "" && epoch != 0 {
		return
	}
	switch {
	case holder != p.cfg.Name && epoch > p.epoch:
		p.fenceEpoch = max(p.fenceEpoch, epoch)
	case holder != p.cfg.Name && epoch == p.epoch && p.role == RoleUnprotected && !p.syncing && p.bumpEpoch == 0:
		// The peer holds our epoch, yet we serve in it and hear no rival
		// (fence would have made us prove): a second grant to a peer that
		// then yielded to us. Take the next epoch, so that the arbiter
		// names the box that serves; lost, fence yields to the holder.
		p.bumpEpoch = p.epoch + 1
		p.ob.Arbiter = append(p.ob.Arbiter, ArbiterRequest{Epoch: p.bumpEpoch, Who: p.cfg.Name})
		p.st.ArbiterRequests++
	case epoch < p.epoch && !p.startPending && p.claimEpoch == 0 && (p.role == RolePrimary || p.role == RoleUnprotected):
		p.ob.Arbiter = append(p.ob.Arbiter, ArbiterRequest{Epoch: p.epoch, Who: p.cfg.Name})
		p.st.ArbiterRequests++
	}
	p.fence(now)
}

// fence acts on what the primary knows of the peer's epoch: a peer live in
// a later epoch (or, while the start claim is pending, in the epoch being
// claimed) supersedes this box: it yields (EventYield: the owner restarts
// it as the peer's joining backup). A primary of our own epoch heard on the
// logging link is a rival: prove the grant.
func (p *Primary) fence(now time.Duration) {
	if p.role == RoleHalted || p.yielded {
		return
	}
	if p.ch != nil {
		p.fenceEpoch = max(p.fenceEpoch, p.ch.livePeer)
	}
	if p.fenceEpoch > p.epoch || (p.startPending && p.fenceEpoch >= p.epoch) {
		p.yield(now)
		return
	}
	if p.ch != nil && !p.startPending && p.claimEpoch == 0 && !p.proving && p.ch.rivalAt != 0 &&
		(p.provedAt == 0 || p.ch.rivalAt > p.provedAt+p.cfg.Timeout) {
		p.startProving(now)
	}
}

func (p *Primary) startProving(now time.Duration) {
	p.proving, p.proveAt = true, now
	p.st.Rivals++
	p.ob.Events = append(p.ob.Events, Event{Kind: EventRival, At: now, Role: p.role, Epoch: p.epoch, ICount: p.m.ICount()})
}

// yield halts a primary superseded by a peer live in a later epoch: its
// held output dies with it (the peer never acknowledged it, or it would
// not have been held), and the owner rejoins as the peer's backup.
func (p *Primary) yield(now time.Duration) {
	p.yielded = true
	p.held = nil
	p.startPending, p.claimEpoch, p.proving = false, 0, false
	p.ob.Events = append(p.ob.Events, Event{Kind: EventYield, At: now, Role: p.role, Epoch: max(p.fenceEpoch, p.epoch), ICount: p.m.ICount()})
	p.setRole(now, RoleHalted)
}

// logDeadline is when the logging link counts as failed if nothing changes:
// Timeout after the last authentic frame on it, or 2×Timeout after the
// oldest unacknowledged entry was sent (a link that carries the backup's
// heartbeats but not the log, or only one way, is as useless as a dead
// one; twice the timeout leaves room for RTOMax-capped retransmissions
// under loss).
//
// Before the peer was ever heard the deadline is ConnectTimeout after the
// start (0: none, with a negative ConnectTimeout): failure detection does
// not start before first contact.
func (p *Primary) logDeadline() time.Duration {
	if !p.ch.logHeard {
		if p.cfg.ConnectTimeout < 0 {
			return 0
		}
		return p.startedAt + p.cfg.ConnectTimeout
	}
	d := p.ch.lastLogRx + p.cfg.Timeout
	if p.ch.stuckFrom != 0 {
		d = min(d, p.ch.stuckFrom+2*p.cfg.Timeout)
	}
	return d
}

// Step does whatever is due: timers, failure detection, injecting queued
// input and clock syncs, running the guest for at most one slice, releasing
// acknowledged output and sending log. It returns an error only for a
// failure of the machine contract or of the local crypto; the box stays
// consistent (a logged event is never left uninjected).
func (p *Primary) Step(now time.Duration) error {
	p.tick(now)
	if p.role == RoleHalted {
		return nil
	}
	var errs []error
	if p.fence(now); p.role == RoleHalted {
		return nil
	}
	if p.startPending {
		// Nothing before the epoch is won: no hello, no guest. A cold
		// start first listens for ColdStartDelay (a surviving peer that
		// holds the state takes the epoch meanwhile; fence yields to it).
		if p.startAt == 0 {
			p.startAt = now
			if p.cfg.ColdStart {
				p.startAt = now + p.cfg.ColdStartDelay
			}
		}
		if now >= p.startAt {
			p.ob.Arbiter = append(p.ob.Arbiter, ArbiterRequest{Epoch: p.epoch, Who: p.cfg.Name})
			p.st.ArbiterRequests++
			p.startAt = now + p.cfg.ArbiterRetry
		}
		return nil
	}
	if p.proving && now >= p.proveAt {
		p.ob.Arbiter = append(p.ob.Arbiter, ArbiterRequest{Epoch: p.epoch, Who: p.cfg.Name})
		p.st.ArbiterRequests++
		p.proveAt = now + p.cfg.ArbiterRetry
	}
	if !p.protected() && p.ch != nil {
		// Unprotected: wait for a joining backup, send it the snapshot.
		if err := p.ch.tick(now); err != nil {
			errs = append(errs, err)
		}
		switch {
		case p.ch.sess != nil && !p.syncing:
			if err := p.startSync(now); err != nil {
				errs = append(errs, err)
				p.listen()
			}
		case p.syncing && now > p.logDeadline():
			// The joiner fell silent before it could take over: forget it.
			p.st.SyncAborts++
			p.listen()
		case p.syncing && p.snapEnd != 0 && p.ch.acked >= p.snapEnd:
			if err := p.inSync(now); err != nil {
				errs = append(errs, err)
			}
		}
		if p.syncing {
			if err := p.ch.heartbeat(now, p.m.ICount()); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if p.protected() {
		if err := p.ch.tick(now); err != nil {
			errs = append(errs, err)
		}
		if ld := p.logDeadline(); p.claimEpoch == 0 && ld != 0 && now > ld {
			p.st.FailureDetected = now
			p.ob.Events = append(p.ob.Events, Event{Kind: EventPeerLost, At: now, Role: p.role, Epoch: p.epoch, ICount: p.m.ICount()})
			p.claimEpoch, p.claimAt = p.epoch+1, max(now, p.quietUntil)
			if p.ch.sess != nil {
				// From now on every frame we send says "claiming
				// claimEpoch": the backup keeps hearing that we are
				// alive (no needless failover while the arbiter is slow)
				// without mistaking us for a primary that serves (see
				// Backup.failAt). Frames of the backup, sealed with the
				// old epoch, are refused as stale, but nothing it says
				// matters any more (onFrame).
				p.ch.sess.SetEpoch(p.claimEpoch)
			}
		}
		if p.claimEpoch != 0 {
			if now >= p.claimAt {
				p.ob.Arbiter = append(p.ob.Arbiter, ArbiterRequest{Epoch: p.claimEpoch, Who: p.cfg.Name})
				p.st.ArbiterRequests++
				p.claimAt = now + p.cfg.ArbiterRetry
			}
			// Heartbeats go on while we claim: a backup that hears
			// nothing on either path for Timeout would claim too.
			if err := p.ch.heartbeat(now, p.m.ICount()); err != nil {
				errs = append(errs, err)
			}
			return errors.Join(errs...)
		}
		if err := p.ch.heartbeat(now, p.m.ICount()); err != nil {
			errs = append(errs, err)
		}
	}
	if !p.exited {
		if err := p.runGuest(now); err != nil {
			errs = append(errs, err)
		}
	}
	p.release()
	if p.syncing {
		if err := p.feedSnapshot(false); err != nil {
			errs = append(errs, err)
		}
	}
	if p.logging() {
		// The watermark covers only outputs handed out in an earlier
		// outbox: the owner wrote those before calling Step again, whereas
		// this Step's outbox may be cut short by a crash after its log
		// frames are written and before its LAN frames are.
		if p.handed > p.wmLogged {
			if _, err := p.log(logwire.ReleasedOutput{Watermark: p.handed}); err != nil {
				errs = append(errs, err)
			}
			p.wmLogged = p.handed
		}
		if err := p.ch.flush(now); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// log appends e to the log (protected or syncing) and returns its position.
func (p *Primary) log(e logwire.Entry) (uint64, error) {
	if !p.logging() {
		return 0, nil
	}
	pos, err := p.ch.append(e)
	if err != nil {
		return 0, err
	}
	if ic, ok := icountOf(e); ok {
		p.lastLoggedIC, p.logged = ic, true
	}
	return pos, nil
}

// icountOf returns the instruction count a log entry is tied to.
func icountOf(e logwire.Entry) (uint64, bool) {
	switch e := e.(type) {
	case logwire.InputFrame:
		return e.ICount, true
	case logwire.ClockSync:
		return e.ICount, true
	case logwire.ConsoleInput:
		return e.ICount, true
	case logwire.Progress:
		return e.ICount, true
	case logwire.Digest:
		return e.ICount, true
	}
	return 0, false
}

// event logs an event and injects it at the current count. A frame the
// machine refuses (malformed) is refused identically on replay.
func (p *Primary) event(e logwire.Entry) error {
	if _, err := p.log(e); err != nil {
		return fmt.Errorf("log event: %w", err)
	}
	if err := p.m.Inject(e); err != nil {
		if _, ok := e.(logwire.ClockSync); ok {
			return fmt.Errorf("inject clock sync: %w", err)
		}
		p.st.InputsDropped++
		return nil
	}
	switch e := e.(type) {
	case logwire.InputFrame:
		p.st.InputBytes += uint64(len(e.Frame))
	case logwire.ConsoleInput:
		p.st.InputBytes += uint64(len(e.Data))
	}
	return nil
}

func (p *Primary) guestTarget(now time.Duration) uint64 {
	if now <= p.hostBase {
		return p.guestBase
	}
	return p.guestBase + uint64((now-p.hostBase)/p.cfg.TickDuration)
}

func (p *Primary) hostAt(ticks uint64) time.Duration {
	if ticks <= p.guestBase {
		return p.hostBase
	}
	d := ticks - p.guestBase
	if d > uint64(1<<62)/uint64(p.cfg.TickDuration) {
		return 1 << 62
	}
	return p.hostBase + time.Duration(d)*p.cfg.TickDuration
}

// clockSync keeps guest time near host time: it moves mtime up to host time
// if the guest fell behind, and sets the rate to the measured ticks per
// instruction of the last interval, trimmed if the guest ran ahead.
func (p *Primary) clockSync(now time.Duration) error {
	ic, cur, target := p.m.ICount(), p.m.Now(), p.guestTarget(now)
	cs := logwire.ClockSync{ICount: ic}
	if target > cur {
		cs.Time = target
	}
	dI := ic - p.syncICount
	dT := uint64((now - p.syncHost) / p.cfg.TickDuration)
	if dI >= 10_000 && dT > 0 {
		num, den := dT, dI
		if cur > target {
			num -= min(cur-target, num/2)
		}
		for num > 1<<32 || den > 1<<32 {
			num, den = num>>1, den>>1
		}
		if num > 0 && den > 0 {
			cs.RateNum, cs.RateDen = num, den
		}
	}
	p.syncAt, p.syncHost, p.syncICount = now+p.cfg.ClockInterval, now, ic
	if cs.Time == 0 && cs.RateDen == 0 {
		return nil
	}
	return p.event(cs)
}

func (p *Primary) runGuest(now time.Duration) error {
	ic := p.m.ICount()
	if p.idle {
		timer := p.idleWake != 0 && now >= p.idleWake
		if len(p.inputs) == 0 && !timer {
			return nil
		}
		t := p.guestTarget(now)
		if d, ok := p.m.NextDeadline(); ok && timer {
			t = max(t, d)
		}
		p.idle = false
		p.syncAt, p.syncHost, p.syncICount = now+p.cfg.ClockInterval, now, ic
		if err := p.event(logwire.ClockSync{ICount: ic, Time: t}); err != nil {
			return err
		}
	} else if now >= p.syncAt {
		if err := p.clockSync(now); err != nil {
			return err
		}
	}
	for i, in := range p.inputs {
		switch e := in.(type) {
		case logwire.InputFrame:
			e.ICount = ic
			in = e
		case logwire.ConsoleInput:
			e.ICount = ic
			in = e
		}
		if err := p.event(in); err != nil {
			p.inputs = p.inputs[i+1:]
			return err
		}
	}
	p.inputs = nil
	if p.cfg.DigestInterval > 0 && now >= p.digestAt && p.logging() {
		if _, err := p.log(logwire.Digest{ICount: ic, Sum: p.m.Digest()}); err != nil {
			return err
		}
		p.st.DigestsSent++
		p.digestAt = now + p.cfg.DigestInterval
	}
	bound := ic + p.cfg.Slice
	if p.logging() {
		// While the snapshot travels the backup replays nothing: the
		// instruction lag is not held against the guest then.
		lagged := p.protected() && ic >= p.peerIC+p.cfg.MaxLagInstr
		if p.ch.unacked() >= p.cfg.MaxUnackedEntry || p.ch.qBytes >= p.cfg.MaxUnackedBytes || lagged {
			if !p.stalled {
				p.st.FlowStalls++
			}
			p.stalled = true
			return nil
		}
		if p.protected() {
			bound = min(bound, p.peerIC+p.cfg.MaxLagInstr)
		}
	}
	p.stalled = false
	var err error
run:
	for p.m.ICount() < bound {
		why := p.m.Run(bound)
		if fs := p.m.TakeFrames(); len(fs) > 0 {
			if e := p.output(now, fs); e != nil {
				err = e
			}
		}
		switch why {
		case StopIdle:
			p.setIdle(now)
			break run
		case StopExit:
			p.exited = true
			p.ob.Events = append(p.ob.Events, Event{Kind: EventGuestExit, At: now, Role: p.role, Epoch: p.epoch, ICount: p.m.ICount()})
			break run
		case StopBound:
			break run
		}
	}
	if ic := p.m.ICount(); p.logging() && (!p.logged || p.lastLoggedIC < ic) {
		if _, e := p.log(logwire.Progress{ICount: ic}); e != nil {
			err = e
		}
	}
	return err
}

// setIdle notes that the guest stopped waiting for an interrupt: it is not
// run again before an event (a clock sync at its timer, or an input) is
// injected, exactly as the backup's replay does.
func (p *Primary) setIdle(now time.Duration) {
	p.idle, p.idleWake = true, 0
	if d, ok := p.m.NextDeadline(); ok && d > p.m.Now() {
		p.idleWake = max(p.hostAt(d), now)
	}
}

// output holds (or, unprotected, releases) frames the guest emitted at the
// current instruction count I. The log gets an entry reaching I (Progress{I}
// unless the last entry already does); its position is what the backup's
// ack must cover before the frames go out.
func (p *Primary) output(now time.Duration, frames [][]byte) error {
	ic := p.m.ICount()
	var pos uint64
	if p.logging() {
		if !p.logged || p.lastLoggedIC < ic {
			var err error
			if pos, err = p.log(logwire.Progress{ICount: ic}); err != nil {
				return fmt.Errorf("output at %d: %w", ic, err)
			}
		} else {
			pos = p.ch.appended()
		}
	}
	for _, f := range frames {
		p.outN++
		p.st.OutputsProduced++
		p.held = append(p.held, heldOut{n: p.outN, pos: pos, at: now, frame: f})
	}
	return nil
}

// release sends held outputs whose log position the backup acknowledged,
// in order; an unprotected primary sends them all.
func (p *Primary) release() {
	i := 0
	switch {
	case p.proving, p.now < p.quietUntil:
		// A rival of our epoch is live: nothing leaves until the
		// arbiter says the epoch is ours. Or we were frozen: nothing
		// leaves before we could hear a peer that went live (tick).
	case p.role == RoleUnprotected:
		i = len(p.held)
	case p.role == RolePrimary && p.claimEpoch == 0:
		for i < len(p.held) && p.held[i].pos <= p.ch.acked {
			i++
		}
	}
	for _, h := range p.held[:i] {
		p.ob.LAN = append(p.ob.LAN, h.frame)
		p.released = h.n
	}
	clear(p.held[:i])
	p.held = p.held[i:]
}

// Deadline is when Step must run next at the latest: the time of the last
// call if the guest can run now, else the earliest timer (retransmission,
// heartbeat, failure timeout, idle guest's timer, arbiter retry). Zero means
// nothing is scheduled (halted).
func (p *Primary) Deadline() time.Duration {
	if p.role == RoleHalted {
		return 0
	}
	if !p.started {
		return max(p.now, 1) // the first Step is due
	}
	if p.startPending {
		if p.startAt == 0 {
			return max(p.now, 1)
		}
		return p.startAt
	}
	var d time.Duration
	if p.proving {
		d = p.proveAt
	}
	if p.now < p.quietUntil {
		d = minDeadline(d, p.quietUntil)
	}
	if p.ch != nil {
		if p.protected() && p.claimEpoch != 0 {
			if p.ch.sess != nil {
				return minDeadline(p.claimAt, p.ch.hbAt) // heartbeats go on while we claim
			}
			return p.claimAt
		}
		d = minDeadline(d, p.ch.deadline())
		if p.ch.sess != nil {
			d = minDeadline(d, p.ch.hbAt)
		}
		if ld := p.logDeadline(); ld != 0 && p.logging() {
			d = minDeadline(d, ld+1)
		}
		if p.logging() && p.released > p.wmLogged {
			d = minDeadline(d, p.ch.hbAt)
		}
		switch {
		case p.ch.sess != nil && !p.logging(), // a backup answered: start the transfer
			p.syncing && p.snapEnd != 0 && p.ch.acked >= p.snapEnd, // transfer acked: InSync
			p.syncing && p.snapEnd == 0 && p.ch.qBytes < p.cfg.MaxUnackedBytes/2 && p.ch.unacked() < p.cfg.MaxUnackedEntry/2:
			return p.now
		}
	}
	if p.exited {
		return d
	}
	if len(p.inputs) > 0 || (!p.idle && !p.stalled) {
		return p.now
	}
	if p.idle && p.idleWake != 0 {
		d = minDeadline(d, p.idleWake)
	}
	return d
}

// Outbox returns and clears what the primary has to send. The owner
// writes all of it before the next Step (in any order): outputs released in
// it are announced to the backup (ReleasedOutput) only from the next Step on.
func (p *Primary) Outbox() Outbox {
	if p.ch != nil {
		p.ch.takeOut(&p.ob)
	}
	p.handed = p.released
	return p.ob.take()
}

// Status returns the counters and gauges.
func (p *Primary) Status() Status {
	s := p.st
	s.Role, s.Epoch, s.ICount = p.role, p.epoch, p.m.ICount()
	s.OutputsReleased, s.Watermark = p.released, p.released
	s.OutputsHeld = len(p.held)
	if len(p.held) > 0 {
		s.OldestHeld = p.held[0].at
	}
	s.Syncing = p.syncing || p.syncPos != 0
	s.Proving = p.proving
	s.LivePeerEpoch = max(s.LivePeerEpoch, p.fenceEpoch)
	if p.ch != nil {
		s.LogAppended, s.LogSent, s.LogAcked = p.ch.appended(), p.ch.sent, p.ch.acked
		s.OldestUnacked = p.ch.stuckFrom
		s.LagEntries = p.ch.unacked()
		s.Verdicts = p.ch.verdicts()
		if s.ICount > p.peerIC {
			s.LagInstr = s.ICount - p.peerIC
		}
	}
	return s
}
