package appliance

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"ftbox/bpf"
	"ftbox/ftcore"
	"ftbox/ftcore/logwire"
	"ftbox/guestvm"
	"ftbox/tap"

	"github.com/vishvananda/netlink"
)

// Arbiter is the split-brain referee as the box uses it: *ArbiterClient in
// production, CoreArbiter around an in-process ftcore.Arbiter in tests. The
// box calls it from goroutines of its own, never from the loop; ctx bounds
// each call, and err means no answer (a claim is then neither won nor
// lost).
//   - Claim is the atomic test-and-set of an epoch (ftcore.Arbiter's
//     TestAndSet); the decision also names the latest grant and its holder,
//     so a refused box knows which epoch its peer is in.
//   - Query is the read-only current-epoch question (ftcore.Arbiter's
//     Current): a starting box asks it (ftcore.StartRole), and a running one
//     every second (reachability, fencing, an arbiter that lost its state).
type Arbiter interface {
	Claim(ctx context.Context, epoch uint64, who string) (ArbiterDecision, error)
	Query(ctx context.Context, who string) (ArbiterDecision, error)
}

// CoreArbiter adapts an ftcore.Arbiter (such as *ftcore.MemArbiter) to Arbiter.
type CoreArbiter struct{ A ftcore.Arbiter }

// Claim implements Arbiter.
func (c CoreArbiter) Claim(ctx context.Context, epoch uint64, who string) (ArbiterDecision, error) {
	if err := ctx.Err(); err != nil {
		return ArbiterDecision{}, err
	}
	won, err := c.A.TestAndSet(epoch, who)
	if err != nil {
		return ArbiterDecision{}, err
	}
	e, h, err := c.A.Current()
	return ArbiterDecision{Won: won, Epoch: e, Holder: h}, err
}

// Query implements Arbiter.
func (c CoreArbiter) Query(ctx context.Context, _ string) (ArbiterDecision, error) {
	if err := ctx.Err(); err != nil {
		return ArbiterDecision{}, err
	}
	e, h, err := c.A.Current()
	return ArbiterDecision{Epoch: e, Holder: h}, err
}

// Gate is what the box needs of the eBPF gate at its TAP (*bpf.Gate).
type Gate interface {
	SetPass(pass bool) error
	Stats() (bpf.GateStats, error)
	Hook() string
	Close() error
}

// BoxOptions are what a Box needs beyond its Config. Ports and the gate left
// nil are opened by NewBox from the Config, in the network namespace of the
// calling thread.
type BoxOptions struct {
	Image   []byte       // the guest image (ELF)
	Arbiter Arbiter      // nil: no automatic go-live
	Log     *slog.Logger // nil: discard
	Console io.Writer    // the guest's UART; nil discards it

	TAP     tap.Port         // the guest's NIC on the LAN
	LogPort tap.Port         // the logging link (whole Ethernet frames, EtherType 0x88B5)
	LogMAC  net.HardwareAddr // source MAC of logging-link frames (required with LogPort)
	LogMTU  int              // logging-link MTU with LogPort; 0: 1500
	Gate    Gate             // the gate at the TAP

	// LANPath is the second heartbeat path (lan.heartbeat_interface):
	// whole Ethernet frames of EtherType 0x88B5 on the box's LAN
	// interface; LANPathMAC is their source MAC (required with LANPath).
	// Used only when the config names lan.heartbeat_interface; nil there
	// makes NewBox open a raw port on that interface.
	LANPath    tap.Port
	LANPathMAC net.HardwareAddr

	// Epoch, if nonzero, overrides what a starting box learns from the
	// arbiter: the box starts in this epoch in its configured role (both
	// boxes must agree, and it must be above every epoch the arbiter
	// granted). 0: ask the arbiter (ftcore.StartRole), or epoch 1 in the
	// configured role without one.
	Epoch uint64
	// ConnectTimeout is how long a box that has never heard its peer keeps
	// waiting for it before it lets failure detection run (and, with an
	// arbiter, claims the next epoch: a cold start alone, or HALTED if the
	// peer already holds it); ftcore.Config.ConnectTimeout. A joining
	// backup (the peer holds the latest grant) waits forever. 0 means
	// DefaultConnectTimeout (forever); positive is the operator's explicit
	// consent to start one box alone.
	ConnectTimeout time.Duration
	// Announce overrides AnnounceSchedule.
	Announce []time.Duration
	// Slice is guest instructions per Step (0: DefaultSlice).
	Slice uint64
	// Notify receives sd_notify states; nil means SdNotify.
	Notify func(state string) error
}

// DefaultConnectTimeout is BoxOptions.ConnectTimeout's default: wait for the
// peer forever. A freshly started box holds no guest state; if it went on
// alone after a timeout it could race a peer that is going live with the
// real state (say the arbiter was unreachable meanwhile) for the same epoch,
// and a win would throw that state away. A pair that forms from two fresh
// boxes loses nothing, and a fresh box next to a live peer joins it, so
// waiting costs only the single-box cold start, which takes an operator's
// --connect-timeout.
const DefaultConnectTimeout time.Duration = -1

// Box is one ftbox appliance: the guest machine and the ftcore state driven
// by one owner goroutine (Run), the TAP with its gate, and the logging link.
type Box struct {
	cfg  *Config
	opts BoxOptions
	log  *slog.Logger

	tapPort, logPort tap.Port
	lanPath          tap.Port // the second heartbeat path; nil without lan.heartbeat_interface
	gate             Gate
	gateIf           string
	owned            []io.Closer // what NewBox opened, closed by Close in reverse

	psk                        [logwire.KeySize]byte
	logMAC, peerMAC, guestMAC  net.HardwareAddr
	lanPathMAC, lanPathPeer    net.HardwareAddr // second path: our source MAC, the peer's MAC
	logMTU                     int
	memSize                    uint64
	connectTimeout             time.Duration
	schedule                   []time.Duration
	notify                     func(string) error
	start                      time.Time
	startWall                  time.Time
	lanIn, logIn, lanPathIn    chan []byte
	arbIn                      chan arbAnswer
	arbCur                     chan arbCurrent
	ackReq                     chan chan *Status
	ctl                        chan chan *Status // status requests
	portErr                    chan error
	stop                       chan struct{}
	stopOnce, closeOnce        sync.Once
	running                    chan struct{} // closed when Run returns
	runStarted                 atomic.Bool
	lanInCount, logInCount     atomic.Uint64
	logInShort, lanInDropCount atomic.Uint64
	foreignGuest               atomic.Uint64
	lanPathInCount             atomic.Uint64 // frames read on the second path
	lanPathDown                atomic.Pointer[error]

	// Owned by the loop goroutine.
	node          node
	m             *guestvm.Machine
	role          ftcore.Role
	connecting    bool
	connectBy     time.Duration
	rebuilds      uint64
	plan          ftcore.Start // how the current core was (re)built: role, epoch, joining, claiming, cold
	joinedAt      time.Duration
	startedAt     time.Duration // when the current core was built
	learned       string        // how the start epoch was learned, for the log and status
	syncedIn      time.Duration // start → PROTECTED of the last rejoin (0: none)
	rejoins       uint64
	prevVerd      [logwire.NumVerdicts]uint64
	prevGaps      [len(ftcore.GapBuckets) + 1]uint64 // peer gap counts of the cores before this one
	prevGapMax    time.Duration
	peerVersion   uint8         // protocol version of the last frame refused as another version
	peerVersionAt time.Duration // when
	gatePass      bool
	gateErr       error
	ann           announcer
	guestIP       net.IP
	lanOut        uint64
	replicaOut    uint64
	logOut        uint64
	logOutB       uint64
	announced     uint64
	portErrs      uint64
	arbBusy       bool
	pendingRejoin uint64 // rebuild as a joining backup of this epoch after this outbox
	arbReqs       uint64
	arbLast       string
	arbClaim      uint64
	arbLost       uint64 // the last epoch the arbiter refused us
	peerEpoch     uint64 // the arbiter refused us this epoch: the peer holds it
	noArbLoud     bool   // a go-live was needed and no arbiter is configured
	diverged      bool
	failover      *FailoverStatus
	failDetect    time.Duration
	rtt           time.Duration
	rttProbe      struct {
		pos uint64
		at  time.Duration
	}
	mipsIC   uint64
	mipsAt   time.Duration
	mips     float64
	liveAt   time.Duration // when this box last became the releasing one
	stepErrs uint64
	lastWarn time.Duration

	// Fencing and alarms (loop-owned).
	foreignAt   time.Duration // last frame of the guest's MAC from the LAN while live (0: none)
	coldStarts  uint64
	coldAlarm   *AlarmStatus // unacknowledged cold start
	rivals      uint64
	rivalAlarm  *AlarmStatus // unacknowledged rival primary
	yields      uint64
	peerEver    time.Duration // the peer was last heard by an earlier core of this process (0: never); see judge
	queryBusy   bool
	queryAt     time.Duration // next current-epoch query
	queryOK     time.Duration // last answer (0: none)
	queryErr    error         // the last query's error (nil: it answered)
	latestEpoch uint64        // the arbiter's latest grant, from the last answer
	latestWho   string

	// The second heartbeat path (loop-owned).
	lanPathOut   uint64        // heartbeat frames written
	lanPathAuth  uint64        // authentic frames from the peer
	lanPathHeard time.Duration // last authentic frame from the peer (0: never)
	logHeard     time.Duration // last authentic frame on the logging link (tracked with the second path only)
	connectedAt  time.Duration // when the current core first heard its peer
}

