package gvisor_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pollnet/pollnet/compare/gvisor/internal/peer"
)

// fields are the JSON names of pollnet's result.Scenario; the main module
// reads this program's output with that type.
var fields = []string{
	"name", "path", "port", "knobs", "metric", "unit", "samples", "median", "p99",
	"stddev", "mean", "min", "max", "cpu_seconds", "counters", "extra", "skipped",
}

func short(workload string) peer.Config {
	return peer.Config{
		Workloads: []string{workload}, Sizes: []int{64},
		Duration: 300 * time.Millisecond, Repeat: 3, Warmup: 50 * time.Millisecond, CC: "cubic",
	}
}

// checkJSON decodes a JSON array of scenarios and checks that each ran,
// carries every field, and has positive samples.
func checkJSON(t *testing.T, out []byte, want int) []map[string]any {
	t.Helper()
	var got []map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("output is not a JSON array of objects: %v\n%s", err, out)
	}
	if len(got) != want {
		t.Fatalf("got %d scenarios, want %d", len(got), want)
	}
	for _, sc := range got {
		for _, f := range fields {
			if _, ok := sc[f]; !ok {
				t.Errorf("scenario %v lacks field %q", sc["name"], f)
			}
		}
		if sc["skipped"] != "" {
			t.Errorf("scenario %v skipped: %v", sc["name"], sc["skipped"])
			continue
		}
		if sc["path"] != "gvisor" || sc["port"] != "channel" {
			t.Errorf("scenario %v: path %v port %v, want gvisor channel", sc["name"], sc["path"], sc["port"])
		}
		samples, _ := sc["samples"].([]any)
		if len(samples) != 3 {
			t.Errorf("scenario %v: %d samples, want 3", sc["name"], len(samples))
		}
		for i, s := range samples {
			if v, _ := s.(float64); v <= 0 {
				t.Errorf("scenario %v: sample %d is %v, want > 0", sc["name"], i, s)
			}
		}
		for _, f := range []string{"median", "p99", "mean", "min", "max", "cpu_seconds"} {
			if v, _ := sc[f].(float64); v <= 0 {
				t.Errorf("scenario %v: %s is %v, want > 0", sc["name"], f, sc[f])
			}
		}
		if mn, md, mx := sc["min"].(float64), sc["median"].(float64), sc["max"].(float64); mn > md || md > mx {
			t.Errorf("scenario %v: min %v median %v max %v out of order", sc["name"], mn, md, mx)
		}
	}
	return got
}

func TestWorkloads(t *testing.T) {
	for _, w := range []string{peer.UDPPPS, peer.UDPRR, peer.TCPStream} {
		t.Run(w, func(t *testing.T) {
			out, err := json.Marshal(peer.Run(short(w)))
			if err != nil {
				t.Fatal(err)
			}
			sc := checkJSON(t, out, 1)[0]
			extra, _ := sc["extra"].(map[string]any)
			var want []string
			switch w {
			case peer.UDPPPS:
				want = []string{"cpu_ns_per_packet", "loss_ratio"}
			case peer.UDPRR:
				want = []string{"latency_p50_ns", "latency_p99_ns", "cpu_ns_per_packet"}
			case peer.TCPStream:
				want = []string{"cpu_ns_per_byte", "gbps_median"}
			}
			for _, k := range want {
				if v, _ := extra[k].(float64); v <= 0 {
					t.Errorf("extra %s is %v, want > 0", k, extra[k])
				}
			}
		})
	}
}

func TestParseArgs(t *testing.T) {
	cfg, err := peer.ParseArgs([]string{"-workload", "udp_pps,tcp_stream", "-sizes", "64,1400", "-duration", "2s", "-repeat", "4"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Workloads) != 2 || len(cfg.Sizes) != 2 || cfg.Duration != 2*time.Second || cfg.Repeat != 4 || cfg.Scenarios() != 3 {
		t.Errorf("parsed %+v", cfg)
	}
	for flag, args := range map[string][]string{
		"-workload": {"-workload", "udp_pps,bogus"},
		"-sizes":    {"-sizes", "64,0"},
		"-duration": {"-duration", "-1s"},
		"-repeat":   {"-repeat", "0"},
		"-warmup":   {"-warmup", "-5ms"},
		"-cc":       {"-cc", "bbr"},
	} {
		_, err := peer.ParseArgs(args, io.Discard)
		if !errors.Is(err, peer.ErrUsage) || !strings.Contains(err.Error(), flag) {
			t.Errorf("%v: error %v, want a usage error naming %s", args, err, flag)
		}
	}
}

// TestCommand builds the program and runs it as the main module does: JSON
// on stdout, exit 2 on a bad flag.
func TestCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	bin := filepath.Join(t.TempDir(), "gvisorpeer")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/gvisorpeer").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "-workload", "udp_rr,udp_pps", "-sizes", "100", "-duration", "300ms", "-repeat", "3", "-warmup", "50ms")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.Bytes())
	}
	checkJSON(t, stdout.Bytes(), 2)

	stderr.Reset()
	cmd = exec.Command(bin, "-sizes", "abc")
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(stderr.String(), "-sizes") {
		t.Errorf("bad -sizes: err %v, stderr %q; want exit 2 naming -sizes", err, stderr.String())
	}
}
