package result

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

func seq(n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = float64(i + 1)
	}
	return s
}

func TestSummariseOneToHundred(t *testing.T) {
	in := seq(100)
	// Shuffle-insensitive: statistics must not depend on sample order.
	in[0], in[99] = in[99], in[0]
	in[10], in[50] = in[50], in[10]
	got, err := Summarise(in)
	if err != nil {
		t.Fatal(err)
	}
	want := Summary{
		N:      100,
		Median: 50.5,
		P99:    99, // nearest rank: ceil(0.99*100) = 99th smallest
		Stddev: math.Sqrt(100.0 * 101.0 / 12.0),
		Mean:   50.5,
		Min:    1,
		Max:    100,
	}
	if math.Abs(got.Stddev-want.Stddev) > 1e-9 {
		t.Errorf("stddev = %v, want %v", got.Stddev, want.Stddev)
	}
	got.Stddev = want.Stddev
	if got != want {
		t.Errorf("Summarise(1..100) = %+v, want %+v", got, want)
	}
	if in[0] != 100 || in[99] != 1 {
		t.Error("Summarise reordered its input")
	}
}

func TestSummariseSmall(t *testing.T) {
	got, err := Summarise([]float64{7})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Summary{N: 1, Median: 7, P99: 7, Mean: 7, Min: 7, Max: 7}); got != want {
		t.Errorf("one sample: %+v, want %+v", got, want)
	}

	got, err = Summarise([]float64{10, 30, 20})
	if err != nil {
		t.Fatal(err)
	}
	// Sample stddev of 10,20,30 is 10 (population would be 8.16...).
	if want := (Summary{N: 3, Median: 20, P99: 30, Stddev: 10, Mean: 20, Min: 10, Max: 30}); got != want {
		t.Errorf("three samples: %+v, want %+v", got, want)
	}
}

func TestSummariseEmpty(t *testing.T) {
	got, err := Summarise(nil)
	if err != nil || got != (Summary{}) {
		t.Fatalf("Summarise(nil) = %+v, %v; want zero, nil", got, err)
	}
	s := Scenario{Name: "pps", Path: "dpdk-testpmd", Skipped: "dpdk-testpmd not installed"}
	if err := s.Summarise(); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	js := string(b)
	for _, want := range []string{`"samples":[]`, `"knobs":{}`, `"counters":{}`, `"median":0`, `"skipped":"dpdk-testpmd not installed"`} {
		if !strings.Contains(js, want) {
			t.Errorf("skipped scenario JSON lacks %s: %s", want, js)
		}
	}
	if strings.Contains(strings.ReplaceAll(js, `"p99":null`, ""), ":null") || strings.Contains(js, "NaN") {
		t.Errorf("skipped scenario JSON has null (but for p99) or NaN: %s", js)
	}
}

func TestSummariseRejectsNonFinite(t *testing.T) {
	for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		s := Scenario{Name: "pps", Samples: []float64{1, bad, 3}, Median: 42}
		if err := s.Summarise(); err == nil {
			t.Errorf("Summarise accepted %v", bad)
		}
		if s.Median != 42 {
			t.Errorf("failed Summarise changed Median to %v", s.Median)
		}
	}
	// Huge finite samples must give finite figures or an error, never Inf.
	if sum, err := Summarise([]float64{math.MaxFloat64, math.MaxFloat64, -math.MaxFloat64}); err == nil {
		for _, v := range []float64{sum.Median, sum.P99, sum.Stddev, sum.Mean, sum.Min, sum.Max} {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Errorf("Summarise(huge) = %+v without error", sum)
			}
		}
	}
}