// node is what the loop drives: a *ftcore.Primary or *ftcore.Backup.
type node interface {
	OnLANFrame(now time.Duration, frame []byte) error
	OnLogFrame(now time.Duration, frame []byte) error
	OnPeerLANFrame(now time.Duration, frame []byte) error
	OnArbiterReply(now time.Duration, epoch uint64, won bool, err error) error
	OnArbiterCurrent(now time.Duration, epoch uint64, holder string)
	Step(now time.Duration) error
	Deadline() time.Duration
	Outbox() ftcore.Outbox
	Status() ftcore.Status
	Role() ftcore.Role
	Epoch() uint64
}

type arbAnswer struct {
	epoch  uint64
	won    bool
	err    error
	latest uint64 // the latest granted epoch, if the arbiter says (0: unknown)
	holder string
}

// arbCurrent is an answer to the periodic current-epoch query.
type arbCurrent struct {
	d   ArbiterDecision
	err error
}

// defaultBoxSlice bounds how long the guest runs between looks at the ports
// (about a millisecond at interpreter speed); see also Standalone.
const defaultBoxSlice = DefaultSlice

// NewBox prepares a box: it reads the key, checks the guest image loads,
// and opens whatever ports and gate opts does not supply (the TAP on the
// LAN bridge, the gate at the TAP in DROP, the logging link), in the network
// namespace of the calling thread. Run starts it; Close undoes NewBox.
func NewBox(cfg *Config, opts BoxOptions) (b *Box, err error) {
	if cfg == nil {
		return nil, errors.New("new box: no config")
	}
	b = &Box{
		cfg: cfg, opts: opts, log: opts.Log,
		lanIn: make(chan []byte, 1024), logIn: make(chan []byte, 4096), lanPathIn: make(chan []byte, 256),
		arbIn: make(chan arbAnswer, 4), arbCur: make(chan arbCurrent, 1), ackReq: make(chan chan *Status), ctl: make(chan chan *Status), portErr: make(chan error, 4),
		stop: make(chan struct{}), running: make(chan struct{}),
		plan: ftcore.Start{Role: preferredRole(cfg), Epoch: max(opts.Epoch, 1)}, connectTimeout: opts.ConnectTimeout, schedule: opts.Announce,
		notify: opts.Notify,
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	b.log = b.log.With("box", cfg.Box.Name)
	if b.connectTimeout == 0 {
		b.connectTimeout = DefaultConnectTimeout
	}
	if b.schedule == nil {
		b.schedule = AnnounceSchedule
	}
	if b.notify == nil {
		b.notify = SdNotify
	}
	box := b // an error return sets b to nil before this runs
	defer func() {
		if err != nil {
			box.closeOwned()
		}
	}()
	if b.peerMAC, err = ParseUnicastMAC(cfg.LogLink.PeerMAC); err != nil {
		return nil, fmt.Errorf("new box: log_link.peer_mac: %w", err)
	}
	if b.guestMAC, err = ParseUnicastMAC(cfg.Guest.MAC); err != nil {
		return nil, fmt.Errorf("new box: guest.mac: %w", err)
	}
	if b.memSize, err = ParseSize(cfg.Guest.Memory); err != nil {
		return nil, fmt.Errorf("new box: guest.memory: %w", err)
	}
	b.guestIP = bootargsIP(cfg.Guest.Append)
	if b.psk, err = LoadKey(cfg.LogLink.KeyFile); err != nil {
		return nil, fmt.Errorf("new box: %w", err)
	}
	if len(opts.Image) == 0 {
		return nil, errors.New("new box: no guest image")
	}
	if _, err := b.newMachine(); err != nil {
		return nil, fmt.Errorf("new box: %w", err)
	}
	b.tapPort, b.logPort, b.gate = opts.TAP, opts.LogPort, opts.Gate
	b.logMAC, b.logMTU = opts.LogMAC, opts.LogMTU
	b.gateIf = cfg.LAN.TAP
	if b.tapPort == nil {
		t, err := tap.Open(tap.Config{Name: cfg.LAN.TAP, MTU: cfg.LAN.MTU, Bridge: cfg.LAN.Bridge})
		if err != nil {
			return nil, fmt.Errorf("new box: %w", err)
		}
		b.owned = append(b.owned, t)
		b.tapPort, b.gateIf = t, t.Name()
	}
	if b.gate == nil {
		g, err := bpf.AttachGate(b.gateIf, bpf.GateOptions{})
		if err != nil {
			return nil, fmt.Errorf("new box: %w", err)
		}
		b.owned = append(b.owned, g)
		b.gate = g
	}
	if b.logPort == nil {
		r, err := tap.OpenRaw(cfg.LogLink.Interface, tap.EtherTypeLog)
		if err != nil {
			return nil, fmt.Errorf("new box: %w", err)
		}
		b.owned = append(b.owned, r)
		b.logPort, b.logMAC = r, r.HardwareAddr()
		if mtu, err := r.MTU(); err == nil {
			b.logMTU = mtu
		}
	}
	if len(b.logMAC) != 6 {
		return nil, errors.New("new box: no source MAC for the logging link")
	}
	if err := b.openLANPath(); err != nil {
		return nil, fmt.Errorf("new box: %w", err)
	}
	if b.logMTU == 0 {
		b.logMTU = logwire.DefaultMTU
	}
	b.logMTU = min(max(b.logMTU, logwire.MinMTU), logwire.MaxMTU)
	return b, nil
}

// openLANPath sets up the second heartbeat path if the config names one:
// a raw port for EtherType 0x88B5 on lan.heartbeat_interface (unless
// opts.LANPath is given), frames unicast to lan.heartbeat_peer_mac.
func (b *Box) openLANPath() error {
	name := b.cfg.LAN.HeartbeatInterface
	if name == "" {
		return nil
	}
	var err error
	if b.lanPathPeer, err = ParseUnicastMAC(b.cfg.LAN.HeartbeatPeerMAC); err != nil {
		return fmt.Errorf("lan.heartbeat_peer_mac: %w", err)
	}
	b.lanPath, b.lanPathMAC = b.opts.LANPath, b.opts.LANPathMAC
	if b.lanPath == nil {
		if err := checkLANPathLink(name); err != nil {
			return err
		}
		r, err := tap.OpenRaw(name, tap.EtherTypeLog)
		if err != nil {
			return fmt.Errorf("lan.heartbeat_interface: %w", err)
		}
		b.owned = append(b.owned, r)
		b.lanPath, b.lanPathMAC = r, r.HardwareAddr()
	}
	if len(b.lanPathMAC) != 6 {
		return fmt.Errorf("lan.heartbeat_interface %s: no 6-byte source MAC", name)
	}
	if bytes.Equal(b.lanPathMAC, b.lanPathPeer) {
		return fmt.Errorf("lan.heartbeat_peer_mac %s is this box's own MAC on %s: want the peer's", b.lanPathPeer, name)
	}
	return nil
}

// checkLANPathLink refuses an interface that is a port of a bridge: frames
// arriving on a bridge port are handed to the bridge, so a socket bound to
// the port would send heartbeats but never receive the peer's. The
// bridge itself is the box's LAN interface then.
func checkLANPathLink(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("lan.heartbeat_interface %s: %w", name, err)
	}
	if m := l.Attrs().MasterIndex; m != 0 {
		master := fmt.Sprintf("interface #%d", m)
		if ml, err := netlink.LinkByIndex(m); err == nil {
			master = ml.Attrs().Name
		}
		return fmt.Errorf("lan.heartbeat_interface %s is a port of %s, which takes every frame arriving on it: name %s instead", name, master, master)
	}
	return nil
}

func (b *Box) closeOwned() {
	for i := len(b.owned) - 1; i >= 0; i-- {
		if err := b.owned[i].Close(); err != nil {
			b.log.Warn("close", "err", err)
		}
	}
	b.owned = nil
}

func (b *Box) newMachine() (*guestvm.Machine, error) {
	gc := guestvm.Config{MemSize: b.memSize, Bootargs: b.cfg.Guest.Append}
	copy(gc.MAC[:], b.guestMAC)
	m, err := guestvm.New(gc)
	if err != nil {
		return nil, fmt.Errorf("guest machine: %w", err)
	}
	if err := m.Load(b.opts.Image); err != nil {
		return nil, fmt.Errorf("load guest image %s: %w", b.cfg.Guest.Image, err)
	}
	return m, nil
}

