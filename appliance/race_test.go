//go:build race

package appliance

// The race detector slows the guest interpreter by an order of magnitude:
// a Step of one slice can outlast a 100 ms heartbeat timeout, so the
// loop tests give failure detection more room under -race.
const testHeartbeatTimeout = "3s"
