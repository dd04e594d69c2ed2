package e2e

import (
	"testing"
	"time"
)

// TestIdlePrimaryLetsBackupRejoin: with no client traffic at all, the
// backup dies and is restarted. The UNPROTECTED primary, whose guest is
// idle, must keep saying hello on the logging link so the restarted box can
// rejoin: it used to send nothing (its next deadline was "never"), and the
// joiner waited in SYNCING forever.
func TestIdlePrimaryLetsBackupRejoin(t *testing.T) {
	l := Up(t)
	l.Kill("b")
	l.WaitFor("a", 5*time.Second, "UNPROTECTED and live", func(s *Status, code int) bool {
		return s.Live() && s.Protection == "UNPROTECTED" && code == 1
	})
	// Let the guest settle into idle with nobody talking to it.
	time.Sleep(1500 * time.Millisecond)
	before := l.mustStatus("a").Counters.LogFramesSent
	time.Sleep(500 * time.Millisecond)
	if after := l.mustStatus("a").Counters.LogFramesSent; after <= before {
		t.Errorf("the idle UNPROTECTED primary sent nothing on the logging link in 500 ms (log_frames_sent %d → %d)", before, after)
	}
	if out, err := l.run("start", "b"); err != nil {
		t.Fatalf("tools/lab start b: %v\n%s", err, out)
	}
	for _, box := range []string{"b", "a"} {
		s, at := l.WaitFor(box, 15*time.Second, "PROTECTED (exit 0)", func(s *Status, code int) bool {
			return s.Protection == "PROTECTED" && code == 0
		})
		t.Logf("box %s: %s %s in epoch %d at %s", box, s.Role, s.Protection, s.Epoch, at.Format("15:04:05.000"))
	}
}
