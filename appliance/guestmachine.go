package appliance

import (
	"fmt"

	"ftbox/ftcore"
	"ftbox/ftcore/logwire"
	"ftbox/guestvm"
)

// GuestMachine is the deterministic guest machine as the replication core
// sees it (ftcore.Machine): logged entries become guestvm events. The box
// and ftcore's simulation both use this one adapter, so the simulation
// tests the wiring that runs in production.
type GuestMachine struct{ *guestvm.Machine }

var _ ftcore.Machine = GuestMachine{}

// Run implements ftcore.Machine.
func (g GuestMachine) Run(until uint64) ftcore.Stop { return ftcore.Stop(g.Machine.Run(until)) }

// Inject implements ftcore.Machine. A valid event the guest's device has no
// room for is dropped by the machine — identically on replay — and is not an
// error (ftcore.Machine's contract).
func (g GuestMachine) Inject(e logwire.Entry) error {
	var ev guestvm.Event
	switch e := e.(type) {
	case logwire.InputFrame:
		ev = guestvm.Event{Kind: guestvm.EvFrame, ICount: e.ICount, Data: e.Frame}
	case logwire.ClockSync:
		ev = guestvm.Event{Kind: guestvm.EvClock, ICount: e.ICount, Time: e.Time, RateNum: e.RateNum, RateDen: e.RateDen}
	case logwire.ConsoleInput:
		ev = guestvm.Event{Kind: guestvm.EvConsole, ICount: e.ICount, Data: e.Data}
	default:
		return fmt.Errorf("inject: %v is not an event", e.Type())
	}
	_, err := g.Machine.Inject(ev)
	return err
}
