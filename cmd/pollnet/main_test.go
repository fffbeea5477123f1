package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/pollnet/pollnet/engine"
)

func TestBadInputExitsTwoAndNamesTheFlag(t *testing.T) {
	cases := []struct {
		args []string
		want string // in the message
	}{
		{[]string{"bench", "--size", "59"}, "--size 59"},
		{[]string{"bench", "--size", "9001"}, "60..9000"},
		{[]string{"bench", "--size", "64,abc"}, "size"},
		{[]string{"bench", "--fwd-core", "4096"}, "--fwd-core"},
		{[]string{"bench", "--gen-core", "-3"}, "--gen-core"},
		{[]string{"bench", "--queues", "0"}, "--queues 0"},
		{[]string{"bench", "udp", "--queues", "17"}, "--queues 17"},
		{[]string{"bench", "--ring", "1000"}, "power of two"},
		{[]string{"bench", "--idle", "nap"}, "--idle"},
		{[]string{"bench", "--no-such-flag"}, "no-such-flag"},
		{[]string{"bench", "nosuchscenario"}, "unknown suite or scenario"},
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"bench", "--mode", "dpdk"}, "--mode"},
		{[]string{"bench", "pps", "--port", "nic"}, "--port"},
		{[]string{"bench", "pps", "--port", "null", "--size", "4000"}, "--size 4000"},
		{[]string{"bench", "udp", "--port", "null"}, "a null port carries no traffic between two stacks"},
		{[]string{"bench", "tcp", "--port", "null"}, "tcp runs two pollnet stacks"},
		{[]string{"bench", "tcp_crr", "--port", "null"}, "afpacket or afxdp"},
		{[]string{"bench", "udp", "--port", "afxdp", "--queues", "2"}, "--queues 2"},
		{[]string{"bench", "--budget", "-1"}, "--budget"},
		{[]string{"bench", "--rx-usecs", "-5"}, "--rx-usecs"},
		{[]string{"bench", "--rx-frames", "8"}, "--rx-usecs"},
		{[]string{"bench", "pps", "--mode", "pmd", "--gen-core", "0", "--fwd-core", "0"}, "--fwd-core"},
		{[]string{"stat", "--watch", "1ms"}, "--watch"},
		{[]string{"compare", "onlyone"}, "two result directories"},
		{[]string{"compare", "/nonexistent/a", "/nonexistent/b"}, "/nonexistent/a"},
		{[]string{"compare", "--alpha", "2", "a", "b"}, "--alpha"},
		{nil, "usage"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := run(c.args, &out, &errb)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d", c.args, code, exitUsage)
		}
		if !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: message %q does not mention %q", c.args, errb.String(), c.want)
		}
	}
}

func TestBenchWritesResultFile(t *testing.T) {
	var r struct {
		Suite     string              `json:"suite"`
		Machine   struct{ Cores int } `json:"machine"`
		Scenarios []struct {
			Path    string    `json:"path"`
			Metric  string    `json:"metric"`
			Samples []float64 `json:"samples"`
			Median  float64   `json:"median"`
		} `json:"scenarios"`
	}
	dir := t.TempDir()
	out := benchResult(t, dir, &r, "bench", "pps", "--size", "64", "--duration", "200ms", "--warmup", "0s", "--mode", "pmd,napi",
		"--gen-core", "-1", "--fwd-core", "-1", "--idle", "spin-yield")
	if !strings.Contains(out, "Mpps") {
		t.Fatalf("no table printed: %s", out)
	}
	if r.Suite != "pps" || r.Machine.Cores == 0 || len(r.Scenarios) != 2 {
		t.Fatalf("result.json: %+v", r)
	}
	for i, path := range []string{"pollnet-pmd", "pollnet-napi"} {
		sc := r.Scenarios[i]
		if sc.Path != path || sc.Median <= 0 || len(sc.Samples) == 0 {
			t.Fatalf("scenario %d: path %s median %v samples %v", i, sc.Path, sc.Median, sc.Samples)
		}
	}
	// A throughput ratio, or why there is none (dut_busy below 0.9).
	if !strings.Contains(out, "pmd/napi max rate at 64 B: ") {
		t.Fatalf("no mode comparison printed:\n%s", out)
	}
	// Two runs compare.
	var cmp, cmperr bytes.Buffer
	if code := run([]string{"compare", dir, dir}, &cmp, &cmperr); code != 0 || !strings.Contains(cmp.String(), "pollnet-napi") {
		t.Fatalf("compare: exit %d %s\n%s", code, cmperr.String(), cmp.String())
	}
	// The counters stay readable after the bench, from another command.
	var st, sterr bytes.Buffer
	if code := run([]string{"stat", "--pid", strconv.Itoa(os.Getpid())}, &st, &sterr); code != 0 {
		t.Fatalf("stat: exit %d: %s", code, sterr.String())
	}
	if !strings.Contains(st.String(), "finished") || !strings.Contains(st.String(), "time_squeeze") || !strings.Contains(st.String(), "interrupts") {
		t.Fatalf("stat output:\n%s", st.String())
	}
	for _, f := range []string{"result.csv", "samples.csv"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("missing %s", f)
		}
	}
}

