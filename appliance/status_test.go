package appliance

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var goldenTime = time.Date(2026, 5, 4, 12, 30, 0, 0, time.UTC)

// goldenStatuses are fixed statuses covering each protection state.
func goldenStatuses() map[string]*Status {
	base := func() *Status {
		return &Status{
			SchemaVersion: StatusSchemaVersion, Box: "boxa", Time: goldenTime, UptimeMS: 123456.5,
			Role: "PRIMARY", Epoch: 1, Protection: Protected, Health: "OK", ExitCode: ExitOK,
			Problems: []string{}, Notes: []string{},
			Arbiter: ArbiterInfo{Configured: true, Address: "10.77.0.2:7700", Reachable: true, LastAnswerAgoMS: 412.5, LatestEpoch: 1, LatestHolder: "boxa"},
			Peer: PeerStatus{Interface: "log0", MAC: "02:00:00:00:00:0b", Connected: true, LinkUp: true,
				LastHeardAgoMS: 3.2, RTTMS: 0.4, ICount: 9_876_543, GapMaxMS: 14.2,
				Gaps: []GapBucket{{1, 900}, {2, 1400}, {5, 2100}, {10, 5900}, {15, 6049}, {20, 6050}, {-1, 6050}}},
			Replication: ReplicationStatus{LogAppended: 5012, LogSent: 5012, LogAcked: 5010, LagEntries: 2,
				LagInstructions: 1200, LagMS: 0.004, OutputsProduced: 2400, OutputsReleased: 2399, Watermark: 2399,
				OutputsHeld: 1, OldestHeldAgeMS: 0.3, OldestUnackedAgeMS: 0.2, LogEntryBytes: 812_345, InputBytes: 301_000, DigestsSent: 123},
			Guest: GuestStatus{Running: true, Exit: "running", ICount: 9_877_743, MIPS: 312.5, MAC: "52:54:00:12:34:56", IP: "10.77.0.10"},
			Gate:  GateStatus{Interface: "tap0", Hook: "tcx", Pass: true, PassedFrames: 2399},
			Counters: CounterStatus{LANFramesIn: 2500, LANFramesOut: 2399, LogFramesSent: 6100, LogFramesReceived: 6050,
				LogFramesRejected: map[string]uint64{"bad_tag": 3, "replay": 1, "malformed": 0}, LogBytesSent: 1_234_567, Retransmits: 7},
		}
	}
	protected := base()
	backup := base()
	backup.Box, backup.Role = "boxb", "BACKUP"
	backup.Peer.RTTMS, backup.Peer.MAC = -1, "02:00:00:00:00:0a"
	backup.Gate.Pass, backup.Gate.PassedFrames, backup.Gate.DroppedFrames = false, 0, 2399
	backup.Notes = []string{"replica outputs die at the gate (2399 dropped)"}
	live := base()
	live.Box, live.Role, live.Epoch, live.Protection = "boxb", "UNPROTECTED", 2, Unprotected
	live.Health, live.ExitCode = "WARNING", ExitWarning
	live.Problems = []string{"UNPROTECTED: the guest runs with no backup (a restarted peer rejoins as backup by state transfer)"}
	live.Arbiter.LatestEpoch, live.Arbiter.LatestHolder = 2, "boxb"
	live.Peer.Connected, live.Peer.LinkUp, live.Peer.LastHeardAgoMS, live.Peer.RTTMS = false, false, 5123.4, -1
	live.Arbiter.Requests, live.Arbiter.LastResult = 1, "won epoch 2"
	live.Counters.Announcements = 10
	live.LastFailover = &FailoverStatus{At: goldenTime.Add(-5 * time.Second), Reason: "peer silent for 101ms (heartbeat timeout 100ms)",
		Result: "went live", FromEpoch: 1, ToEpoch: 2, DetectionMS: 100.7, GoLiveMS: 2.3, Released: 1}
	halted := base()
	halted.Role, halted.Protection, halted.Health, halted.ExitCode = "HALTED", Halted, "CRITICAL", ExitCritical
	halted.Guest.Running, halted.Gate.Pass = false, false
	halted.Peer.Connected, halted.Peer.LinkUp, halted.Peer.LastHeardAgoMS, halted.Peer.EpochAtLeast = false, false, -1, 2
	halted.Problems = []string{"HALTED: peer is primary in epoch 2 (the arbiter refused us that epoch); this box will not preempt it and rejoins as its backup"}
	halted.Arbiter.LatestEpoch, halted.Arbiter.LatestHolder = 2, "boxb"
	cold := base()
	cold.Epoch, cold.Health, cold.ExitCode = 3, "CRITICAL", ExitCritical
	cold.Arbiter.LatestEpoch = 3
	cold.ColdStart = &AlarmStatus{At: goldenTime.Add(-time.Minute), Epoch: 3,
		Detail: "the guest started from blank in epoch 3: its state was lost (both boxes failed, or the box holding the state died before its peer synced)"}
	cold.Counters.ColdStarts = 1
	cold.Problems = []string{"COLD START at 2026-05-04T12:29:00Z: " + cold.ColdStart.Detail + "; acknowledge with `ftbox ack`"}
	noarb := base()
	noarb.Arbiter = ArbiterInfo{LastAnswerAgoMS: -1}
	noarb.Health, noarb.ExitCode = "WARNING", ExitWarning
	noarb.Problems = []string{"WARNING: no arbiter configured: a failure of either box will NOT be taken over automatically"}
	return map[string]*Status{"protected": protected, "backup": backup, "live": live, "halted": halted, "noarbiter": noarb, "coldstart": cold}
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestStatusGolden(t *testing.T) {
	for name, s := range goldenStatuses() {
		t.Run(name, func(t *testing.T) {
			var txt bytes.Buffer
			if err := s.WriteText(&txt); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, "status_"+name+".txt.golden", txt.Bytes())
			js, err := json.MarshalIndent(s, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, "status_"+name+".json.golden", append(js, '\n'))
			var back Status
			if err := json.Unmarshal(js, &back); err != nil || back.SchemaVersion != 1 {
				t.Fatalf("round trip: %v %d", err, back.SchemaVersion)
			}
		})
	}
}

func TestCollectorMatchesJSON(t *testing.T) {
	s := goldenStatuses()["live"]
	c := NewCollector(func() (*Status, error) { return s, nil })
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	n, err := testutil.GatherAndCount(reg)
	if err != nil {
		t.Fatal(err)
	}
	if n < len(metrics)+5 {
		t.Fatalf("%d metrics", n)
	}
	want := `
# HELP ftbox_announcements_total RARP/GARP frames sent for the guest's MAC.
# TYPE ftbox_announcements_total counter
ftbox_announcements_total 10
# HELP ftbox_epoch Current epoch.
# TYPE ftbox_epoch gauge
ftbox_epoch 2
# HELP ftbox_last_failover_detection_seconds Detection time of the last failover (-1 none).
# TYPE ftbox_last_failover_detection_seconds gauge
ftbox_last_failover_detection_seconds 0.1007
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ftbox_announcements_total", "ftbox_epoch", "ftbox_last_failover_detection_seconds"); err != nil {
		t.Fatal(err)
	}
}
