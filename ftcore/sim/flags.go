package sim

import "flag"

// Test flags, registered here so that every test binary under ./ftcore/...
// that uses the simulation accepts them:
//
//	go test ./ftcore/... -run Sim -seed N    # run only seed N (and capture it)
//	go test ./ftcore/sim -seeds K            # sweep K seeds instead of the default
var (
	SeedFlag  = flag.Int64("seed", -1, "simulation: run only this seed")
	SeedsFlag = flag.Int("seeds", 0, "simulation: seeds per sweep (0: the test's default)")
)
