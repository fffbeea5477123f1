package main

import (
	"bytes"
	"strings"
	"testing"
)

// `bench tcp`, briefly: both workloads on both of pollnet's paths with their
// fields written, and the kernel and gVisor beside them in the same file,
// measured or skipped with the reason (no root, no go command).
func TestBenchTCPWritesPollnetAndPeers(t *testing.T) {
	var r struct {
		Scenarios []struct {
			Name     string             `json:"name"`
			Path     string             `json:"path"`
			Port     string             `json:"port"`
			Knobs    map[string]any     `json:"knobs"`
			Metric   string             `json:"metric"`
			Unit     string             `json:"unit"`
			Samples  []float64          `json:"samples"`
			Median   float64            `json:"median"`
			Counters map[string]uint64  `json:"counters"`
			Extra    map[string]float64 `json:"extra"`
			Repeat   int                `json:"repeat"`
			Skipped  string             `json:"skipped"`
		} `json:"scenarios"`
	}
	out := benchResult(t, t.TempDir(), &r, "bench", "tcp", "--mtu", "1500", "--streams", "1", "--duration", "300ms", "--warmup", "100ms",
		"--repeat", "1", "--gen-core", "-1", "--fwd-core", "-1")
	seen := map[string]bool{}
	for _, sc := range r.Scenarios {
		key := sc.Name + " " + sc.Path
		seen[key] = true
		if sc.Knobs["mtu"] != 1500.0 {
			t.Errorf("%s: knobs %v, want mtu 1500", key, sc.Knobs)
		}
		if strings.HasPrefix(sc.Path, "pollnet-") {
			if sc.Skipped != "" || len(sc.Samples) != 1 || sc.Median <= 0 || sc.Repeat != 1 || sc.Port != "wire" || sc.Knobs["cc"] != "cubic" {
				t.Errorf("%s: skipped %q samples %v repeat %d port %s knobs %v", key, sc.Skipped, sc.Samples, sc.Repeat, sc.Port, sc.Knobs)
			}
			for _, c := range []string{"client_RetransSegs", "server_InSegs", "client_TCPLossProbes", "server_DelayedACKs"} {
				if _, ok := sc.Counters[c]; !ok {
					t.Errorf("%s: no counter %s", key, c)
				}
			}
		} else if sc.Skipped == "" && (len(sc.Samples) != 1 || sc.Median <= 0) {
			t.Errorf("%s: measured, yet samples %v median %v", key, sc.Samples, sc.Median)
		}
		switch sc.Name {
		case "tcp_stream":
			if sc.Metric != "rx_bps" && sc.Skipped == "" || sc.Knobs["streams"] != 1.0 {
				t.Errorf("%s: metric %s knobs %v", key, sc.Metric, sc.Knobs)
			}
		case "tcp_crr":
			if sc.Metric != "conn_per_s" && sc.Skipped == "" {
				t.Errorf("%s: metric %s", key, sc.Metric)
			}
			if _, ok := sc.Counters["time_wait_server"]; !ok && sc.Skipped == "" {
				t.Errorf("%s: no time_wait_server in %v", key, sc.Counters)
			}
		default:
			t.Errorf("unexpected scenario %s", key)
		}
		if sc.Skipped != "" {
			t.Logf("%s skipped: %s", key, sc.Skipped)
		}
	}
	for _, w := range []string{"tcp_stream", "tcp_crr"} {
		for _, p := range []string{"pollnet-pmd", "pollnet-napi", "kernel", "gvisor"} {
			if !seen[w+" "+p] {
				t.Errorf("no %s on %s in result.json", w, p)
			}
		}
	}
	if !strings.Contains(out, "pollnet-pmd/pollnet-napi tcp_crr mtu 1500: ") {
		t.Errorf("no ratios printed:\n%s", out)
	}
}

func TestBenchTCPRefusesBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "tcp", "--mtu", "9001"}, "--mtu 9001"},
		{[]string{"bench", "tcp_stream", "--streams", "0"}, "--streams 0"},
		{[]string{"bench", "tcp_crr", "--peers", "bsd"}, "--peers"},
		{[]string{"bench", "tcp", "--mtu", "1500,x"}, "mtu"},
	} {
		var out, errb bytes.Buffer
		if code := run(c.args, &out, &errb); code != exitUsage || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: exit %d, %q does not mention %q", c.args, code, errb.String(), c.want)
		}
	}
	var out, errb bytes.Buffer
	run([]string{"help"}, &out, &errb)
	for _, s := range []string{"tcp ", "--peers", "tcp_crr"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("usage lacks %q", s)
		}
	}
}
