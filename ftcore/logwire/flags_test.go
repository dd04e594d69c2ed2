package logwire

import "flag"

// Accepted and ignored, so that `go test ./ftcore/... -run Sim -seed N`
// (the simulation's reproduction command) does not fail in this package.
var (
	_ = flag.Int64("seed", -1, "simulation seed (used by ftcore/sim)")
	_ = flag.Int("seeds", 0, "simulation seed count (used by ftcore/sim)")
)