func preferredRole(cfg *Config) ftcore.Role {
	if cfg.Box.PreferredRole == "primary" {
		return ftcore.RolePrimary
	}
	return ftcore.RoleBackup
}

// learnEpoch decides the role and epoch a starting box takes: --epoch
// overrides; else the arbiter's current-epoch query (ftcore.StartRole),
// retried until ctx ends or twice the arbiter timeout passed; without an
// arbiter (or an answer), epoch 1 in the configured role — a peer's hello of
// a later epoch still corrects it (a fresh primary yields to a live one, a
// backup follows its primary's epoch).
func (b *Box) learnEpoch(ctx context.Context) {
	if b.opts.Epoch != 0 {
		b.plan, b.learned = ftcore.Start{Role: preferredRole(b.cfg), Epoch: b.opts.Epoch}, "--epoch"
		return
	}
	q := b.opts.Arbiter
	if q == nil {
		b.plan, b.learned = ftcore.Start{Role: preferredRole(b.cfg), Epoch: 1}, "no arbiter to ask"
		return
	}
	timeout := max(b.cfg.Arbiter.Timeout.Duration, 100*time.Millisecond)
	deadline := time.Now().Add(2 * timeout)
	for {
		qctx, cancel := context.WithTimeout(ctx, timeout)
		d, err := q.Query(qctx, b.cfg.Box.Name)
		cancel()
		if err == nil {
			b.plan = ftcore.StartRole(b.cfg.Box.Name, b.cfg.Box.PreferredRole == "primary", d.Epoch, d.Holder)
			b.learned = fmt.Sprintf("arbiter: latest grant epoch %d to %q", d.Epoch, d.Holder)
			return
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			b.plan, b.learned = ftcore.Start{Role: preferredRole(b.cfg), Epoch: 1}, "arbiter did not answer: "+err.Error()
			b.log.Warn("cannot learn the epoch from the arbiter; starting in the configured role in epoch 1 (a live peer's hello corrects it)", "err", err)
			return
		}
	}
}

// newCore builds a fresh guest and the ftcore side as b.plan says.
func (b *Box) newCore() error {
	m, err := b.newMachine()
	if err != nil {
		return err
	}
	ep, err := logwire.NewEndpoint(b.psk, logwire.Options{MTU: b.logMTU})
	if err != nil {
		return fmt.Errorf("logging link endpoint: %w", err)
	}
	slice := b.opts.Slice
	if slice == 0 {
		slice = defaultBoxSlice
	}
	cc := ftcore.Config{
		Name: b.cfg.Box.Name, Epoch: b.plan.Epoch, Endpoint: ep, Rand: rand.Reader,
		HeartbeatInterval: b.cfg.Heartbeat.Interval.Duration, Timeout: b.cfg.Heartbeat.Timeout.Duration,
		Slice: slice, ConnectTimeout: b.connectTimeout, Join: b.plan.Join,
		SecondPath: b.lanPath != nil,
		StartClaim: b.plan.Claim && b.opts.Arbiter != nil, ColdStart: b.plan.Cold,
	}
	var n node
	if b.plan.Role == ftcore.RolePrimary {
		n, err = ftcore.NewPrimary(cc, GuestMachine{m})
	} else {
		n, err = ftcore.NewBackup(cc, GuestMachine{m})
	}
	if err != nil {
		return fmt.Errorf("replication core: %w", err)
	}
	if b.node != nil {
		st := b.node.Status()
		for i, v := range st.Verdicts {
			b.prevVerd[i] += v
		}
		for i, v := range st.PeerGaps {
			b.prevGaps[i] += v
		}
		b.prevGapMax = max(b.prevGapMax, st.PeerGapMax)
		b.peerEver = max(b.peerEver, st.PeerLastHeard)
	}
	b.node, b.m, b.role = n, m, n.Role()
	b.mipsIC = 0
	b.connecting = true
	return nil
}

// rejoin rebuilds the core as a joining backup of the live primary of
// epoch: a fresh guest that takes the primary's snapshot. Called when a
// fresh primary heard a live one of a later epoch (EventYield), or when the
// arbiter refused this box the epoch its peer now holds.
func (b *Box) rejoin(now time.Duration, epoch uint64, why string) {
	b.log.Info("rejoining as backup (state transfer)", "epoch", epoch, "why", why)
	b.plan = ftcore.Start{Role: ftcore.RoleBackup, Epoch: epoch, Join: true}
	b.rejoins++
	if err := b.newCore(); err != nil {
		b.warn(now, "rejoin", err)
		return
	}
	b.startedAt, b.joinedAt = now, now
	if err := b.setGate(false); err != nil {
		b.log.Error("gate", "err", err)
	}
	_ = b.notify("STATUS=" + b.sdStatus())
}

// now is the loop's monotonic clock; it starts at 1 ms so that no event
// happens at ftcore's "never" (0).
func (b *Box) now() time.Duration { return time.Since(b.start) + time.Millisecond }

