package appliance

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// StatusSchemaVersion is Status.SchemaVersion. It changes only when a field
// changes meaning or goes away; new fields may appear within a version.
const StatusSchemaVersion = 1

// Protection states, the pair's health as this box sees it.
const (
	Protected   = "PROTECTED"   // primary and backup connected: a failure of either is survived
	Unprotected = "UNPROTECTED" // the guest runs live with no backup (or is being failed over)
	Syncing     = "SYNCING"     // connecting to the peer, or the backup catching up
	Halted      = "HALTED"      // this box runs nothing and will not take over
)

// Nagios plugin exit codes, which `ftbox status` exits with.
const (
	ExitOK       = 0 // PROTECTED
	ExitWarning  = 1 // UNPROTECTED, SYNCING, or PROTECTED without an arbiter
	ExitCritical = 2 // HALTED, divergence, split-brain suspected, peer lost with no arbiter
	ExitUnknown  = 3 // the daemon cannot be asked
)

// Status is everything `ftbox status` shows, as `--json` prints it and the
// Prometheus metrics export it. Durations are milliseconds (float); an age
// of -1 means never.
type Status struct {
	SchemaVersion int       `json:"schema_version"`
	Box           string    `json:"box"`
	Time          time.Time `json:"time"`
	UptimeMS      float64   `json:"uptime_ms"`

	Role       string `json:"role"` // PRIMARY, BACKUP, GOING_LIVE, UNPROTECTED, HALTED
	Epoch      uint64 `json:"epoch"`
	Protection string `json:"protection"` // PROTECTED, UNPROTECTED, SYNCING, HALTED
	// Health is the Nagios state: OK, WARNING or CRITICAL; ExitCode its code.
	Health   string   `json:"health"`
	ExitCode int      `json:"exit_code"`
	Problems []string `json:"problems"` // why Health is not OK, most serious first
	Notes    []string `json:"notes"`    // informational

	Arbiter     ArbiterInfo       `json:"arbiter"`
	Peer        PeerStatus        `json:"peer"`
	Replication ReplicationStatus `json:"replication"`
	Guest       GuestStatus       `json:"guest"`
	Gate        GateStatus        `json:"gate"`
	Counters    CounterStatus     `json:"counters"`

	LastFailover *FailoverStatus `json:"last_failover"` // null: none since the daemon started
	// Alarms that stay CRITICAL until an operator acknowledges them
	// (ftbox ack): a cold start (the guest's state was lost) and a rival
	// primary of our epoch (two grants of one epoch). Null: none.
	ColdStart *AlarmStatus `json:"cold_start"`
	Rival     *AlarmStatus `json:"rival"`
}

// AlarmStatus is an event that must be seen by someone.
type AlarmStatus struct {
	At     time.Time `json:"at"`
	Epoch  uint64    `json:"epoch"`
	Detail string    `json:"detail"`
}

// ArbiterInfo is the split-brain referee as this box knows it.
type ArbiterInfo struct {
	Configured bool   `json:"configured"`
	Address    string `json:"address"`
	Requests   uint64 `json:"requests"`
	InFlight   bool   `json:"in_flight"`
	LastResult string `json:"last_result"` // "", "won epoch N", "lost epoch N", "error: …"
	// Claiming is the epoch this box is waiting for (0: none).
	Claiming uint64 `json:"claiming"`
	// The read-only current-epoch query, made every second: whether the
	// arbiter answers (a pair whose arbiter is unreachable cannot fail
	// over), and what it says.
	Reachable       bool    `json:"reachable"`
	LastAnswerAgoMS float64 `json:"last_answer_ago_ms"` // -1 never
	QueryError      string  `json:"query_error,omitempty"`
	LatestEpoch     uint64  `json:"latest_epoch"`
	LatestHolder    string  `json:"latest_holder"`
}

