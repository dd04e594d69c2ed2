package appliance

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestArbiterCollector(t *testing.T) {
	k := arbTestKey(7)
	ta := startArbiter(t, stateCfg(t, k))
	c := arbClient(t, ta.addr, k, ArbiterClientOptions{})
	for _, who := range []string{"a", "b"} { // a wins epoch 2, b is refused
		if _, err := c.Claim(context.Background(), 2, who); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewArbiterCollector(ta.srv))
	want := `
# HELP ftbox_arbiter_granted_total New epochs granted.
# TYPE ftbox_arbiter_granted_total counter
ftbox_arbiter_granted_total 1
# HELP ftbox_arbiter_refused_taken_total Claims of the current epoch by someone else.
# TYPE ftbox_arbiter_refused_taken_total counter
ftbox_arbiter_refused_taken_total 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ftbox_arbiter_granted_total", "ftbox_arbiter_refused_taken_total"); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n != len(arbiterMetrics) {
		t.Fatalf("%d metrics, want %d: %v", n, len(arbiterMetrics), err)
	}
}
