package ftcore_test

import (
	"testing"
	"time"

	"ftbox/ftcore"
)

// The backoff fits the primary's patience: with a 30 ms timeout the
// primary gives its backup up once the oldest unacknowledged entry waited
// 60 ms, and by then it has resent it many times (RTOMax defaults to
// Timeout/4), not the four tries (4+8+16+32 ms) that a 32 ms cap allowed,
// which 10 % loss each way defeats about once in a thousand losses.
func TestBackoffFitsTwiceTheTimeout(t *testing.T) {
	h := newManual(t)
	cfgP := pairConfig(t, "A")
	cfgP.HeartbeatInterval, cfgP.Timeout = 5*time.Millisecond, 30*time.Millisecond
	var err error
	if h.p, err = ftcore.NewPrimary(cfgP, h.mp); err != nil {
		t.Fatal(err)
	}
	h.now = time.Millisecond
	h.handshake(t)
	if err := h.p.OnLANFrame(h.now, []byte("x")); err != nil {
		t.Fatal(err)
	}
	h.stepP(t) // logs the input; everything from now on is lost
	h.toB = nil
	sent := h.now
	retrans, tries := h.p.Status().Retransmits, 0
	for h.now < sent+2*cfgP.Timeout {
		h.now += 500 * time.Microsecond
		h.stepP(t)
		h.toB = nil
		if r := h.p.Status().Retransmits; r > retrans {
			retrans, tries = r, tries+1
		}
		if h.p.Role() != ftcore.RolePrimary || len(h.p.Outbox().Arbiter) > 0 {
			break
		}
	}
	if tries < 6 {
		t.Fatalf("the unacknowledged log was resent %d times within 2×Timeout (%v)", tries, 2*cfgP.Timeout)
	}
}
