package appliance

import "github.com/prometheus/client_golang/prometheus"

// ArbiterCollector exports an arbiter's counters as Prometheus metrics
// (ftbox_arbiter_*), the same numbers its logs print.
type ArbiterCollector struct{ srv *ArbiterServer }

// NewArbiterCollector returns a collector over srv's counters.
func NewArbiterCollector(srv *ArbiterServer) *ArbiterCollector { return &ArbiterCollector{srv: srv} }

var arbiterMetrics = []struct {
	name, help string
	get        func(ArbiterStats) uint64
}{
	{"requests_total", "Datagrams received.", func(s ArbiterStats) uint64 { return s.Requests }},
	{"queries_total", "Current-epoch queries answered.", func(s ArbiterStats) uint64 { return s.Queries }},
	{"granted_total", "New epochs granted.", func(s ArbiterStats) uint64 { return s.Granted }},
	{"regranted_total", "Repeated claims by the holder, granted again.", func(s ArbiterStats) uint64 { return s.Regranted }},
	{"refused_stale_total", "Claims of an epoch below the current one.", func(s ArbiterStats) uint64 { return s.RefusedStale }},
	{"refused_taken_total", "Claims of the current epoch by someone else.", func(s ArbiterStats) uint64 { return s.RefusedTaken }},
	{"malformed_total", "Datagrams that do not parse.", func(s ArbiterStats) uint64 { return s.Malformed }},
	{"unknown_pair_total", "Requests for a pair whose key the arbiter does not hold.", func(s ArbiterStats) uint64 { return s.UnknownPair }},
	{"bad_mac_total", "Forged or wrong-key requests.", func(s ArbiterStats) uint64 { return s.BadMAC }},
	{"replayed_total", "Requests whose nonce was seen before (dropped).", func(s ArbiterStats) uint64 { return s.Replayed }},
	{"clock_skew_total", "Requests outside the time window.", func(s ArbiterStats) uint64 { return s.ClockSkew }},
	{"persist_errors_total", "Grants not answered because the state could not be saved.", func(s ArbiterStats) uint64 { return s.PersistErrors }},
}

var arbiterDescs = func() []*prometheus.Desc {
	d := make([]*prometheus.Desc, len(arbiterMetrics))
	for i, m := range arbiterMetrics {
		d[i] = prometheus.NewDesc("ftbox_arbiter_"+m.name, m.help, nil, nil)
	}
	return d
}()

// Describe implements prometheus.Collector.
func (c *ArbiterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range arbiterDescs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *ArbiterCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.srv.Stats()
	for i, m := range arbiterMetrics {
		ch <- prometheus.MustNewConstMetric(arbiterDescs[i], prometheus.CounterValue, float64(m.get(st)))
	}
}