// The result file records how many busy workers ran at once and what the
// engine warned about, here more busy workers than GOMAXPROCS.
func TestResultFileRecordsBusyWorkersAndWarnings(t *testing.T) {
	extra := runtime.GOMAXPROCS(0) + 1
	for i := 0; i < extra; i++ {
		w, err := engine.NewWorker(engine.AnyCore)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.ClaimBusy(); err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
	}
	var r struct {
		Machine struct {
			BusyWorkers  int      `json:"busy_workers"`
			Warnings     []string `json:"warnings"`
			PacketMemory struct {
				Bytes     int64 `json:"bytes"`
				HugeBytes int64 `json:"huge_bytes"`
			} `json:"packet_memory"`
		} `json:"machine"`
	}
	benchResult(t, t.TempDir(), &r, "bench", "pps", "--size", "64", "--duration", "100ms", "--warmup", "0s", "--repeat", "1", "--mode", "pmd",
		"--gen-core", "-1", "--fwd-core", "-1", "--idle", "spin-yield")
	if r.Machine.BusyWorkers < extra+2 {
		t.Errorf("busy_workers %d, want at least %d (%d claimed and the pmd run's two)", r.Machine.BusyWorkers, extra+2, extra)
	}
	if !strings.Contains(strings.Join(r.Machine.Warnings, "\n"), "GOMAXPROCS") {
		t.Errorf("warnings %q do not mention GOMAXPROCS", r.Machine.Warnings)
	}
	if pm := r.Machine.PacketMemory; pm.Bytes <= 0 || pm.HugeBytes < 0 || pm.HugeBytes > pm.Bytes {
		t.Errorf("packet_memory %+v: want the bytes mapped and at most as many in huge pages", pm)
	}
}

// `bench pps --port null` writes both paths into result.json: pollnet's
// measured, testpmd's skipped here because the forwarding core is unpinned
// (a live testpmd run is compare/testpmd's test), NAPI skipped.
func TestBenchNullWritesBothPaths(t *testing.T) {
	var r struct {
		Scenarios []struct {
			Name    string         `json:"name"`
			Path    string         `json:"path"`
			Port    string         `json:"port"`
			Knobs   map[string]any `json:"knobs"`
			Samples []float64      `json:"samples"`
			Repeat  int            `json:"repeat"`
			Skipped string         `json:"skipped"`
		} `json:"scenarios"`
	}
	out := benchResult(t, t.TempDir(), &r, "bench", "pps", "--port", "null", "--copy", "--size", "64,128", "--duration", "100ms", "--warmup", "0s",
		"--repeat", "2", "--fwd-core", "-1")
	var paths []string
	for _, sc := range r.Scenarios {
		paths = append(paths, sc.Path)
		if sc.Name != "pps" || sc.Port != "null" || sc.Knobs["copy"] != true || sc.Knobs["fwd"] != "macswap" {
			t.Errorf("%s: %s %s %v", sc.Path, sc.Name, sc.Port, sc.Knobs)
		}
		measured := sc.Path == "pollnet-pmd"
		if measured != (sc.Skipped == "") || measured && (len(sc.Samples) != 2 || sc.Repeat != 2) {
			t.Errorf("%s: samples %v repeat %d skipped %q", sc.Path, sc.Samples, sc.Repeat, sc.Skipped)
		}
	}
	if got := strings.Join(paths, " "); got != "pollnet-pmd dpdk-testpmd pollnet-napi pollnet-pmd dpdk-testpmd pollnet-napi" {
		t.Errorf("paths %s", got)
	}
	if !strings.Contains(out, "pps-null:") || !strings.Contains(out, "unpinned") {
		t.Errorf("table:\n%s", out)
	}
}

// `bench udp --queues 2` runs two shards a stack and writes each shard's
// counters into result.json, under a queues knob.
func TestBenchUDPWithTwoQueuesWritesShardCounters(t *testing.T) {
	var r struct {
		Scenarios []struct {
			Name     string            `json:"name"`
			Knobs    map[string]any    `json:"knobs"`
			Counters map[string]uint64 `json:"counters"`
		} `json:"scenarios"`
	}
	out := benchResult(t, t.TempDir(), &r, "bench", "udp", "--queues", "2", "--size", "64", "--duration", "100ms", "--warmup", "0s", "--repeat", "1",
		"--mode", "pmd")
	if len(r.Scenarios) != 2 {
		t.Fatalf("%d scenarios, want udp_rr and udp_stream", len(r.Scenarios))
	}
	for _, sc := range r.Scenarios {
		if sc.Knobs["queues"] != 2.0 {
			t.Errorf("%s: knobs %v, want queues 2", sc.Name, sc.Knobs)
		}
		for _, k := range []string{"server_shard0_udp_in", "server_shard1_udp_in", "client_shard1_tx_frames"} {
			if _, ok := sc.Counters[k]; !ok {
				t.Errorf("%s: no counter %s in %v", sc.Name, k, sc.Counters)
			}
		}
	}
	if !strings.Contains(out, "per shard") {
		t.Errorf("no per-shard lines:\n%s", out)
	}
}

// benchResult runs `pollnet bench` with args, quiet, into dir, fails the
// test on a non-zero exit, reads the result.json it wrote into result and
// returns what it printed.
func benchResult(t *testing.T, dir string, result any, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(append(args, "--quiet", "--out", dir), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	b, err := os.ReadFile(filepath.Join(dir, "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, result); err != nil {
		t.Fatal(err)
	}
	return out.String()
}
