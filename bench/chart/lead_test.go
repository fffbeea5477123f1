package chart

import (
	"testing"

	"github.com/pollnet/pollnet/internal/result"
)

func TestThePageLeadsWithTheNullPortBesideTestpmdThenPeers(t *testing.T) {
	run := &result.Run{Scenarios: []result.Scenario{
		{Name: "pps", Path: "pollnet-pmd", Port: "wire", Knobs: map[string]any{"size": 64}, Metric: "rx_pps", Unit: "packets/s", Samples: []float64{1e6}, Median: 1e6, Min: 1e6, Max: 1e6},
		{Name: "udp_rr", Path: "kernel", Port: "veth", Knobs: map[string]any{"payload": 64}, Metric: "transactions_per_s", Unit: "transactions/s", Samples: []float64{4e4}, Median: 4e4, Min: 4e4, Max: 4e4},
		{Name: "pps", Path: "pollnet-pmd", Port: "null", Knobs: map[string]any{"size": 64}, Metric: "rx_pps", Unit: "packets/s", Samples: []float64{9e7}, Median: 9e7, Min: 9e7, Max: 9e7},
		{Name: "pps", Path: "dpdk-testpmd", Port: "null", Knobs: map[string]any{"size": 64}, Metric: "rx_pps", Unit: "packets/s", Samples: []float64{3e7}, Median: 3e7, Min: 3e7, Max: 3e7},
	}}
	figs, err := workloadCharts(run, false)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range figs {
		names = append(names, f.name)
	}
	if len(names) != 3 || names[0] != "paths-pps-null-64B" || names[1] != "paths-udp_rr-payload64B" {
		t.Fatalf("chart order %v: want the null port first, then the peers' udp_rr, then the wire", names)
	}
}
