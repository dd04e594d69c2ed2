package tap_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"ftbox/tap"
	"ftbox/tools/testenv"
)

// quietNetNS creates a network namespace for the test (removed when it ends)
// with IPv6 disabled, so that new devices stay silent: no router
// solicitations or MLD reports to upset the conformance suite's ordering.
func quietNetNS(t *testing.T, prefix string) string {
	t.Helper()
	ns := testenv.NetNS(t, prefix)
	inNS(t, ns, func() error {
		for _, k := range []string{"all", "default"} {
			p := fmt.Sprintf("/proc/sys/net/ipv6/conf/%s/disable_ipv6", k)
			if err := os.WriteFile(p, []byte("1"), 0o644); err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("disable ipv6: %w", err)
			}
		}
		return nil
	})
	return ns
}

// inNS runs f in the namespace ns and fails the test if it fails.
func inNS(t testing.TB, ns string, f func() error) {
	t.Helper()
	if err := testenv.InNetNS(ns, f); err != nil {
		t.Fatal(err)
	}
}

// etherTypeProbe is what waitCarries sends: not the suite's EtherType, so
// ports bound to 0x88B5 never see the probes.
const etherTypeProbe = 0x88B7

// waitCarries returns once a frame sent on interface from arrives on
// interface to. A link is not ready when `ip link set up` returns: the device
// whose carrier came on second (the first-raised end of a veth pair) gets its
// qdisc from the kernel's linkwatch work a little later, and until then
// transmits go to noop_qdisc, which drops them and reports success.
func waitCarries(t *testing.T, ns, from, to string) {
	t.Helper()
	var tx, rx *tap.Raw
	inNS(t, ns, func() error {
		var err error
		if tx, err = tap.OpenRaw(from, etherTypeProbe); err != nil {
			return err
		}
		rx, err = tap.OpenRaw(to, etherTypeProbe)
		return err
	})
	defer tx.Close()
	got := make(chan error, 1)
	go func() {
		_, err := rx.ReadFrame(make([]byte, 2048))
		got <- err
	}()
	probe := make([]byte, 60)
	copy(probe, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0xee, 0x88, 0xb7})
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		_ = tx.WriteFrame(probe) // ENETDOWN and friends until the link is up
		select {
		case err := <-got:
			rx.Close()
			if err != nil {
				t.Fatalf("probe %s→%s: %v", from, to, err)
			}
			return
		case <-deadline:
			rx.Close()
			<-got
			t.Fatalf("no frame from %s reached %s within 10s", from, to)
		case <-tick.C:
		}
	}
}