func TestMarshalRejectsNonFinite(t *testing.T) {
	r := Run{Suite: "quick", Scenarios: []Scenario{{Name: "lat", Path: "kernel", Extra: map[string]float64{"cpu_per_mpkt": math.Inf(1)}}}}
	_, err := json.Marshal(&r)
	if err == nil || !strings.Contains(err.Error(), "extra.cpu_per_mpkt") || !strings.Contains(err.Error(), `"lat"`) {
		t.Fatalf("marshal error = %v; want one naming the scenario and field", err)
	}
	dir := filepath.Join(t.TempDir(), "out")
	if err := r.Write(dir); err == nil {
		t.Fatal("Write accepted an infinite figure")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("failed Write touched the disk: stat %s: %v", dir, err)
	}
}

func sampleRun(t *testing.T) *Run {
	t.Helper()
	r := &Run{
		Suite:   "quick",
		Started: time.Date(2026, 11, 22, 14, 3, 5, 0, time.UTC),
		Command: "pollnet bench pps --suite quick",
		Machine: DetectMachine(),
		Scenarios: []Scenario{
			{
				Name: "pps", Path: "pollnet-pmd", Port: "wire",
				Knobs:  map[string]any{"size": 64, "queues": 1, "gro": true, "mode": "pmd, busy"},
				Metric: "rx_pps", Unit: "packets/s",
				Samples:    []float64{12.3e6, 12.1e6, 12.5e6, 11.9e6, 12.4e6},
				CPUSeconds: 9.75,
				Counters:   map[string]uint64{"rx_missed": 17, "time_squeeze": 0},
				Extra:      map[string]float64{"cpu_per_mpkt": 0.0158},
			},
			{
				Name: "pps", Path: "dpdk-testpmd", Port: "net_null",
				Knobs: map[string]any{"size": 64}, Metric: "rx_pps", Unit: "packets/s",
				Skipped: "dpdk-testpmd not found in PATH",
			},
		},
	}
	for i := range r.Scenarios {
		if err := r.Scenarios[i].Summarise(); err != nil {
			t.Fatal(err)
		}
	}
	r.Scenarios[0].Stamp(map[string]int{RoleDUT: 1, RoleGenerator: 0, RoleSink: 0}, 500*time.Millisecond, 5)
	busy := 0.97
	r.Scenarios[0].DUTBusy = &busy
	return r
}

func TestWriteReadRoundTrip(t *testing.T) {
	r := sampleRun(t)
	dir := filepath.Join(t.TempDir(), "results", "2026-11-22-quick")
	if err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, filepath.Join(dir, JSONFile)} {
		got, err := Read(p)
		if err != nil {
			t.Fatal(err)
		}
		// JSON numbers come back as float64 inside map[string]any.
		want := *r
		want.Scenarios = append([]Scenario(nil), r.Scenarios...)
		want.Scenarios[0].Knobs = map[string]any{"size": 64.0, "queues": 1.0, "gro": true, "mode": "pmd, busy"}
		want.Scenarios[1].Knobs = map[string]any{"size": 64.0}
		want.Scenarios[1].Samples = []float64{}
		want.Scenarios[1].Counters = map[string]uint64{}
		if !got.Started.Equal(want.Started) {
			t.Errorf("started = %v, want %v", got.Started, want.Started)
		}
		got.Started = want.Started
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("Read(%s) =\n%+v\nwant\n%+v", p, *got, want)
		}
	}

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		if info, _ := e.Info(); info.Mode().Perm() != 0o644 {
			t.Errorf("%s mode %v, want 0644", e.Name(), info.Mode().Perm())
		}
	}
	if want := []string{CSVFile, JSONFile, SamplesFile}; !reflect.DeepEqual(names, want) {
		t.Errorf("dir holds %v, want exactly %v (no temp files)", names, want)
	}

	// Writing again replaces the files in place.
	r.Suite = "again"
	if err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	if got, err := Read(dir); err != nil || got.Suite != "again" {
		t.Fatalf("rewrite: %v, %v", got, err)
	}
}

