package result

import (
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestStampRecordsRolesWarmupRepeatAndTheGOMAXPROCSInForce(t *testing.T) {
	prev := runtime.GOMAXPROCS(0)
	want := prev + 1
	runtime.GOMAXPROCS(want)
	defer runtime.GOMAXPROCS(prev)

	roles := map[string]int{RoleDUT: 1, RoleGenerator: Unpinned}
	var s Scenario
	s.Stamp(roles, 1500*time.Millisecond, 10)
	roles[RoleDUT] = 7 // the caller reuses its map
	if s.GOMAXPROCS != want {
		t.Errorf("gomaxprocs %d, want %d (the setting when Stamp ran)", s.GOMAXPROCS, want)
	}
	if !reflect.DeepEqual(s.Roles, map[string]int{RoleDUT: 1, RoleGenerator: Unpinned}) {
		t.Errorf("roles %v: not a copy of the map given", s.Roles)
	}
	if s.WarmupS != 1.5 || s.Repeat != 10 {
		t.Errorf("warmup %v s, repeat %d; want 1.5 s, 10", s.WarmupS, s.Repeat)
	}
}

func TestProvenanceWarningsNameScenariosThatRanWithoutIt(t *testing.T) {
	stamped := func(name, path string) Scenario {
		s := Scenario{Name: name, Path: path, Port: "wire", Samples: []float64{1}}
		s.Stamp(map[string]int{RoleDUT: 1}, 0, 5)
		return s
	}
	old := func(path string, size int) Scenario { // as a producer from before Stamp writes it
		return Scenario{Name: "pps", Path: path, Port: "wire", Knobs: map[string]any{"size": size}, Samples: []float64{1}}
	}
	r := &Run{Scenarios: []Scenario{
		stamped("pps", "pollnet-pmd"),
		old("pollnet-napi", 64),
		old("pollnet-napi", 1518),
		{Name: "pps", Path: "dpdk-testpmd", Port: "null", Skipped: "not installed"}, // ran nothing: needs nothing
		stamped("udp_rr", "kernel"),
	}}
	r.Scenarios[4].Repeat = 0
	r.Scenarios[4].Roles["fwd"] = 0

	got := r.ProvenanceWarnings()
	want := []string{
		"provenance: pps pollnet-napi on wire (2 scenarios) ran without recording roles, gomaxprocs, repeat",
		`provenance: udp_rr kernel on wire (scenario) ran without recording repeat, a known name for role "fwd" (use dut, generator, sink, client, server)`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("warnings:\n%q\nwant\n%q", got, want)
	}

	r.Scenarios = r.Scenarios[:1]
	if w := r.ProvenanceWarnings(); len(w) != 0 {
		t.Errorf("a stamped run warns: %q", w)
	}
}

// A producer that predates Stamp still gets its file written, with the
// warning in machine.warnings; writing twice does not repeat it.
func TestWriteRecordsMissingProvenanceAsAWarningNotAFailure(t *testing.T) {
	r := sampleRun(t)
	r.Machine.Warnings = []string{"3 busy workers but GOMAXPROCS is 2"}
	r.Scenarios = append(r.Scenarios, Scenario{Name: "idle", Path: "pollnet-napi", Port: "wire",
		Metric: "cpu_share", Samples: []float64{0.01, 0.02}})
	dir := t.TempDir()
	for range 2 {
		if err := r.Write(dir); err != nil {
			t.Fatalf("Write refused a run without provenance: %v", err)
		}
	}
	got, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"3 busy workers but GOMAXPROCS is 2",
		"provenance: idle pollnet-napi on wire (scenario) ran without recording roles, gomaxprocs, repeat"}
	if !reflect.DeepEqual(got.Machine.Warnings, want) {
		t.Errorf("machine.warnings in the file: %q\nwant %q", got.Machine.Warnings, want)
	}
	if !reflect.DeepEqual(r.Machine.Warnings, want) {
		t.Errorf("the caller's run says %q, the file %q", r.Machine.Warnings, want)
	}
	data, _ := os.ReadFile(filepath.Join(dir, JSONFile))
	for _, field := range []string{`"roles": {`, `"dut": 1`, `"gomaxprocs": `, `"warmup_s": 0.5`, `"repeat": 5`, `"dut_busy": 0.97`} {
		if !strings.Contains(string(data), field) {
			t.Errorf("result.json lacks %s", field)
		}
	}
}
