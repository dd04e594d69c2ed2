package sim

import "flag"

// Test flags, registered here so that every test binary under ./ftcore/...
// that uses the simulation accepts them:
//
//	go test ./ftcore/... -run Sim -seed N    # run only seed N (and capture it)
//	go test ./ftcore/sim -seeds K            # sweep K seeds instead of the default
//	go test ./ftcore/sim -strict             # the known core failures fail too (see Strict)
var (
	SeedFlag  = flag.Int64("seed", -1, "simulation: run only this seed")
	SeedsFlag = flag.Int("seeds", 0, "simulation: seeds per sweep (0: the test's default)")
	// Strict fails what the core does wrong today and the simulation
	// otherwise only counts and logs: a late duplicate by a superseded
	// server (World.Verify, checkOneServer), and the sweep's split brains
	// on an arbiter's double grant after a wipe (sim_test.go, sweep).
	Strict = flag.Bool("strict", false, "simulation: fail the known core failures too (late duplicates, double-grant split brains)")
)