// PeerStatus is the other box, as seen over the logging link.
type PeerStatus struct {
	Interface      string  `json:"interface"`
	MAC            string  `json:"mac"`
	Connected      bool    `json:"connected"` // an authentic frame arrived within the heartbeat timeout
	LinkUp         bool    `json:"link_up"`   // the same: the logging link carries the peer's frames
	LastHeardAgoMS float64 `json:"last_heard_ago_ms"`
	RTTMS          float64 `json:"rtt_ms"` // log frame → ack, primary only; -1 unknown
	ICount         uint64  `json:"icount"` // the peer's instruction count, from its last heartbeat or ack
	// EpochAtLeast is set when the arbiter refused us an epoch: the peer
	// holds it (or a later one).
	EpochAtLeast uint64 `json:"epoch_at_least"`
	// Gaps between consecutive authentic frames from the peer since the
	// daemon started: what failure detection sees (the heartbeat timeout
	// must sit well above the tail). Cumulative counts per upper bound.
	GapMaxMS float64     `json:"gap_max_ms"`
	Gaps     []GapBucket `json:"gaps,omitempty"`
}

// GapBucket counts the gaps up to LeMS (cumulative; LeMS -1 is +Inf).
type GapBucket struct {
	LeMS  float64 `json:"le_ms"`
	Count uint64  `json:"count"`
}

// ReplicationStatus is the log and the Output Rule.
type ReplicationStatus struct {
	LogAppended     uint64  `json:"log_appended"`
	LogSent         uint64  `json:"log_sent"`
	LogAcked        uint64  `json:"log_acked"`
	LogDelivered    uint64  `json:"log_delivered"`
	LogApplied      uint64  `json:"log_applied"`
	LagEntries      uint64  `json:"lag_entries"`
	LagInstructions uint64  `json:"lag_instructions"`
	LagMS           float64 `json:"lag_ms"`
	OutputsProduced uint64  `json:"outputs_produced"`
	OutputsReleased uint64  `json:"outputs_released"`
	Watermark       uint64  `json:"watermark"`
	OutputsHeld     int     `json:"outputs_held"`
	OldestHeldAgeMS float64 `json:"oldest_held_age_ms"` // -1: nothing held
	// OldestUnackedAgeMS: how long the oldest unacknowledged log entry has
	// waited (primary; -1: none). At twice the heartbeat timeout the
	// primary gives its backup up: retransmissions under loss must fit.
	OldestUnackedAgeMS float64 `json:"oldest_unacked_age_ms"`
	OutputsDropped     uint64  `json:"outputs_dropped"`
	InputsDropped      uint64  `json:"inputs_dropped"`
	FlowStalls         uint64  `json:"flow_stalls"`
	LogEntryBytes      uint64  `json:"log_entry_bytes"`
	InputBytes         uint64  `json:"input_bytes"`
	DigestsSent        uint64  `json:"digests_sent"`
	DigestsCompared    uint64  `json:"digests_compared"`
	DigestMismatch     uint64  `json:"digest_mismatches"`

	// State transfer (a backup joining a live primary); omitted when none
	// ever happened. Syncing: a transfer is in progress (SyncBytes of
	// SyncTotal snapshot bytes sent or received).
	Syncing         bool    `json:"syncing,omitempty"`
	SyncBytes       uint64  `json:"sync_bytes,omitempty"`
	SyncTotal       uint64  `json:"sync_total,omitempty"`
	SyncTransfers   uint64  `json:"sync_transfers,omitempty"`
	SyncAborts      uint64  `json:"sync_aborts,omitempty"`
	SnapshotBytes   uint64  `json:"snapshot_bytes,omitempty"`      // the last snapshot's size
	SyncTransferMS  float64 `json:"sync_transfer_ms,omitempty"`    // the last completed transfer: snapshot taken → in sync acknowledged
	RejoinProtectMS float64 `json:"rejoin_protected_ms,omitempty"` // joining backup: core start → PROTECTED
	Rejoins         uint64  `json:"rejoins,omitempty"`             // times this box rebuilt itself as a joining backup
}

