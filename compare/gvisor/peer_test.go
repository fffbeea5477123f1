package gvisor_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
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
	"roles", "gomaxprocs", "warmup_s", "repeat",
}

// short is two independent runs of 150 ms each.
func short(workload string) peer.Config {
	return peer.Config{
		Workloads: []string{workload}, Sizes: []int{64},
		Duration: 150 * time.Millisecond, Repeat: 2, Warmup: 50 * time.Millisecond, CC: "cubic", MTU: peer.DefaultMTU,
	}
}

// metrics are the metric and unit each workload reports, as every path
// reports them.
var metrics = map[string][2]string{
	"udp_rr":     {"transactions_per_s", "transactions/s"},
	"udp_stream": {"rx_pps", "datagrams/s"},
	"tcp_stream": {"rx_bps", "bits/s"},
	"tcp_crr":    {"conn_per_s", "connections/s"},
}

// checkJSON decodes a JSON array of scenarios and checks that each ran,
// carries every field and the names every path uses, and has one positive
// sample per run.
func checkJSON(t *testing.T, out []byte, want, runs int) []map[string]any {
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
		name, _ := sc["name"].(string)
		if m, ok := metrics[name]; !ok || sc["metric"] != m[0] || sc["unit"] != m[1] {
			t.Errorf("scenario %q: metric %v unit %v, want %v", name, sc["metric"], sc["unit"], m)
		}
		knobs, _ := sc["knobs"].(map[string]any)
		if knobs["mtu"] != float64(peer.DefaultMTU) {
			t.Errorf("scenario %v: knob mtu %v, want %d", name, knobs["mtu"], peer.DefaultMTU)
		}
		tcpName := name == "tcp_stream" || name == "tcp_crr"
		if !tcpName && (knobs["batch"] != 1.0 || knobs["payload"] == nil) {
			t.Errorf("scenario %v: knobs batch %v payload %v, want batch 1 and a payload", name, knobs["batch"], knobs["payload"])
		}
		if tcpName && knobs["cc"] != "cubic" {
			t.Errorf("%s: knob cc %v", name, knobs["cc"])
		}
		roles, _ := sc["roles"].(map[string]any)
		if roles["client"] != -1.0 || roles["server"] != -1.0 {
			t.Errorf("scenario %v: roles %v, want client and server unpinned", name, roles)
		}
		if g, _ := sc["gomaxprocs"].(float64); g < 1 || sc["repeat"] != float64(runs) || sc["warmup_s"] != 0.05 {
			t.Errorf("scenario %v: gomaxprocs %v repeat %v warmup_s %v", name, sc["gomaxprocs"], sc["repeat"], sc["warmup_s"])
		}
		if sc["p99"] != nil {
			t.Errorf("scenario %v: p99 %v over %d runs; want null", name, sc["p99"], runs)
		}
		samples, _ := sc["samples"].([]any)
		if len(samples) != runs {
			t.Errorf("scenario %v: %d samples, want one per run (%d)", name, len(samples), runs)
		}
		for i, s := range samples {
			if v, _ := s.(float64); v <= 0 {
				t.Errorf("scenario %v: sample %d is %v, want > 0", sc["name"], i, s)
			}
		}
		for _, f := range []string{"median", "mean", "min", "max", "cpu_seconds"} {
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
	for _, w := range []string{peer.UDPStream, peer.UDPRR, peer.TCPStream, peer.TCPCRR} {
		t.Run(w, func(t *testing.T) {
			cfg := short(w)
			out, err := json.Marshal(peer.Run(cfg))
			if err != nil {
				t.Fatal(err)
			}
			sc := checkJSON(t, out, 1, cfg.Repeat)[0]
			extra, _ := sc["extra"].(map[string]any)
			counters, _ := sc["counters"].(map[string]any)
			var want []string
			var count string // the counter the metric counts, over the measured windows
			switch w {
			case peer.UDPStream:
				want, count = []string{"cpu_ns_per_packet", "mpps_median"}, "received"
				if _, ok := extra["loss_ratio"]; !ok {
					t.Errorf("no loss_ratio")
				}
			case peer.UDPRR:
				want, count = []string{"latency_p50_ns", "latency_p99_ns", "cpu_ns_per_packet"}, "transactions"
			case peer.TCPStream:
				want, count = []string{"cpu_ns_per_byte", "gbps_median"}, "bytes_read"
			case peer.TCPCRR:
				want, count = []string{"cpu_us_per_conn"}, "transactions"
			}
			for _, k := range want {
				if v, _ := extra[k].(float64); v <= 0 {
					t.Errorf("extra %s is %v, want > 0", k, extra[k])
				}
			}
			// The metric is what the receiving application got over the
			// measured time: the pooled counter over the pooled time is a
			// weighted mean of the runs' samples, so it lies between the
			// least and the greatest (not so if it took in the warm-up).
			n, _ := counters[count].(float64)
			secs, _ := extra["measured_seconds"].(float64)
			scale := 1.0
			if w == peer.TCPStream {
				scale = 8
			}
			lo, hi := sc["min"].(float64), sc["max"].(float64)
			if pooled := n * scale / secs; n == 0 || pooled < 0.99*lo || pooled > 1.01*hi {
				t.Errorf("counter %s is %v over %vs: %v, outside the runs' %v..%v", count, n, secs, pooled, lo, hi)
			}
		})
	}
}

func TestParseArgs(t *testing.T) {
	cfg, err := peer.ParseArgs([]string{"-workload", "udp_stream,tcp_stream,tcp_crr", "-sizes", "64,1400", "-duration", "2s", "-repeat", "4", "-mtu", "1500", "-streams", "1,4"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Workloads) != 3 || len(cfg.Sizes) != 2 || cfg.Duration != 2*time.Second || cfg.Repeat != 4 || cfg.Scenarios() != 5 || cfg.MTU != 1500 || !slices.Equal(cfg.Streams, []int{1, 4}) {
		t.Errorf("parsed %+v", cfg)
	}
	def, err := peer.ParseArgs(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(def.Sizes, []int{16, 64, 1400, 8000}) || def.MTU != 9000 || def.CC != "cubic" {
		t.Errorf("defaults %+v: want the payloads, MTU and cc every path uses", def)
	}
	for flag, args := range map[string][]string{
		"-workload": {"-workload", "udp_pps"},
		"-mtu":      {"-mtu", "100"},
		"-sizes":    {"-sizes", "64,0"},
		"-duration": {"-duration", "-1s"},
		"-repeat":   {"-repeat", "0"},
		"-warmup":   {"-warmup", "-5ms"},
		"-cc":       {"-cc", "bbr"},
		"-streams":  {"-streams", "1,0"},
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
	cmd := exec.Command(bin, "-workload", "udp_rr,udp_stream", "-sizes", "100", "-duration", "150ms", "-repeat", "2", "-warmup", "50ms")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.Bytes())
	}
	checkJSON(t, stdout.Bytes(), 2, 2)

	stderr.Reset()
	cmd = exec.Command(bin, "-sizes", "abc")
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(stderr.String(), "-sizes") {
		t.Errorf("bad -sizes: err %v, stderr %q; want exit 2 naming -sizes", err, stderr.String())
	}
}

// tcp_stream as `pollnet bench tcp` runs it: 1 and 4 parallel connections
// at MTU 1500, one scenario each, goodput summed over the connections.
func TestTCPStreamStreams(t *testing.T) {
	cfg := short(peer.TCPStream)
	cfg.Streams, cfg.MTU = []int{1, 4}, 1500
	if cfg.Scenarios() != 2 {
		t.Errorf("%d scenarios planned, want one per stream count", cfg.Scenarios())
	}
	scs := peer.Run(cfg)
	if len(scs) != 2 {
		t.Fatalf("%d scenarios, want 2", len(scs))
	}
	for i, sc := range scs {
		if sc.Skipped != "" {
			t.Fatalf("streams %d skipped: %s", cfg.Streams[i], sc.Skipped)
		}
		t.Logf("%v: median %.4g %s, counters %v", sc.Knobs, sc.Median, sc.Unit, sc.Counters)
		if sc.Knobs["streams"] != cfg.Streams[i] || sc.Knobs["mtu"] != 1500 || sc.Knobs["cc"] != "cubic" {
			t.Errorf("knobs %v, want streams %d, mtu 1500, cc cubic", sc.Knobs, cfg.Streams[i])
		}
		if len(sc.Samples) != cfg.Repeat || sc.Min <= 0 {
			t.Errorf("samples %v", sc.Samples)
		}
		secs := sc.Extra["measured_seconds"]
		if pooled := float64(sc.Counters["bytes_read"]) * 8 / secs; pooled < 0.99*sc.Min || pooled > 1.01*sc.Max {
			t.Errorf("%d bytes read over %vs is %v bits/s, outside the runs' %v..%v", sc.Counters["bytes_read"], secs, pooled, sc.Min, sc.Max)
		}
	}
}

// tcp_crr: the knobs every path carries, and TIME_WAIT on the server's
// stack only, since the server closes first.
func TestTCPCRR(t *testing.T) {
	cfg := short(peer.TCPCRR)
	cfg.MTU = 1500
	scs := peer.Run(cfg)
	if len(scs) != 1 {
		t.Fatalf("%d scenarios", len(scs))
	}
	sc := scs[0]
	if sc.Skipped != "" {
		t.Fatalf("skipped: %s", sc.Skipped)
	}
	t.Logf("%v: median %.4g %s, counters %v, extra %v", sc.Knobs, sc.Median, sc.Unit, sc.Counters, sc.Extra)
	k := sc.Knobs
	if k["in_flight"] != 8 || k["request_bytes"] != 64 || k["response_bytes"] != 64 || k["closer"] != "server" || k["cc"] != "cubic" || k["mtu"] != 1500 {
		t.Errorf("knobs %v", k)
	}
	if sc.Metric != "conn_per_s" || sc.Unit != "connections/s" || len(sc.Samples) != cfg.Repeat || sc.Min <= 0 {
		t.Errorf("metric %s unit %s samples %v", sc.Metric, sc.Unit, sc.Samples)
	}
	c := sc.Counters
	if c["transactions"] == 0 || c["transactions"] > c["served"]+8 {
		t.Errorf("counters %v", c)
	}
	// Only a failed transaction, where the client gave up and closed
	// first, may leave TIME_WAIT on the client's stack.
	if c["time_wait_server"] == 0 || c["time_wait_client"] > c["client_errors"]+c["server_errors"] {
		t.Errorf("TIME_WAIT: %d on the server's stack, %d on the client's; want all on the server's", c["time_wait_server"], c["time_wait_client"])
	}
}