func TestJSONShape(t *testing.T) {
	r := sampleRun(t)
	dir := t.TempDir()
	if err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, JSONFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(data, []byte("}\n")) || !bytes.HasPrefix(data, []byte("{\n  \"suite\"")) {
		t.Errorf("result.json is not indented with a trailing newline:\n%s", data)
	}
	if bytes.Contains(data, []byte("NaN")) || bytes.Contains(bytes.ReplaceAll(data, []byte(`"p99": null`), nil), []byte(": null")) {
		t.Errorf("result.json holds NaN or a null other than p99:\n%s", data)
	}
	if !bytes.Contains(data, []byte(`"started": "2026-11-22T14:03:05Z"`)) {
		t.Errorf("started is not RFC 3339:\n%s", data)
	}

	// The field names are a contract with other readers (DESIGN.md).
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"suite", "started", "command", "machine", "scenarios"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("result.json lacks %q", k)
		}
	}
	m := raw["machine"].(map[string]any)
	for _, k := range []string{"cpu", "cores", "kernel", "go"} {
		if _, ok := m[k]; !ok {
			t.Errorf("machine lacks %q", k)
		}
	}
	for i, s := range raw["scenarios"].([]any) {
		sc := s.(map[string]any)
		for _, k := range []string{"name", "path", "port", "knobs", "metric", "unit", "samples",
			"median", "p99", "stddev", "cpu_seconds", "counters", "skipped"} {
			if _, ok := sc[k]; !ok {
				t.Errorf("scenario %d lacks %q", i, k)
			}
		}
	}
}

func TestEmptyRun(t *testing.T) {
	dir := t.TempDir()
	if err := (&Run{Suite: "none"}).Write(dir); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, JSONFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(`"scenarios": []`)) {
		t.Errorf("empty run JSON:\n%s", data)
	}
	if rows := readCSV(t, filepath.Join(dir, CSVFile)); len(rows) != 1 {
		t.Errorf("empty run result.csv has %d rows, want the header only", len(rows))
	}
}

func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestCSV(t *testing.T) {
	r := sampleRun(t)
	dir := t.TempDir()
	if err := r.Write(dir); err != nil {
		t.Fatal(err)
	}

	rows := readCSV(t, filepath.Join(dir, CSVFile))
	want := [][]string{
		{"name", "path", "port", "knobs", "metric", "unit", "median", "p99", "stddev", "mean", "min", "max", "cpu_seconds", "n_samples", "skipped",
			"roles", "gomaxprocs", "warmup_s", "repeat", "dut_busy"},
		{"pps", "pollnet-pmd", "wire", "gro=true;mode=pmd, busy;queues=1;size=64", "rx_pps", "packets/s",
			"12300000", "", formatFloat(r.Scenarios[0].Stddev), "12240000", "11900000", "12500000", "9.75", "5", "",
			"dut=1;generator=0;sink=0", strconv.Itoa(runtime.GOMAXPROCS(0)), "0.5", "5", "0.97"},
		{"pps", "dpdk-testpmd", "net_null", "size=64", "rx_pps", "packets/s",
			"0", "", "0", "0", "0", "0", "0", "0", "dpdk-testpmd not found in PATH",
			"", "0", "0", "0", ""},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("result.csv =\n%q\nwant\n%q", rows, want)
	}

	rows = readCSV(t, filepath.Join(dir, SamplesFile))
	want = [][]string{
		{"scenario", "name", "path", "sample", "value"},
		{"0", "pps", "pollnet-pmd", "0", "12300000"},
		{"0", "pps", "pollnet-pmd", "1", "12100000"},
		{"0", "pps", "pollnet-pmd", "2", "12500000"},
		{"0", "pps", "pollnet-pmd", "3", "11900000"},
		{"0", "pps", "pollnet-pmd", "4", "12400000"},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("samples.csv =\n%q\nwant\n%q", rows, want)
	}
}