// GuestStatus is the replicated machine.
type GuestStatus struct {
	Running bool    `json:"running"`
	Exit    string  `json:"exit"` // "running", "pass", "fail", …
	ICount  uint64  `json:"icount"`
	MIPS    float64 `json:"mips"`
	MAC     string  `json:"mac"`
	IP      string  `json:"ip"` // learned from its frames; "" unknown
}

// GateStatus is the eBPF gate at the TAP.
type GateStatus struct {
	Interface     string `json:"interface"`
	Hook          string `json:"hook"` // tcx, tc, or none
	Pass          bool   `json:"pass"`
	PassedFrames  uint64 `json:"passed_frames"`
	DroppedFrames uint64 `json:"dropped_frames"` // the replica's outputs, on a backup
	Error         string `json:"error,omitempty"`
}

// CounterStatus are the box's frame counters.
type CounterStatus struct {
	LANFramesIn        uint64            `json:"lan_frames_in"`       // read from the TAP
	LANFramesOut       uint64            `json:"lan_frames_out"`      // released guest outputs written to the TAP
	ReplicaFramesOut   uint64            `json:"replica_frames_out"`  // replica outputs written to the TAP (gate drops them)
	LogFramesSent      uint64            `json:"log_frames_sent"`     // on the logging link
	LogFramesReceived  uint64            `json:"log_frames_received"` // authentic, accepted
	LogFramesRejected  map[string]uint64 `json:"log_frames_rejected"` // by reason
	LogBytesSent       uint64            `json:"log_bytes_sent"`
	Retransmits        uint64            `json:"retransmits"`
	FastRetransmits    uint64            `json:"fast_retransmits"`
	Duplicates         uint64            `json:"duplicates"`
	OutOfOrder         uint64            `json:"out_of_order"`
	ProtocolErrors     uint64            `json:"protocol_errors"`
	Announcements      uint64            `json:"announcements"` // RARP/GARP frames sent
	ForeignGuestFrames uint64            `json:"foreign_guest_frames"`
	PortErrors         uint64            `json:"port_errors"`
	ColdStarts         uint64            `json:"cold_starts"`     // the guest restarted from blank over lost state
	RivalPrimaries     uint64            `json:"rival_primaries"` // a second primary of our epoch was heard
	Yields             uint64            `json:"yields"`          // superseded by the peer live in a later epoch: rejoined as its backup
}

