//go:build !race

package appliance

const testHeartbeatTimeout = "300ms"