func TestFormatKnobs(t *testing.T) {
	got, err := FormatKnobs(map[string]any{
		"zeta": "a;b", "alpha": 1.5, "big": 1e6, "dur": 2 * time.Millisecond, "off": false,
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "alpha=1.5;big=1000000;dur=2000000;off=false;zeta=a;b"; got != want {
		t.Errorf("FormatKnobs = %q, want %q", got, want)
	}
	if got, err := FormatKnobs(nil); got != "" || err != nil {
		t.Errorf("FormatKnobs(nil) = %q, %v", got, err)
	}
}

func TestFormatFloat(t *testing.T) {
	for v, want := range map[float64]string{
		0: "0", 12.3e6: "12300000", 0.0158: "0.0158", 1e-7: "1e-07", 1e21: "1e+21", -2.5: "-2.5",
	} {
		if got := formatFloat(v); got != want {
			t.Errorf("formatFloat(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := Read(dir)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, JSONFile)) {
		t.Errorf("Read(empty dir) error = %v; want one naming %s", err, JSONFile)
	}
	bad := filepath.Join(dir, "broken.json")
	if err := os.WriteFile(bad, []byte(`{"suite": 3`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Read(bad)
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("Read(broken) error = %v; want one naming %s", err, bad)
	}
}

func TestDefaultDir(t *testing.T) {
	at := time.Date(2026, 11, 22, 23, 30, 0, 0, time.UTC)
	if got, want := DefaultDir("results", at, "quick"), filepath.Join("results", "2026-11-22-quick"); got != want {
		t.Errorf("DefaultDir = %q, want %q", got, want)
	}
	if got, want := DefaultDir("results", at, "a/b"), filepath.Join("results", "2026-11-22-a-b"); got != want {
		t.Errorf("DefaultDir with slash = %q, want %q", got, want)
	}
}

func TestDetectMachine(t *testing.T) {
	m := DetectMachine()
	if m.Cores < 1 || !strings.HasPrefix(m.Go, "go") || m.GOMAXPROCS < 1 || m.OS == "" || m.Arch == "" {
		t.Errorf("DetectMachine = %+v", m)
	}
	if _, err := os.Stat("/proc/cpuinfo"); err == nil && m.Kernel == "" {
		t.Errorf("no kernel release on a machine with /proc: %+v", m)
	}
	t.Logf("%+v", m)
}

func TestCPUModel(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	x86 := write("x86", "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n")
	arm := write("arm", "processor\t: 0\nCPU part\t: 0xd0c\n\nHardware\t: BCM2835\n")
	for path, want := range map[string]string{x86: "AMD EPYC 7B13", arm: "0xd0c", filepath.Join(dir, "none"): ""} {
		if got := cpuModel(path); got != want {
			t.Errorf("cpuModel(%s) = %q, want %q", filepath.Base(path), got, want)
		}
	}
}

func TestMachineRecordsBusyWorkersAndWarnings(t *testing.T) {
	r := sampleRun(t)
	r.Machine.BusyWorkers = 3
	r.Machine.Warnings = []string{"3 busy workers but GOMAXPROCS is 2"}
	dir := t.TempDir()
	if err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	got, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Machine.BusyWorkers != 3 || !reflect.DeepEqual(got.Machine.Warnings, r.Machine.Warnings) {
		t.Fatalf("machine read back as %+v", got.Machine)
	}
	data, _ := os.ReadFile(filepath.Join(dir, JSONFile))
	if !bytes.Contains(data, []byte(`"busy_workers": 3`)) || !bytes.Contains(data, []byte(`"warnings": [`)) {
		t.Fatalf("machine section:\n%s", data)
	}
}

func TestP99IsGivenOnlyOverAHundredSamples(t *testing.T) {
	s := Scenario{Name: "lat", Samples: []float64{1, 2, 3, 4, 5}}
	if err := s.Summarise(); err != nil {
		t.Fatal(err)
	}
	if s.P99 != nil {
		t.Fatalf("p99 %v over five samples: it would only be their maximum", *s.P99)
	}
	s.Samples = make([]float64, 200)
	for i := range s.Samples {
		s.Samples[i] = float64(i + 1)
	}
	if err := s.Summarise(); err != nil {
		t.Fatal(err)
	}
	if s.P99 == nil || *s.P99 != 198 {
		t.Fatalf("p99 over 200 samples: %v, want 198", s.P99)
	}
}