// FailoverStatus is the last failure of the peer this box handled.
type FailoverStatus struct {
	At          time.Time `json:"at"`     // when the peer was declared failed
	Reason      string    `json:"reason"` // why
	Result      string    `json:"result"` // went live, went on alone, halted, waiting for the arbiter, …
	FromEpoch   uint64    `json:"from_epoch"`
	ToEpoch     uint64    `json:"to_epoch"`
	DetectionMS float64   `json:"detection_ms"` // last frame heard → declared failed
	GoLiveMS    float64   `json:"go_live_ms"`   // declared failed → live (gate PASS, outputs released); -1 not (yet)
	Released    uint64    `json:"released"`     // buffered outputs released at go-live
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// healthName maps an exit code to its Nagios name.
func healthName(code int) string {
	return [...]string{"OK", "WARNING", "CRITICAL", "UNKNOWN"}[min(max(code, 0), 3)]
}

// ms converts a duration to float milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// WriteText renders the human view, in the style of drbdadm status and
// crm_mon: the verdict first, then one block per subsystem.
func (s *Status) WriteText(w io.Writer) error {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("%s role:%s epoch:%d %s  [%s]\n", s.Box, s.Role, s.Epoch, s.Protection, s.Health)
	for _, pr := range s.Problems {
		p("  !! %s\n", pr)
	}
	for _, n := range s.Notes {
		p("  note: %s\n", n)
	}
	arb := "none configured (no automatic go-live)"
	if s.Arbiter.Configured {
		arb = s.Arbiter.Address
	}
	p("  arbiter: %s requests:%d", arb, s.Arbiter.Requests)
	if s.Arbiter.LastResult != "" {
		p(" last:%q", s.Arbiter.LastResult)
	}
	if s.Arbiter.Claiming != 0 {
		p(" claiming:%d", s.Arbiter.Claiming)
	}
	if s.Arbiter.Configured {
		p(" reachable:%s latest:%d/%s", map[bool]string{true: "yes", false: "NO"}[s.Arbiter.Reachable], s.Arbiter.LatestEpoch, orDash(s.Arbiter.LatestHolder))
	}
	p("\n")
	pe := s.Peer
	conn := "disconnected"
	if pe.Connected {
		conn = "connected"
	}
	p("  peer: %s via %s (%s) link:%s heard:%s rtt:%s icount:%d", conn, pe.Interface, pe.MAC,
		upDown(pe.LinkUp), age(pe.LastHeardAgoMS), age(pe.RTTMS), pe.ICount)
	if pe.EpochAtLeast != 0 {
		p(" epoch>=%d", pe.EpochAtLeast)
	}
	if pe.GapMaxMS > 0 {
		p(" gap-max:%s", age(pe.GapMaxMS))
	}
	p("\n")
	r := s.Replication
	p("  replication: log sent:%d acked:%d delivered:%d applied:%d lag:%d entries, %d instr, %.1f ms\n",
		r.LogSent, r.LogAcked, r.LogDelivered, r.LogApplied, r.LagEntries, r.LagInstructions, r.LagMS)
	p("    outputs produced:%d released:%d watermark:%d held:%d oldest-held:%s dropped:%d inputs-dropped:%d flow-stalls:%d\n",
		r.OutputsProduced, r.OutputsReleased, r.Watermark, r.OutputsHeld, age(r.OldestHeldAgeMS), r.OutputsDropped, r.InputsDropped, r.FlowStalls)
	p("    digests sent:%d compared:%d mismatches:%d  log-bytes:%d input-bytes:%d\n",
		r.DigestsSent, r.DigestsCompared, r.DigestMismatch, r.LogEntryBytes, r.InputBytes)
	g := s.Guest
	run := "running"
	if !g.Running {
		why := g.Exit
		if why == "running" {
			why = "halted"
		}
		run = "stopped (" + why + ")"
	}
	ip := g.IP
	if ip == "" {
		ip = "?"
	}
	p("  guest: %s icount:%d mips:%.1f mac:%s ip:%s\n", run, g.ICount, g.MIPS, g.MAC, ip)
	gt := s.Gate
	mode := "DROP"
	if gt.Pass {
		mode = "PASS"
	}
	p("  gate: %s hook:%s %s passed:%d dropped:%d", gt.Interface, gt.Hook, mode, gt.PassedFrames, gt.DroppedFrames)
	if gt.Error != "" {
		p(" error:%q", gt.Error)
	}
	p("\n")
	c := s.Counters
	p("  counters: lan in:%d out:%d replica-out:%d announcements:%d foreign-guest-frames:%d port-errors:%d\n",
		c.LANFramesIn, c.LANFramesOut, c.ReplicaFramesOut, c.Announcements, c.ForeignGuestFrames, c.PortErrors)
	p("    log sent:%d (%d bytes) received:%d retransmitted:%d fast:%d dup:%d ooo:%d protocol-errors:%d\n",
		c.LogFramesSent, c.LogBytesSent, c.LogFramesReceived, c.Retransmits, c.FastRetransmits, c.Duplicates, c.OutOfOrder, c.ProtocolErrors)
	p("    log rejected:%s\n", reasons(c.LogFramesRejected))
	if f := s.LastFailover; f != nil {
		gl := "-"
		if f.GoLiveMS >= 0 {
			gl = fmt.Sprintf("%.1fms", f.GoLiveMS)
		}
		p("  last failover: %s epoch %d->%d %s (%s) detection:%.1fms go-live:%s released:%d\n",
			f.At.UTC().Format(time.RFC3339Nano), f.FromEpoch, f.ToEpoch, f.Result, f.Reason, f.DetectionMS, gl, f.Released)
	} else {
		p("  last failover: none\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func upDown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

// age renders a millisecond figure where negative means never/unknown.
func age(v float64) string {
	if v < 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fms", v)
}

func reasons(m map[string]uint64) string {
	var keys []string
	var total uint64
	for k, v := range m {
		if v != 0 {
			keys = append(keys, k)
			total += v
		}
	}
	if total == 0 {
		return " none"
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%d", k, m[k])
	}
	return b.String()
}

// Collector exports a box's Status as Prometheus metrics ftbox_*: the same
// numbers as `ftbox status --json`, read fresh on every scrape.
type Collector struct {
	get func() (*Status, error)
}

// NewCollector returns a collector reading status from get.
func NewCollector(get func() (*Status, error)) *Collector { return &Collector{get: get} }

var (
	descUp       = prometheus.NewDesc("ftbox_up", "1 if the box loop answered the scrape.", nil, nil)
	descInfo     = prometheus.NewDesc("ftbox_info", "Role and protection as labels; value 1.", []string{"box", "role", "protection", "health"}, nil)
	descEpoch    = prometheus.NewDesc("ftbox_epoch", "Current epoch.", nil, nil)
	descHealth   = prometheus.NewDesc("ftbox_health_code", "Nagios code: 0 OK, 1 WARNING, 2 CRITICAL.", nil, nil)
	descProtect  = prometheus.NewDesc("ftbox_protected", "1 if the pair is PROTECTED.", nil, nil)
	descRejected = prometheus.NewDesc("ftbox_log_frames_rejected_total", "Logging-link frames rejected, by reason.", []string{"reason"}, nil)
	descGaps     = prometheus.NewDesc("ftbox_peer_gap_seconds", "Gaps between consecutive authentic frames from the peer (what failure detection sees).", nil, nil)
)

type metric struct {
	name, help string
	counter    bool
	v          func(*Status) float64
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

var metrics = []metric{
	{"uptime_seconds", "Seconds since the daemon started.", false, func(s *Status) float64 { return s.UptimeMS / 1000 }},
	{"arbiter_configured", "1 if an arbiter is configured.", false, func(s *Status) float64 { return b2f(s.Arbiter.Configured) }},
	{"arbiter_requests_total", "Test-and-set requests made.", true, func(s *Status) float64 { return float64(s.Arbiter.Requests) }},
	{"peer_connected", "1 if the peer was heard within the heartbeat timeout.", false, func(s *Status) float64 { return b2f(s.Peer.Connected) }},
	{"peer_last_heard_seconds", "Seconds since the peer was last heard (-1 never).", false, func(s *Status) float64 { return secs(s.Peer.LastHeardAgoMS) }},
	{"peer_rtt_seconds", "Log frame to ack round trip (-1 unknown).", false, func(s *Status) float64 { return secs(s.Peer.RTTMS) }},
	{"peer_icount", "The peer's instruction count.", false, func(s *Status) float64 { return float64(s.Peer.ICount) }},
	{"log_appended", "Log stream position appended (primary).", false, func(s *Status) float64 { return float64(s.Replication.LogAppended) }},
	{"log_sent", "Log stream position sent (primary).", false, func(s *Status) float64 { return float64(s.Replication.LogSent) }},
	{"log_acked", "Log stream position acknowledged (primary).", false, func(s *Status) float64 { return float64(s.Replication.LogAcked) }},
	{"log_delivered", "Log stream position received in order (backup).", false, func(s *Status) float64 { return float64(s.Replication.LogDelivered) }},
	{"log_applied_total", "Log entries applied by replay (backup).", true, func(s *Status) float64 { return float64(s.Replication.LogApplied) }},
	{"lag_entries", "Replication lag in log entries.", false, func(s *Status) float64 { return float64(s.Replication.LagEntries) }},
	{"lag_instructions", "Replication lag in guest instructions.", false, func(s *Status) float64 { return float64(s.Replication.LagInstructions) }},
	{"lag_seconds", "Replication lag in time at the guest's speed.", false, func(s *Status) float64 { return s.Replication.LagMS / 1000 }},
	{"outputs_produced_total", "Guest output frames produced.", true, func(s *Status) float64 { return float64(s.Replication.OutputsProduced) }},
	{"outputs_released_total", "Guest output frames released to the LAN.", true, func(s *Status) float64 { return float64(s.Replication.OutputsReleased) }},
	{"outputs_held", "Outputs held by the Output Rule (primary) or beyond the watermark (backup).", false, func(s *Status) float64 { return float64(s.Replication.OutputsHeld) }},
	{"oldest_held_seconds", "Age of the oldest held output (-1 none).", false, func(s *Status) float64 { return secs(s.Replication.OldestHeldAgeMS) }},
	{"oldest_unacked_seconds", "Age of the oldest unacknowledged log entry (-1 none); the backup is given up at twice the heartbeat timeout.", false, func(s *Status) float64 { return secs(s.Replication.OldestUnackedAgeMS) }},
	{"outputs_dropped_total", "Backup: held outputs dropped for a full buffer.", true, func(s *Status) float64 { return float64(s.Replication.OutputsDropped) }},
	{"inputs_dropped_total", "Input frames not logged (queue full, impossible size) or dropped by the guest's NIC.", true, func(s *Status) float64 { return float64(s.Replication.InputsDropped) }},
	{"flow_stalls_total", "Times the guest was held back by flow control.", true, func(s *Status) float64 { return float64(s.Replication.FlowStalls) }},
	{"log_entry_bytes_total", "Encoded bytes of log entries appended.", true, func(s *Status) float64 { return float64(s.Replication.LogEntryBytes) }},
	{"input_bytes_total", "Bytes of input injected into the guest.", true, func(s *Status) float64 { return float64(s.Replication.InputBytes) }},
	{"digests_compared_total", "State digests compared.", true, func(s *Status) float64 { return float64(s.Replication.DigestsCompared) }},
	{"digest_mismatches_total", "State digests that differed.", true, func(s *Status) float64 { return float64(s.Replication.DigestMismatch) }},
	{"guest_running", "1 if the guest runs.", false, func(s *Status) float64 { return b2f(s.Guest.Running) }},
	{"guest_icount", "The guest's instruction count.", false, func(s *Status) float64 { return float64(s.Guest.ICount) }},
	{"guest_mips", "Guest speed, million instructions per second.", false, func(s *Status) float64 { return s.Guest.MIPS }},
	{"gate_pass", "1 if the gate passes the guest's frames.", false, func(s *Status) float64 { return b2f(s.Gate.Pass) }},
	{"gate_passed_frames_total", "Frames the gate passed.", true, func(s *Status) float64 { return float64(s.Gate.PassedFrames) }},
	{"gate_dropped_frames_total", "Frames the gate dropped (replica outputs).", true, func(s *Status) float64 { return float64(s.Gate.DroppedFrames) }},
	{"lan_frames_in_total", "Frames read from the TAP.", true, func(s *Status) float64 { return float64(s.Counters.LANFramesIn) }},
	{"lan_frames_out_total", "Released guest outputs written to the TAP.", true, func(s *Status) float64 { return float64(s.Counters.LANFramesOut) }},
	{"replica_frames_out_total", "Replica outputs written to the TAP.", true, func(s *Status) float64 { return float64(s.Counters.ReplicaFramesOut) }},
	{"log_frames_sent_total", "Logging-link frames sent.", true, func(s *Status) float64 { return float64(s.Counters.LogFramesSent) }},
	{"log_frames_received_total", "Authentic logging-link frames received.", true, func(s *Status) float64 { return float64(s.Counters.LogFramesReceived) }},
	{"log_bytes_sent_total", "Logging-link bytes sent.", true, func(s *Status) float64 { return float64(s.Counters.LogBytesSent) }},
	{"retransmits_total", "Log frames retransmitted on a timeout.", true, func(s *Status) float64 { return float64(s.Counters.Retransmits) }},
	{"fast_retransmits_total", "Log frames retransmitted on duplicate acks.", true, func(s *Status) float64 { return float64(s.Counters.FastRetransmits) }},
	{"protocol_errors_total", "Peer protocol violations.", true, func(s *Status) float64 { return float64(s.Counters.ProtocolErrors) }},
	{"announcements_total", "RARP/GARP frames sent for the guest's MAC.", true, func(s *Status) float64 { return float64(s.Counters.Announcements) }},
	{"foreign_guest_frames_total", "Frames from the guest's MAC seen arriving from the LAN while live.", true, func(s *Status) float64 { return float64(s.Counters.ForeignGuestFrames) }},
	{"cold_starts_total", "Times the guest restarted from blank because its state was lost (double failure).", true, func(s *Status) float64 { return float64(s.Counters.ColdStarts) }},
	{"rival_primaries_total", "Times a second primary of this box's epoch was heard (two grants of one epoch).", true, func(s *Status) float64 { return float64(s.Counters.RivalPrimaries) }},
	{"yields_total", "Times this box found its peer live in a later epoch and rejoined as its backup.", true, func(s *Status) float64 { return float64(s.Counters.Yields) }},
	{"alarm_unacknowledged", "1 while a cold start or rival-primary alarm waits for ftbox ack.", false, func(s *Status) float64 { return b2f(s.ColdStart != nil || s.Rival != nil) }},
	{"arbiter_reachable", "1 if the arbiter answered its last query (0: no failover is possible).", false, func(s *Status) float64 { return b2f(s.Arbiter.Reachable) }},
	{"last_failover_detection_seconds", "Detection time of the last failover (-1 none).", false, func(s *Status) float64 {
		if s.LastFailover == nil {
			return -1
		}
		return s.LastFailover.DetectionMS / 1000
	}},
	{"last_failover_go_live_seconds", "Go-live time of the last failover (-1 none).", false, func(s *Status) float64 {
		if s.LastFailover == nil {
			return -1
		}
		return secs(s.LastFailover.GoLiveMS)
	}},
}

func secs(msv float64) float64 {
	if msv < 0 {
		return -1
	}
	return msv / 1000
}

var metricDescs = func() []*prometheus.Desc {
	d := make([]*prometheus.Desc, len(metrics))
	for i, m := range metrics {
		d[i] = prometheus.NewDesc("ftbox_"+m.name, m.help, nil, nil)
	}
	return d
}()

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUp, descInfo, descEpoch, descHealth, descProtect, descRejected, descGaps} {
		ch <- d
	}
	for _, d := range metricDescs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s, err := c.get()
	if err != nil {
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(descInfo, prometheus.GaugeValue, 1, s.Box, s.Role, s.Protection, s.Health)
	ch <- prometheus.MustNewConstMetric(descEpoch, prometheus.GaugeValue, float64(s.Epoch))
	ch <- prometheus.MustNewConstMetric(descHealth, prometheus.GaugeValue, float64(s.ExitCode))
	ch <- prometheus.MustNewConstMetric(descProtect, prometheus.GaugeValue, b2f(s.Protection == Protected))
	for r, v := range s.Counters.LogFramesRejected {
		ch <- prometheus.MustNewConstMetric(descRejected, prometheus.CounterValue, float64(v), r)
	}
	if n := len(s.Peer.Gaps); n > 0 {
		buckets := map[float64]uint64{}
		for _, g := range s.Peer.Gaps[:n-1] {
			buckets[g.LeMS/1000] = g.Count
		}
		// No sum is kept: the histogram's _sum is reported as 0.
		ch <- prometheus.MustNewConstHistogram(descGaps, s.Peer.Gaps[n-1].Count, 0, buckets)
	}
	for i, m := range metrics {
		t := prometheus.GaugeValue
		if m.counter {
			t = prometheus.CounterValue
		}
		ch <- prometheus.MustNewConstMetric(metricDescs[i], t, m.v(s))
	}
}
