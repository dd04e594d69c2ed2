package appliance

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"ftbox/ftcore"
)

// TestJudge: the health a box reports for each situation, from the loop's
// own state (not hand-built Statuses): nothing serving is CRITICAL, a pair
// that cannot fail over is not OK, and alarms are windows or wait for an
// acknowledgement — they do not last a lifetime.
func TestJudge(t *testing.T) {
	const now = 100 * time.Second
	cfg := &Config{}
	cfg.defaults()
	cfg.Box.Name, cfg.LogLink.Interface = "boxa", "log0"
	base := func() (*Box, ftcore.Status, *Status) {
		b := &Box{cfg: cfg, opts: BoxOptions{Arbiter: CoreArbiter{&ftcore.MemArbiter{}}},
			guestMAC: net.HardwareAddr{0x52, 0x54, 0, 0x12, 0x34, 0x56}, role: ftcore.RolePrimary, gatePass: true,
			queryOK: now - 300*time.Millisecond, latestEpoch: 1, latestWho: "boxa", peerEver: now - time.Millisecond,
			connectTimeout: DefaultConnectTimeout, liveAt: time.Second}
		st := ftcore.Status{Role: ftcore.RolePrimary, Epoch: 1, PeerLastHeard: now - time.Millisecond}
		s := &Status{Peer: PeerStatus{Connected: true}, Replication: ReplicationStatus{OldestHeldAgeMS: -1}, Arbiter: ArbiterInfo{LastAnswerAgoMS: 300}}
		return b, st, s
	}
	for _, c := range []struct {
		name    string
		set     func(b *Box, st *ftcore.Status, s *Status)
		code    int
		problem string // prefix of the first problem ("" none)
	}{
		{"protected", func(*Box, *ftcore.Status, *Status) {}, ExitOK, ""},
		{"backup protected", func(b *Box, st *ftcore.Status, _ *Status) {
			b.role, st.Role, b.gatePass = ftcore.RoleBackup, ftcore.RoleBackup, false
		}, ExitOK, ""},
		{"unprotected, serving", func(b *Box, st *ftcore.Status, s *Status) {
			b.role, st.Role, st.Epoch, b.latestEpoch, s.Peer.Connected = ftcore.RoleUnprotected, ftcore.RoleUnprotected, 2, 2, false
		}, ExitWarning, "UNPROTECTED: the guest runs with no backup"},
		{"going live", func(b *Box, st *ftcore.Status, s *Status) {
			b.role, st.Role, s.Peer.Connected, b.arbClaim = ftcore.RoleGoingLive, ftcore.RoleGoingLive, false, 2
		}, ExitCritical, "GOING LIVE"},
		{"going live, arbiter down", func(b *Box, st *ftcore.Status, s *Status) {
			b.role, st.Role, s.Peer.Connected, b.arbClaim = ftcore.RoleGoingLive, ftcore.RoleGoingLive, false, 2
			b.queryErr = errors.New("connection refused")
		}, ExitCritical, "GOING LIVE"},
		{"primary holding its output for a claim", func(b *Box, st *ftcore.Status, s *Status) {
			s.Peer.Connected, b.arbClaim = false, 2
		}, ExitCritical, "HOLDING OUTPUT"},
		{"joiner whose primary died mid-transfer", func(b *Box, st *ftcore.Status, s *Status) {
			b.role, st.Role, st.Syncing, s.Peer.Connected, b.plan.Join = ftcore.RoleBackup, ftcore.RoleBackup, true, false, true
			b.peerEver = now - 2*time.Second
		}, ExitCritical, "SYNCING: the primary fell silent"},
		{"joiner hearing its primary only on the LAN", func(b *Box, st *ftcore.Status, s *Status) {
			b.role, st.Role, st.Syncing, s.Peer.Connected, b.plan.Join = ftcore.RoleBackup, ftcore.RoleBackup, true, false, true
			b.peerEver, st.PeerHelloAt = now-3*time.Second, now-15*time.Millisecond
		}, ExitWarning, "SYNCING: joining as backup in epoch 1: the live primary says hello"},
		{"joiner waiting for its first snapshot", func(b *Box, st *ftcore.Status, s *Status) {
			b.role, st.Role, st.Syncing, s.Peer.Connected, b.plan.Join, b.peerEver = ftcore.RoleBackup, ftcore.RoleBackup, true, false, true, 0
			st.PeerLastHeard, b.startedAt = 0, now-200*time.Millisecond
		}, ExitWarning, "SYNCING: joining as backup"},
		{"joiner whose primary never said hello", func(b *Box, st *ftcore.Status, s *Status) {
			b.role, st.Role, st.Syncing, s.Peer.Connected, b.plan.Join, b.peerEver = ftcore.RoleBackup, ftcore.RoleBackup, true, false, true, 0
			st.PeerLastHeard, b.startedAt = 0, now-3*time.Second
		}, ExitCritical, "SYNCING: joining as backup in epoch 1, but the live primary has not been heard"},
		{"arbiter unreachable", func(b *Box, _ *ftcore.Status, _ *Status) {
			b.queryErr = errors.New("read udp: connection refused")
		}, ExitWarning, "ARBITER UNREACHABLE"},
		{"arbiter behind (lost its state)", func(b *Box, _ *ftcore.Status, _ *Status) {
			b.latestEpoch, b.latestWho = 0, ""
		}, ExitWarning, "ARBITER BEHIND"},
		{"foreign guest frame just now", func(b *Box, _ *ftcore.Status, _ *Status) {
			b.foreignAt = now - time.Second
		}, ExitCritical, "SPLIT-BRAIN SUSPECTED"},
		{"foreign guest frame long ago", func(b *Box, _ *ftcore.Status, s *Status) {
			b.foreignAt, s.Counters.ForeignGuestFrames = now-time.Minute, 12
		}, ExitOK, ""},
		{"cold start, unacknowledged", func(b *Box, _ *ftcore.Status, _ *Status) {
			b.coldAlarm = &AlarmStatus{Epoch: 3, Detail: "x"}
		}, ExitCritical, "COLD START"},
		{"rival primary, proving", func(b *Box, st *ftcore.Status, _ *Status) {
			st.Proving = true
			b.rivalAlarm = &AlarmStatus{Epoch: 1, Detail: "x"}
		}, ExitCritical, "SPLIT BRAIN: a second primary"},
		{"rival resolved, unacknowledged", func(b *Box, _ *ftcore.Status, _ *Status) {
			b.rivalAlarm = &AlarmStatus{Epoch: 1, Detail: "x"}
		}, ExitCritical, "SPLIT BRAIN at"},
		{"halted", func(b *Box, st *ftcore.Status, s *Status) {
			b.role, st.Role, s.Peer.Connected, b.peerEpoch = ftcore.RoleHalted, ftcore.RoleHalted, false, 2
		}, ExitCritical, "HALTED"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, st, s := base()
			c.set(b, &st, s)
			b.judge(s, st, now)
			got := ""
			if len(s.Problems) > 0 {
				got = s.Problems[0]
			}
			if s.ExitCode != c.code || !strings.HasPrefix(got, c.problem) || (c.problem == "" && got != "") {
				t.Fatalf("exit %d, problems %q; want %d, first starting %q", s.ExitCode, s.Problems, c.code, c.problem)
			}
		})
	}
}
