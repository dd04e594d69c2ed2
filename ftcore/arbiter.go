package ftcore

import (
	"fmt"
	"sync"
)

// Arbiter is the split-brain referee: an atomic test-and-set on the epoch.
// TestAndSet grants epoch to who if epoch is above every epoch granted so
// far, and reports won; a repeated request by the holder of the latest grant
// for the same epoch also reports won (so a claimant whose answer was lost
// may ask again). Everyone else loses. err means the arbiter could not be
// asked (the claim is neither won nor lost).
//
// ftcore does no I/O: a Primary or Backup puts an ArbiterRequest in its
// outbox, the appliance calls the real arbiter and feeds the answer back with
// OnArbiterReply.
//
// Current is the read-only query a starting box makes (see StartRole): the
// latest granted epoch and its holder (0 and "" if nothing was granted). It
// changes nothing.
type Arbiter interface {
	TestAndSet(epoch uint64, who string) (won bool, err error)
	Current() (epoch uint64, holder string, err error)
}

// MemArbiter is an in-memory Arbiter for tests and the simulation. It is
// safe for concurrent use.
type MemArbiter struct {
	mu     sync.Mutex
	epoch  uint64
	holder string
	grants []ArbiterRequest
}

// TestAndSet implements Arbiter.
func (a *MemArbiter) TestAndSet(epoch uint64, who string) (bool, error) {
	if who == "" {
		return false, fmt.Errorf("arbiter: empty claimant: %w", ErrConfig)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case epoch > a.epoch:
		a.epoch, a.holder = epoch, who
		a.grants = append(a.grants, ArbiterRequest{Epoch: epoch, Who: who})
		return true, nil
	case epoch == a.epoch && who == a.holder:
		return true, nil
	}
	return false, nil
}

// Current implements Arbiter.
func (a *MemArbiter) Current() (uint64, string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.epoch, a.holder, nil
}

// Grants lists every grant made, in order.
func (a *MemArbiter) Grants() []ArbiterRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]ArbiterRequest(nil), a.grants...)
}