// Run drives the box until ctx ends, Close is called or a port fails. It
// returns nil on a requested stop.
func (b *Box) Run(ctx context.Context) error {
	if b.runStarted.Swap(true) {
		return errors.New("box: Run called twice")
	}
	defer close(b.running)
	b.start, b.startWall = time.Now(), time.Now()
	b.learnEpoch(ctx)
	if err := b.newCore(); err != nil {
		return err
	}
	b.startedAt = b.now()
	if b.plan.Join {
		b.joinedAt = b.startedAt
	}
	if b.connectTimeout > 0 {
		b.connectBy = b.now() + b.connectTimeout
	}
	// DROP until this box releases output: a primary opens the gate once
	// its backup is connected (nothing is released before its ack).
	b.gatePass = true
	if err := b.setGate(false); err != nil {
		return fmt.Errorf("box: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); b.portFailed(readPort(ctx, b.tapPort, b.lanIn, "tap", nil)) }()
	go func() { defer wg.Done(); b.portFailed(readPort(ctx, b.logPort, b.logIn, "log link", &b.logInShort)) }()
	if b.lanPath != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The second path is an extra: losing it must not stop the
			// box. Status says so loudly instead.
			if err := readPort(ctx, b.lanPath, b.lanPathIn, "LAN heartbeat path", &b.logInShort); err != nil {
				b.lanPathDown.Store(&err)
				b.log.Error("second heartbeat path stopped: a logging-link cut would now cost a failover", "interface", b.cfg.LAN.HeartbeatInterface, "err", err)
			}
		}()
	}
	defer func() {
		cancel()
		b.closePorts()
		wg.Wait()
	}()
	b.log.Info("box running", "role", b.role, "epoch", b.plan.Epoch, "joining", b.plan.Join, "epoch_from", b.learned, "arbiter", b.opts.Arbiter != nil,
		"second_path", b.cfg.LAN.HeartbeatInterface)
	_ = b.notify("READY=1\nSTATUS=" + b.sdStatus())
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	const tick = 250 * time.Millisecond
	nextTick := b.now()
	for {
		now := b.now()
		if err := b.drain(ctx, now); err != nil {
			return b.finish(err)
		}
		// Step when due (ftcore's Deadline covers whatever an input made
		// due, the first heartbeat after a handshake included).
		if d := b.node.Deadline(); d != 0 && now >= d {
			if err := b.node.Step(now); err != nil {
				b.stepErrs++
				b.warn(now, "step", err)
			}
		}
		b.flush(now)
		b.drainConsole()
		if n := b.ann.take(now); n > 0 {
			b.announce(n)
		}
		if now >= nextTick {
			b.periodic(now)
			nextTick = now + tick
		}
		d := b.node.Deadline()
		if d != 0 && d <= b.now() {
			continue
		}
		wake := nextTick
		if d != 0 {
			wake = min(wake, d)
		}
		if a := b.ann.next(); a != 0 {
			wake = min(wake, a)
		}
		timer.Reset(max(wake-b.now(), 0))
		select {
		case <-ctx.Done():
			return b.finish(nil)
		case <-b.stop:
			return b.finish(nil)
		case err := <-b.portErr:
			return b.finish(err)
		case f := <-b.lanIn:
			b.onLAN(b.now(), f)
		case f := <-b.logIn:
			b.onLog(b.now(), f)
		case f := <-b.lanPathIn:
			b.onLANPath(b.now(), f)
		case r := <-b.arbIn:
			b.onArbiter(b.now(), r)
		case reply := <-b.ctl:
			reply <- b.snapshot(b.now())
		case r := <-b.arbCur:
			b.onArbiterCurrent(b.now(), r)
		case reply := <-b.ackReq:
			reply <- b.ack(b.now())
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

func (b *Box) finish(err error) error {
	_ = b.notify("STOPPING=1")
	if err != nil {
		b.log.Error("box stopped", "err", err)
		return err
	}
	b.log.Info("box stopped")
	return nil
}

// drain handles what arrived without blocking, a bounded number of items so
// the guest keeps running under a flood.
func (b *Box) drain(ctx context.Context, now time.Duration) error {
	for range 512 {
		select {
		case <-ctx.Done():
			return nil
		case err := <-b.portErr:
			return err
		case f := <-b.lanIn:
			b.onLAN(now, f)
		case f := <-b.logIn:
			b.onLog(now, f)
		case f := <-b.lanPathIn:
			b.onLANPath(now, f)
		case r := <-b.arbIn:
			b.onArbiter(now, r)
		case reply := <-b.ctl:
			reply <- b.snapshot(now)
		case r := <-b.arbCur:
			b.onArbiterCurrent(now, r)
		case reply := <-b.ackReq:
			reply <- b.ack(now)
		default:
			return nil
		}
	}
	return nil
}

// readPort is the one reader of a port: it only moves frames (each a fresh
// copy the receiver owns). Runts are counted in short, if given, and
// skipped, as are truncated frames. It returns nil once the port is closed
// or ctx ends, else the read error.
func readPort(ctx context.Context, p tap.Port, out chan<- []byte, what string, short *atomic.Uint64) error {
	buf := make([]byte, 65536)
	for {
		n, err := p.ReadFrame(buf)
		if errors.Is(err, tap.ErrTruncated) {
			continue
		}
		if err != nil {
			if errors.Is(err, tap.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read %s: %w", what, err)
		}
		if short != nil && n < 14 {
			short.Add(1)
			continue
		}
		f := append([]byte(nil), buf[:n]...)
		select {
		case out <- f:
		case <-ctx.Done():
			return nil
		}
	}
}

// portFailed stops the box on a failed reader of the TAP or the logging link.
func (b *Box) portFailed(err error) {
	if err == nil {
		return
	}
	select {
	case b.portErr <- err:
	default:
	}
}

func (b *Box) onLAN(now time.Duration, f []byte) {
	b.lanInCount.Add(1)
	if len(f) >= 12 && bytes.Equal(f[6:12], b.guestMAC) {
		// The guest's MAC arriving from the LAN: normal on a backup (the
		// primary's outputs), a second live copy if this box is live.
		if b.isLive() && b.gatePass && now-b.liveAt > time.Second {
			b.foreignGuest.Add(1)
			b.foreignAt = now
		}
		if b.role != ftcore.RoleBackup {
			return // never feed the guest its own frames
		}
	}
	if len(f) > guestvm.MaxFrame {
		b.lanInDropCount.Add(1) // does not fit the guest's MTU: never logged
		return
	}
	if b.lanPath != nil && len(f) >= 14 && binary.BigEndian.Uint16(f[12:14]) == tap.EtherTypeLog {
		// Our own second path's frames, flooded by the bridge before it
		// learned the peer's port: never the guest's input.
		b.lanInDropCount.Add(1)
		return
	}
	if err := b.node.OnLANFrame(now, f); err != nil {
		b.lanInDropCount.Add(1)
	}
}

func (b *Box) onLog(now time.Duration, f []byte) {
	b.logInCount.Add(1)
	if len(f) < 14 || binary.BigEndian.Uint16(f[12:14]) != tap.EtherTypeLog {
		b.logInShort.Add(1)
		return
	}
	var before uint64
	if b.lanPath != nil {
		before = b.node.Status().FramesReceived
	}
	if err := b.node.OnLogFrame(now, f[14:]); err != nil {
		var ve *logwire.VersionError
		if errors.As(err, &ve) {
			// An upgrade of one box only: say so once, loudly, and in status.
			if b.peerVersion != ve.Version {
				b.log.Error("peer speaks another logging-link protocol version; upgrade both boxes to the same ftbox",
					"peer_version", ve.Version, "our_version", logwire.Version)
			}
			b.peerVersion, b.peerVersionAt = ve.Version, now
		}
		b.log.Debug("log frame refused", "err", err)
	}
	if b.lanPath == nil && b.rttProbe.pos == 0 {
		return
	}
	st := b.node.Status()
	if b.lanPath != nil && st.FramesReceived > before {
		b.logHeard = now // which path was silent, for the failover record
	}
	if b.rttProbe.pos != 0 {
		if st.LogAcked >= b.rttProbe.pos {
			s := now - b.rttProbe.at
			if b.rtt == 0 {
				b.rtt = s
			} else {
				b.rtt = (7*b.rtt + s) / 8
			}
			b.rttProbe.pos = 0
		}
	}
}

// onLANPath feeds a frame from the second heartbeat path to ftcore, which
// takes only heartbeats there (never log: OnLogFrame is the logging link's).
func (b *Box) onLANPath(now time.Duration, f []byte) {
	b.lanPathInCount.Add(1)
	if len(f) < 14 || binary.BigEndian.Uint16(f[12:14]) != tap.EtherTypeLog {
		b.logInShort.Add(1)
		return
	}
	before := b.node.Status().FramesReceived
	err := b.node.OnPeerLANFrame(now, f[14:])
	if b.node.Status().FramesReceived > before { // authentic: ftcore counts only those
		if b.lanPathHeard == 0 {
			b.log.Info("second heartbeat path up: peer heard on the LAN", "interface", b.cfg.LAN.HeartbeatInterface, "peer", b.lanPathPeer.String())
		}
		b.lanPathHeard = now
		b.lanPathAuth++
	}
	if err != nil {
		b.log.Debug("LAN path frame refused", "err", err)
	}
}

func (b *Box) onArbiter(now time.Duration, r arbAnswer) {
	b.arbBusy = false
	if r.won {
		// Hear what the logging link holds before acting on a grant: a
		// peer's hello saying it is live in that epoch already (an
		// arbiter that lost its state grants twice) makes ftcore refuse it.
		b.drainLog(now)
	}
	switch {
	case r.err != nil:
		b.arbLast = "error: " + r.err.Error()
		b.warn(now, "arbiter", r.err)
	case r.won:
		b.arbLast = fmt.Sprintf("won epoch %d", r.epoch)
		if r.epoch >= b.latestEpoch {
			b.latestEpoch, b.latestWho = r.epoch, b.cfg.Box.Name
		}
		b.log.Info("arbiter granted epoch", "epoch", r.epoch)
	default:
		b.arbLast = fmt.Sprintf("lost epoch %d", r.epoch)
		if r.holder != "" {
			b.arbLast += fmt.Sprintf(" (latest grant: epoch %d to %s)", r.latest, r.holder)
		}
		b.peerEpoch = max(b.peerEpoch, r.epoch, r.latest)
		b.arbLost = r.epoch
		if r.holder != "" && r.latest >= b.latestEpoch {
			b.latestEpoch, b.latestWho = r.latest, r.holder
		}
		b.log.Warn("arbiter refused epoch: the peer holds it", "epoch", r.epoch)
	}
	if err := b.node.OnArbiterReply(now, r.epoch, r.won, r.err); err != nil {
		b.warn(now, "arbiter reply", err)
	}
	if r.err == nil {
		b.arbClaim = 0
	}
}

// drainLog takes the logging-link frames waiting in the reader's channel.
func (b *Box) drainLog(now time.Duration) {
	for range cap(b.logIn) {
		select {
		case f := <-b.logIn:
			b.onLog(now, f)
		default:
			return
		}
	}
}

// queryInterval is the period of the current-epoch query: how soon a box
// learns that the arbiter is unreachable (no failover possible), behind
// (it lost its state: the live box tells it its epoch again) or names a
// later epoch of the peer's (this box was superseded).
const queryInterval = time.Second

// queryArbiter starts the periodic current-epoch query, one at a time.
func (b *Box) queryArbiter(now time.Duration) {
	q := b.opts.Arbiter
	if q == nil || b.queryBusy || now < b.queryAt {
		return
	}
	b.queryBusy, b.queryAt = true, now+queryInterval
	timeout := b.cfg.Arbiter.Timeout.Duration
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		d, err := q.Query(ctx, b.cfg.Box.Name)
		select {
		case b.arbCur <- arbCurrent{d, err}:
		case <-b.running:
		}
	}()
}

func (b *Box) onArbiterCurrent(now time.Duration, r arbCurrent) {
	b.queryBusy = false
	if r.err != nil {
		if b.queryErr == nil {
			b.log.Warn("arbiter unreachable: no failover is possible until it answers", "err", r.err)
		}
		b.queryErr = r.err
		return
	}
	if b.queryErr != nil {
		b.log.Info("arbiter answers again", "latest_epoch", r.d.Epoch, "holder", r.d.Holder)
	}
	b.queryErr, b.queryOK = nil, now
	b.latestEpoch, b.latestWho = r.d.Epoch, r.d.Holder
	if b.isLive() && !b.connecting && r.d.Epoch < b.node.Epoch() {
		b.log.Error("the arbiter's latest grant is below our epoch: it lost its state; telling it our epoch again",
			"arbiter_epoch", r.d.Epoch, "our_epoch", b.node.Epoch())
	}
	b.node.OnArbiterCurrent(now, r.d.Epoch, r.d.Holder)
}

// ack clears the alarms that wait for an operator; it runs on the loop.
func (b *Box) ack(now time.Duration) *Status {
	if b.coldAlarm != nil || b.rivalAlarm != nil {
		b.log.Info("alarms acknowledged", "cold_start", b.coldAlarm != nil, "rival", b.rivalAlarm != nil)
	}
	b.coldAlarm, b.rivalAlarm = nil, nil
	return b.snapshot(now)
}

// Ack acknowledges the standing alarms (a cold start, a rival primary) and
// returns the status after. It fails if the loop is not running.
func (b *Box) Ack(ctx context.Context) (*Status, error) { return b.ask(ctx, b.ackReq, "ack") }

// ask hands the loop a reply channel on req and waits for its status.
func (b *Box) ask(ctx context.Context, req chan<- chan *Status, what string) (*Status, error) {
	reply := make(chan *Status, 1)
	select {
	case req <- reply:
	case <-b.running:
		return nil, errors.New("box: not running")
	case <-ctx.Done():
		return nil, fmt.Errorf("box %s: %w", what, ctx.Err())
	}
	select {
	case s := <-reply:
		return s, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("box %s: %w", what, ctx.Err())
	}
}

// flush writes the outbox to the ports. Role changes are acted on first,
// so that the gate passes before released outputs reach the TAP.
func (b *Box) flush(now time.Duration) {
	ob := b.node.Outbox()
	// Failure detection does not run before the peer was first heard (or
	// ConnectTimeout ran out): ftcore's rule, so a peer started late never
	// causes a failover.
	if b.connecting && b.node.Status().PeerLastHeard != 0 {
		b.connecting = false
		b.connectedAt = now
		b.log.Info("peer connected", "role", b.role, "epoch", b.node.Epoch())
		if b.role == ftcore.RolePrimary {
			b.liveAt = now
			if err := b.setGate(true); err != nil {
				b.log.Error("gate", "err", err)
			}
		}
	}
	for _, e := range ob.Events {
		if e.Kind == ftcore.EventYield {
			// The peer is live in a later epoch (or the one this box was
			// claiming): whatever this box held is superseded (nothing it
			// released was unacknowledged by the peer); become the peer's
			// backup.
			b.yields++
			why := fmt.Sprintf("the peer is live in epoch %d (heard on the logging link or named by the arbiter)", e.Epoch)
			if f := b.failover; f != nil && f.GoLiveMS < 0 {
				f.Result, f.ToEpoch = "yielded: "+why+"; rejoining as its backup", e.Epoch
			}
			b.log.Warn("superseded: rejoining as the peer's backup", "epoch", e.Epoch, "was", b.role)
			b.rejoin(now, e.Epoch, why)
			return
		}
	}
	for _, e := range ob.Events {
		b.onEvent(now, e)
	}
	for _, f := range ob.LAN {
		if !b.gatePass {
			// Cannot happen (a releasing role flips the gate first); a
			// dropped frame is safer than a frame past a closed gate.
			b.warn(now, "release", errors.New("output released while the gate drops"))
		}
		b.learnIP(f)
		if err := b.tapPort.WriteFrame(f); err != nil {
			b.portErrs++
			b.warn(now, "tap write", err)
			continue
		}
		b.lanOut++
	}
	for _, f := range ob.Replica {
		b.learnIP(f)
		if err := b.tapPort.WriteFrame(f); err != nil {
			b.portErrs++
			continue
		}
		b.replicaOut++
	}
	for _, f := range ob.Log {
		if err := b.writeLog(f); err != nil {
			b.portErrs++
			b.warn(now, "log write", err)
		}
	}
	for _, f := range ob.PeerLAN {
		if b.lanPath == nil {
			break // ftcore emits PeerLAN only with SecondPath
		}
		if err := b.writeLANPath(f); err != nil {
			b.portErrs++
			b.warn(now, "LAN path write", err)
		}
	}
	for _, r := range ob.Arbiter {
		b.askArbiter(r)
	}
	if e := b.pendingRejoin; e != 0 {
		b.pendingRejoin = 0
		b.rejoin(now, e, fmt.Sprintf("the arbiter gave epoch %d to the peer", e))
		return
	}
	if b.rttProbe.pos == 0 {
		if st := b.node.Status(); st.LogSent > st.LogAcked {
			b.rttProbe.pos, b.rttProbe.at = st.LogSent, now
		}
	}
}

func (b *Box) writeLog(payload []byte) error {
	f := make([]byte, 14+len(payload))
	copy(f[0:6], b.peerMAC)
	copy(f[6:12], b.logMAC)
	binary.BigEndian.PutUint16(f[12:14], tap.EtherTypeLog)
	copy(f[14:], payload)
	if err := b.logPort.WriteFrame(f); err != nil {
		return err
	}
	b.logOut++
	b.logOutB += uint64(len(f))
	return nil
}

func (b *Box) writeLANPath(payload []byte) error {
	f := make([]byte, 14+len(payload))
	copy(f[0:6], b.lanPathPeer)
	copy(f[6:12], b.lanPathMAC)
	binary.BigEndian.PutUint16(f[12:14], tap.EtherTypeLog)
	copy(f[14:], payload)
	if err := b.lanPath.WriteFrame(f); err != nil {
		return err
	}
	b.lanPathOut++
	return nil
}

func (b *Box) learnIP(f []byte) {
	if ip := learnGuestIP(f, b.guestMAC); ip != nil && !ip.Equal(b.guestIP) {
		b.guestIP = ip
	}
}

func (b *Box) isLive() bool {
	return b.role == ftcore.RolePrimary || b.role == ftcore.RoleUnprotected
}

func (b *Box) onEvent(now time.Duration, e ftcore.Event) {
	switch e.Kind {
	case ftcore.EventRoleChanged:
		old := b.role
		b.role = e.Role
		b.log.Info("role changed", "from", old, "to", e.Role, "epoch", e.Epoch)
		live := b.isLive() && !(e.Role == ftcore.RolePrimary && b.connecting)
		if live && !b.gatePass {
			b.liveAt = now
		}
		if err := b.setGate(live); err != nil {
			b.log.Error("gate", "err", err)
		}
		if f := b.failover; f != nil && f.GoLiveMS < 0 {
			switch e.Role {
			case ftcore.RoleUnprotected:
				f.ToEpoch = e.Epoch
				f.GoLiveMS = ms(now - b.failDetect)
				if f.Result == "waiting for the arbiter" || f.Result == "going live" {
					if old == ftcore.RoleGoingLive {
						f.Result = "went live"
					} else {
						f.Result = "went on alone (backup lost)"
					}
				}
			case ftcore.RoleHalted:
				f.ToEpoch = max(b.arbClaim, b.arbLost) // arbClaim is cleared once the answer came
				f.Result = "halted: the arbiter gave the epoch to the peer"
				if b.diverged {
					f.Result = "halted: diverged replica must not take over"
				} else {
					f.Result += "; rejoining as its backup"
				}
			case ftcore.RoleGoingLive:
				f.Result = "going live"
			}
		}
		_ = b.notify("STATUS=" + b.sdStatus())
		if e.Role == ftcore.RoleHalted && !b.diverged && b.peerEpoch != 0 {
			// The peer holds the epoch we claimed: it is live (or will
			// be). Never preempt it: rejoin as its backup.
			b.pendingRejoin = b.peerEpoch
		}
	case ftcore.EventSynced:
		if st := b.node.Status(); st.Role == ftcore.RoleBackup && b.joinedAt != 0 {
			b.syncedIn = now - b.joinedAt
			b.joinedAt = 0
			b.log.Info("rejoined: state transfer done, protected", "epoch", e.Epoch, "snapshot_bytes", st.SnapshotBytes,
				"transfer", (st.SyncDone - st.SyncStarted).Round(time.Millisecond), "start_to_protected", b.syncedIn.Round(time.Millisecond))
		} else {
			b.log.Info("backup in sync: protected again", "epoch", e.Epoch, "snapshot_bytes", st.SnapshotBytes,
				"transfer", (st.SyncDone - st.SyncStarted).Round(time.Millisecond))
		}
	case ftcore.EventPeerLost:
		st := b.node.Status()
		if st.Role == ftcore.RoleBackup && st.Syncing {
			b.log.Warn("primary fell silent before the state transfer completed; waiting for it again", "epoch", e.Epoch)
			return
		}
		b.failDetect = now
		heard := st.PeerLastHeard
		if heard == 0 {
			heard = time.Millisecond // never heard: detection counts from the start
		}
		reason := fmt.Sprintf("peer silent for %v (heartbeat timeout %v)", (now - heard).Round(time.Millisecond), b.cfg.Heartbeat.Timeout.Duration)
		timeout := b.cfg.Heartbeat.Timeout.Duration
		switch {
		case b.lanPath != nil && b.logHeard != 0 && b.logHeard < heard && now-b.logHeard >= timeout && now-b.lanPathHeard < timeout:
			// Only the logging link fell silent (a primary gives up its
			// backup then, whatever the LAN says): detection counts from
			// the log link's last frame.
			reason = fmt.Sprintf("logging link silent for %v (heartbeat timeout %v); peer still heard on the LAN %v ago",
				(now - b.logHeard).Round(time.Millisecond), timeout, (now - b.lanPathHeard).Round(time.Millisecond))
			heard = b.logHeard
		case st.PeerLastHeard != 0 && now-heard < timeout:
			// Heard, yet given up: the primary's log went unacknowledged
			// for 2×Timeout (ftcore: a link that carries one way only).
			reason = fmt.Sprintf("peer heard %v ago but the log went unacknowledged for 2× the heartbeat timeout (%v): the logging link loses too much, or carries one way only",
				(now - heard).Round(time.Millisecond), timeout)
		}
		if st.PeerLastHeard == 0 {
			reason = fmt.Sprintf("peer never heard within the connect timeout (%v)", b.connectTimeout)
		}
		b.failover = &FailoverStatus{
			At:          b.startWall.Add(now - time.Millisecond),
			Reason:      reason,
			Result:      "waiting for the arbiter",
			FromEpoch:   e.Epoch,
			DetectionMS: ms(now - heard),
			GoLiveMS:    -1,
		}
		if b.opts.Arbiter == nil {
			b.noArbLoud = true
			b.failover.Result = "stuck: no arbiter configured, will not go live automatically"
			b.log.Error("peer lost and no arbiter is configured: this box will NOT go live automatically", "epoch", e.Epoch)
		} else {
			b.log.Warn("peer lost", "silent", now-heard, "epoch", e.Epoch)
		}
	case ftcore.EventAnnounce:
		// ftcore reports Announce together with the role change to
		// UNPROTECTED; make sure the gate passes before the LAN frames of
		// this same outbox go out.
		if err := b.setGate(true); err != nil {
			b.log.Error("gate", "err", err)
		}
		if b.liveAt < b.failDetect || b.liveAt == 0 {
			b.liveAt = now
		}
		st := b.node.Status()
		if f := b.failover; f != nil {
			f.Released = st.OutputsReleased
		}
		b.ann.start(now, b.schedule)
		b.log.Info("went live", "epoch", e.Epoch, "icount", e.ICount, "released", st.OutputsReleased)
	case ftcore.EventColdStart:
		b.coldStarts++
		detail := fmt.Sprintf("the guest started from blank in epoch %d: its state was lost (both boxes failed, or the box holding the state died before its peer synced)", e.Epoch)
		b.coldAlarm = &AlarmStatus{At: b.startWall.Add(now - time.Millisecond), Epoch: e.Epoch, Detail: detail}
		b.log.Error("COLD START: "+detail+"; acknowledge with ftbox ack", "epoch", e.Epoch)
	case ftcore.EventRival:
		b.rivals++
		detail := fmt.Sprintf("a second primary of epoch %d is live on the logging link (the arbiter granted the epoch twice: did it lose its state?); holding output until the arbiter says which box holds the epoch", e.Epoch)
		b.rivalAlarm = &AlarmStatus{At: b.startWall.Add(now - time.Millisecond), Epoch: e.Epoch, Detail: detail}
		b.log.Error("SPLIT BRAIN: "+detail, "epoch", e.Epoch)
	case ftcore.EventDivergence:
		b.diverged = true
		b.log.Error("divergence: replica state differs from the primary's", "icount", e.ICount,
			"local", fmt.Sprintf("%x", e.Local[:8]), "remote", fmt.Sprintf("%x", e.Remote[:8]))
	case ftcore.EventGuestExit:
		k, code := b.m.Exit()
		b.log.Warn("guest exited", "kind", k, "code", code, "icount", e.ICount)
	}
}

func (b *Box) setGate(pass bool) error {
	if pass == b.gatePass && b.gateErr == nil {
		return nil
	}
	if err := b.gate.SetPass(pass); err != nil {
		b.gateErr = err
		return err
	}
	b.gatePass, b.gateErr = pass, nil
	return nil
}

func (b *Box) askArbiter(r ftcore.ArbiterRequest) {
	b.arbClaim = r.Epoch
	if b.opts.Arbiter == nil {
		b.noArbLoud = true
		return
	}
	if b.arbBusy {
		return // ftcore asks again; one call at a time
	}
	b.arbBusy = true
	b.arbReqs++
	timeout := b.cfg.Arbiter.Timeout.Duration
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		d, err := b.opts.Arbiter.Claim(ctx, r.Epoch, r.Who)
		a := arbAnswer{epoch: r.Epoch, won: d.Won, err: err, latest: d.Epoch, holder: d.Holder}
		select {
		case b.arbIn <- a:
		case <-b.running:
		}
	}()
}

func (b *Box) announce(rounds int) {
	for range rounds {
		for _, f := range announceFrames(b.guestMAC, b.guestIP) {
			if err := b.tapPort.WriteFrame(f); err != nil {
				b.portErrs++
				continue
			}
			b.announced++
		}
	}
}

func (b *Box) drainConsole() {
	if c := b.m.TakeConsole(); len(c) > 0 && b.opts.Console != nil {
		_, _ = b.opts.Console.Write(c)
	}
}

func (b *Box) periodic(now time.Duration) {
	b.queryArbiter(now)
	ic := b.m.ICount()
	if b.mipsAt != 0 && now > b.mipsAt && ic >= b.mipsIC {
		b.mips = float64(ic-b.mipsIC) / float64((now-b.mipsAt)/time.Microsecond+1)
	}
	b.mipsIC, b.mipsAt = ic, now
}

// warn logs at most one warning per second.
func (b *Box) warn(now time.Duration, what string, err error) {
	if now-b.lastWarn < time.Second && b.lastWarn != 0 {
		b.log.Debug(what, "err", err)
		return
	}
	b.lastWarn = now
	b.log.Warn(what, "err", err)
}

func (b *Box) sdStatus() string {
	return fmt.Sprintf("%s epoch %d", b.role, b.node.Epoch())
}

// Status asks the loop for a snapshot. It fails if the loop is not running.
func (b *Box) Status(ctx context.Context) (*Status, error) { return b.ask(ctx, b.ctl, "status") }

// Close stops Run (if it runs), detaches the gate and closes the ports
// NewBox opened. It sends nothing to the peer: to the peer a closed box is
// a failed one.
func (b *Box) Close() error {
	b.stopOnce.Do(func() { close(b.stop) })
	if b.runStarted.Load() {
		<-b.running
	}
	b.closePorts()
	return nil
}

func (b *Box) closePorts() {
	b.closeOnce.Do(func() {
		// The gate first: a TAP closed under a PASS gate must not let
		// anything more out; then the devices.
		if len(b.owned) == 0 {
			_ = b.tapPort.Close()
			_ = b.logPort.Close()
			if b.lanPath != nil {
				_ = b.lanPath.Close()
			}
			return
		}
		b.closeOwned()
		_ = b.tapPort.Close()
		_ = b.logPort.Close()
		if b.lanPath != nil {
			_ = b.lanPath.Close()
		}
	})
}

// snapshot builds the Status; it runs on the loop goroutine.
func (b *Box) snapshot(now time.Duration) *Status {
	st := b.node.Status()
	s := &Status{
		SchemaVersion: StatusSchemaVersion,
		Box:           b.cfg.Box.Name,
		Time:          time.Now().UTC(),
		UptimeMS:      ms(now - time.Millisecond),
		Role:          st.Role.String(),
		Epoch:         st.Epoch,
	}
	timeout := b.cfg.Heartbeat.Timeout.Duration
	connected := st.PeerLastHeard != 0 && now-st.PeerLastHeard <= timeout && (st.Role == ftcore.RolePrimary || st.Role == ftcore.RoleBackup)
	s.Arbiter = ArbiterInfo{
		Configured: b.opts.Arbiter != nil, Address: b.cfg.Arbiter.Address, Requests: b.arbReqs,
		InFlight: b.arbBusy, LastResult: b.arbLast, Claiming: b.arbClaim,
	}
	if s.Arbiter.Configured && s.Arbiter.Address == "" {
		s.Arbiter.Address = "(in-process)"
	}
	s.Arbiter.Reachable = b.queryOK != 0 && b.queryErr == nil
	s.Arbiter.LastAnswerAgoMS = -1
	if b.queryOK != 0 {
		s.Arbiter.LastAnswerAgoMS = ms(now - b.queryOK)
	}
	if b.queryErr != nil {
		s.Arbiter.QueryError = b.queryErr.Error()
	}
	s.Arbiter.LatestEpoch, s.Arbiter.LatestHolder = b.latestEpoch, b.latestWho
	if b.coldAlarm != nil {
		a := *b.coldAlarm
		s.ColdStart = &a
	}
	if b.rivalAlarm != nil {
		a := *b.rivalAlarm
		s.Rival = &a
	}
	s.Peer = PeerStatus{
		Interface: b.cfg.LogLink.Interface, MAC: b.peerMAC.String(), Connected: connected, LinkUp: connected,
		LastHeardAgoMS: -1, RTTMS: -1, ICount: st.PeerICount, EpochAtLeast: b.peerEpoch,
	}
	if st.PeerLastHeard != 0 {
		s.Peer.LastHeardAgoMS = ms(now - st.PeerLastHeard)
	}
	s.Peer.GapMaxMS = ms(max(st.PeerGapMax, b.prevGapMax))
	var cum uint64
	for i, n := range st.PeerGaps {
		cum += n + b.prevGaps[i]
		le := -1.0
		if i < len(ftcore.GapBuckets) {
			le = ms(ftcore.GapBuckets[i])
		}
		s.Peer.Gaps = append(s.Peer.Gaps, GapBucket{LeMS: le, Count: cum})
	}
	if b.rtt != 0 {
		s.Peer.RTTMS = ms(b.rtt)
	}
	s.Replication = ReplicationStatus{
		LogAppended: st.LogAppended, LogSent: st.LogSent, LogAcked: st.LogAcked, LogDelivered: st.LogDelivered,
		LogApplied: st.LogApplied, LagEntries: st.LagEntries, LagInstructions: st.LagInstr,
		OutputsProduced: st.OutputsProduced, OutputsReleased: st.OutputsReleased, Watermark: st.Watermark,
		OutputsHeld: st.OutputsHeld, OldestHeldAgeMS: -1, OldestUnackedAgeMS: -1, OutputsDropped: st.OutputsDropped, InputsDropped: st.InputsDropped, FlowStalls: st.FlowStalls,
		LogEntryBytes: st.LogEntryBytes, InputBytes: st.InputBytes,
		DigestsSent: st.DigestsSent, DigestsCompared: st.DigestsCompared, DigestMismatch: st.DigestMismatches,
		Syncing: st.Syncing, SyncBytes: st.SyncBytes, SyncTotal: st.SyncTotal, SyncTransfers: st.SyncTransfers,
		SyncAborts: st.SyncAborts, SnapshotBytes: st.SnapshotBytes, Rejoins: b.rejoins,
	}
	if st.SyncDone != 0 && st.SyncStarted != 0 {
		s.Replication.SyncTransferMS = ms(st.SyncDone - st.SyncStarted)
	}
	if b.syncedIn != 0 {
		s.Replication.RejoinProtectMS = ms(b.syncedIn)
	}
	if st.LagEntries > 0 {
		// At the guest's recent speed; an idle guest's lag is the
		// entries', not worth more than a nominal 1 MIPS.
		s.Replication.LagMS = float64(st.LagInstr) / (max(b.mips, 1) * 1000)
	}
	if st.OutputsHeld > 0 && st.OldestHeld != 0 {
		s.Replication.OldestHeldAgeMS = ms(now - st.OldestHeld)
	}
	if st.OldestUnacked != 0 && now >= st.OldestUnacked {
		s.Replication.OldestUnackedAgeMS = ms(now - st.OldestUnacked)
	}
	kind, _ := b.m.Exit()
	s.Guest = GuestStatus{
		Running: kind == guestvm.ExitNone && st.Role != ftcore.RoleHalted, Exit: kind.String(),
		ICount: st.ICount, MIPS: b.mips, MAC: b.guestMAC.String(),
	}
	if b.guestIP != nil {
		s.Guest.IP = b.guestIP.String()
	}
	s.Gate = GateStatus{Interface: b.gateIf, Hook: b.gate.Hook(), Pass: b.gatePass}
	if gs, err := b.gate.Stats(); err == nil {
		s.Gate.PassedFrames, s.Gate.DroppedFrames = gs.PassedFrames, gs.DroppedFrames
	} else {
		s.Gate.Error = err.Error()
	}
	if b.gateErr != nil {
		s.Gate.Error = b.gateErr.Error()
	}
	rej := map[string]uint64{}
	for v := logwire.Verdict(1); v < logwire.NumVerdicts; v++ {
		rej[v.String()] = st.Verdicts[v] + b.prevVerd[v]
	}
	rej["not_log_frame"] = b.logInShort.Load()
	s.Counters = CounterStatus{
		LANFramesIn: b.lanInCount.Load(), LANFramesOut: b.lanOut, ReplicaFramesOut: b.replicaOut,
		LogFramesSent: b.logOut, LogFramesReceived: st.FramesReceived, LogFramesRejected: rej, LogBytesSent: b.logOutB,
		Retransmits: st.Retransmits, FastRetransmits: st.FastRetransmits, Duplicates: st.Duplicates, OutOfOrder: st.OutOfOrder,
		ProtocolErrors: st.ProtocolErrors, Announcements: b.announced, ForeignGuestFrames: b.foreignGuest.Load(), PortErrors: b.portErrs,
		ColdStarts: b.coldStarts, RivalPrimaries: b.rivals, Yields: b.yields,
	}
	if b.failover != nil {
		f := *b.failover
		s.LastFailover = &f
	}
	b.judge(s, st, now)
	return s
}

// judge sets Protection, Health, ExitCode, Problems and Notes.
func (b *Box) judge(s *Status, st ftcore.Status, now time.Duration) {
	code := ExitOK
	bad := func(c int, format string, a ...any) {
		code = max(code, c)
		s.Problems = append(s.Problems, fmt.Sprintf(format, a...))
	}
	note := func(format string, a ...any) { s.Notes = append(s.Notes, fmt.Sprintf(format, a...)) }
	switch {
	case st.Syncing && st.Role != ftcore.RoleHalted && st.Role != ftcore.RoleGoingLive:
		s.Protection = Syncing
	case st.Role == ftcore.RoleHalted:
		s.Protection = Halted
	case st.Role == ftcore.RoleUnprotected || st.Role == ftcore.RoleGoingLive:
		s.Protection = Unprotected
	default:
		switch {
		case b.connecting:
			s.Protection = Syncing
		case s.Peer.Connected && st.Role == ftcore.RoleBackup && b.diverged:
			s.Protection = Unprotected
		case s.Peer.Connected:
			s.Protection = Protected
		default:
			s.Protection = Unprotected
		}
	}
	if b.diverged || st.DigestMismatches > 0 {
		bad(ExitCritical, "DIVERGENCE: the replica's state digest differs from the primary's; the backup must not take over")
	}
	if b.coldAlarm != nil {
		bad(ExitCritical, "COLD START at %s: %s; acknowledge with `ftbox ack`", b.coldAlarm.At.Format(time.RFC3339), b.coldAlarm.Detail)
	}
	switch {
	case st.Proving:
		bad(ExitCritical, "SPLIT BRAIN: a second primary of epoch %d is live; holding all output until the arbiter says which box holds the epoch", st.Epoch)
	case b.rivalAlarm != nil:
		bad(ExitCritical, "SPLIT BRAIN at %s: %s; resolved by the arbiter (this box is %s); acknowledge with `ftbox ack`",
			b.rivalAlarm.At.Format(time.RFC3339), b.rivalAlarm.Detail, st.Role)
	}
	// A window, not a lifetime: a box that was once paused past a
	// failover must not stay CRITICAL for every later live period.
	if b.foreignAt != 0 && now-b.foreignAt < foreignWindow && b.isLive() && b.gatePass {
		bad(ExitCritical, "SPLIT-BRAIN SUSPECTED: frames from the guest's MAC %s arrived from the LAN %s ago while this box is live (%d since start)",
			b.guestMAC, age(ms(now-b.foreignAt)), s.Counters.ForeignGuestFrames)
	}
	// When the peer was last heard by any core of this process (0: never).
	peerEver := max(b.peerEver, st.PeerLastHeard)
	// The peer said hello as a live primary recently (either path).
	helloLive := st.PeerHelloAt != 0 && now-st.PeerHelloAt <= b.cfg.Heartbeat.Timeout.Duration
	switch s.Protection {
	case Halted:
		switch {
		case b.peerEpoch != 0:
			bad(ExitCritical, "HALTED: peer is primary in epoch %d (the arbiter refused us that epoch); this box will not preempt it and rejoins as its backup", b.peerEpoch)
		case b.diverged:
			bad(ExitCritical, "HALTED: diverged replica")
		default:
			bad(ExitCritical, "HALTED")
		}
	case Unprotected:
		// Nothing serving is CRITICAL: going live, or a primary holding
		// its output while it claims the next epoch.
		switch {
		case st.Role == ftcore.RoleGoingLive:
			bad(ExitCritical, "GOING LIVE: peer lost; nothing is served until the arbiter grants epoch %d and the log is replayed%s", b.arbClaim, b.arbiterTrouble())
		case st.Role == ftcore.RoleUnprotected:
			bad(ExitWarning, "UNPROTECTED: the guest runs with no backup (a restarted peer rejoins as backup by state transfer)")
		case st.Role == ftcore.RolePrimary && b.arbClaim > st.Epoch:
			bad(ExitCritical, "HOLDING OUTPUT: the backup is lost; nothing is released until the arbiter grants epoch %d%s", b.arbClaim, b.arbiterTrouble())
		case st.Role == ftcore.RoleBackup && peerEver != 0:
			bad(ExitCritical, "PEER SILENT: the primary was last heard %s ago; this backup is not taking over (%s)", age(ms(now-peerEver)), b.notTakingOver())
		default:
			bad(ExitWarning, "UNPROTECTED: peer not heard for %s", age(s.Peer.LastHeardAgoMS))
		}
	case Syncing:
		switch {
		case st.Syncing && st.SyncTotal > 0:
			bad(ExitWarning, "SYNCING: state transfer %s the peer: %d of %d snapshot bytes (%.0f%%), snapshot at icount %d",
				map[bool]string{true: "to", false: "from"}[st.Role != ftcore.RoleBackup], st.SyncBytes, st.SyncTotal,
				100*float64(st.SyncBytes)/float64(st.SyncTotal), st.SyncICount)
		case st.Syncing && st.Role == ftcore.RoleBackup && !s.Peer.Connected && helloLive:
			// The primary says hello (on the LAN path, say) but the
			// logging link carries no session: it serves; we wait.
			bad(ExitWarning, "SYNCING: joining as backup in epoch %d: the live primary says hello (%s ago) but no state transfer runs on %s: is the logging link down?",
				st.Epoch, age(ms(now-st.PeerHelloAt)), b.cfg.LogLink.Interface)
		case st.Syncing && st.Role == ftcore.RoleBackup && !s.Peer.Connected && peerEver != 0:
			bad(ExitCritical, "SYNCING: the primary fell silent %s ago before the state transfer completed: this box holds no state to take over with, and nothing may be serving",
				age(ms(now-peerEver)))
		case st.Syncing && st.Role == ftcore.RoleBackup && b.plan.Join && st.PeerLastHeard == 0 && !helloLive && now-b.startedAt > joinSilence(b.cfg):
			// The arbiter named the peer the live box, yet it says no
			// hello: it is likely down, and then nothing serves.
			bad(ExitCritical, "SYNCING: joining as backup in epoch %d, but the live primary has not been heard on %s in the %s since this box started: it may be down, and nothing may be serving",
				st.Epoch, b.cfg.LogLink.Interface, age(ms(now-b.startedAt)))
		case st.Syncing && st.Role == ftcore.RoleBackup:
			bad(ExitWarning, "SYNCING: joining as backup in epoch %d: waiting for the live primary's snapshot on %s", st.Epoch, b.cfg.LogLink.Interface)
		case st.Syncing:
			bad(ExitWarning, "SYNCING: snapshot sent; waiting for the backup to catch up")
		case b.connectTimeout < 0:
			bad(ExitWarning, "SYNCING: waiting for the peer on %s (never heard; waiting forever)", b.cfg.LogLink.Interface)
		default:
			left := max(b.connectBy-now, 0).Round(time.Millisecond)
			bad(ExitWarning, "SYNCING: waiting for the peer on %s (never heard; %v left before failure detection starts)", b.cfg.LogLink.Interface, left)
		}
	}
	if b.opts.Arbiter != nil {
		switch {
		case b.queryErr != nil:
			bad(ExitWarning, "ARBITER UNREACHABLE: %v: no failover can happen until it answers (last answer %s ago)", b.queryErr, age(s.Arbiter.LastAnswerAgoMS))
		case b.queryOK != 0 && b.isLive() && !b.connecting && b.latestEpoch < st.Epoch:
			bad(ExitWarning, "ARBITER BEHIND: its latest grant is epoch %d, below ours (%d): it lost its state; this box tells it its epoch again", b.latestEpoch, st.Epoch)
		}
	}
	if b.opts.Arbiter == nil {
		switch {
		case b.noArbLoud || st.Role == ftcore.RoleUnprotected || st.Role == ftcore.RoleGoingLive || (st.Role == ftcore.RolePrimary && b.arbClaim != 0):
			bad(ExitCritical, "NO ARBITER: the peer is lost and no arbiter is configured: this box will NOT go live (or go on alone) automatically")
		default:
			bad(ExitWarning, "WARNING: no arbiter configured: a failure of either box will NOT be taken over automatically")
		}
	}
	if b.peerVersion != 0 && now-b.peerVersionAt < 10*b.cfg.Heartbeat.Timeout.Duration {
		bad(ExitCritical, "PROTOCOL MISMATCH: the peer speaks logging-link protocol v%d, this box v%d: run the same ftbox on both boxes",
			b.peerVersion, logwire.Version)
	}
	b.judgeLANPath(s, now, bad, note)
	if st.Role == ftcore.RolePrimary && st.OutputsHeld > 0 && s.Replication.OldestHeldAgeMS > ms(b.cfg.Heartbeat.Timeout.Duration) {
		note("outputs held for %s waiting for the backup's ack", age(s.Replication.OldestHeldAgeMS))
	}
	if b.rebuilds > 0 && b.connecting {
		note("restarted the replication core %d times while waiting for the peer", b.rebuilds)
	}
	if st.Role == ftcore.RoleBackup && s.Peer.Connected {
		note("replica outputs die at the gate (%d dropped)", s.Gate.DroppedFrames)
	}
	s.ExitCode, s.Health = code, healthName(code)
	if s.Problems == nil {
		s.Problems = []string{}
	}
	if s.Notes == nil {
		s.Notes = []string{}
	}
}

// joinSilence is how long a joining backup may wait for the live primary's
// first hello (it says hello every 20 ms) before it reports that nothing
// may be serving.
func joinSilence(cfg *Config) time.Duration {
	return max(10*cfg.Heartbeat.Timeout.Duration, time.Second)
}

// foreignWindow is how long a frame of the guest's MAC from the LAN keeps a
// live box CRITICAL (SPLIT-BRAIN SUSPECTED).
const foreignWindow = 10 * time.Second

// arbiterTrouble says why a claim may be taking long, for a problem line.
func (b *Box) arbiterTrouble() string {
	switch {
	case b.queryErr != nil:
		return fmt.Sprintf(" (the arbiter is unreachable: %v)", b.queryErr)
	case strings.HasPrefix(b.arbLast, "error"):
		return " (arbiter " + b.arbLast + ")"
	}
	return ""
}

// notTakingOver says why a backup that lost its primary does not go live.
func (b *Box) notTakingOver() string {
	switch {
	case b.diverged:
		return "its replica diverged"
	case b.opts.Arbiter == nil:
		return "no arbiter is configured"
	case b.plan.Join:
		return "it joined and holds no complete state"
	}
	return "waiting for failure detection"
}

// judgeLANPath reports the second heartbeat path: a warning when it is
// down or silent while the pair is PROTECTED (a cut of the logging link
// would then cost a failover), else a note.
func (b *Box) judgeLANPath(s *Status, now time.Duration, bad func(int, string, ...any), note func(string, ...any)) {
	if b.lanPath == nil {
		return
	}
	name := b.cfg.LAN.HeartbeatInterface
	if p := b.lanPathDown.Load(); p != nil {
		bad(ExitWarning, "LAN PATH DOWN: the second heartbeat path on %s failed (%v): a cut of the logging link would cost a failover", name, *p)
		return
	}
	if s.Protection != Protected {
		return
	}
	since := max(b.lanPathHeard, b.connectedAt)
	if silent := now - since; since != 0 && silent > b.cfg.Heartbeat.Timeout.Duration {
		what := "never heard"
		if b.lanPathHeard != 0 {
			what = "not heard for " + age(ms(now-b.lanPathHeard))
		}
		bad(ExitWarning, "LAN PATH SILENT: the peer (%s) %s on %s while the logging link is up: a cut of the logging link would cost a failover (%d frames read there, %d authentic; %d sent)",
			b.lanPathPeer, what, name, b.lanPathInCount.Load(), b.lanPathAuth, b.lanPathOut)
		return
	}
	heard := "not yet heard"
	if b.lanPathHeard != 0 {
		heard = "heard " + age(ms(now-b.lanPathHeard)) + " ago"
	}
	note("second heartbeat path on %s: peer %s %s (%d authentic frames in, %d out)", name, b.lanPathPeer, heard, b.lanPathAuth, b.lanPathOut)
}

// The network arbiter's client is what `ftbox run` wires in.
var _ Arbiter = (*ArbiterClient)(nil)
