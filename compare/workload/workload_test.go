package workload

import (
	"testing"
	"time"

	"github.com/pollnet/pollnet/pmd/wire"
)

func TestCheck(t *testing.T) {
	ok := Workload{Name: "udp_pps", Sizes: []int{18}, Duration: time.Second}
	if err := ok.Check(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Workload{
		{Duration: time.Second},
		{Name: "x"},
		{Name: "x", Duration: time.Hour},
		{Name: "x", Duration: time.Second, Warmup: -1},
		{Name: "x", Duration: time.Second, Repeat: -1},
		{Name: "x", Duration: time.Second, Sizes: []int{0}},
		{Name: "x", Duration: time.Second, Streams: []int{0}},
		{Name: "x", Duration: time.Second, Streams: []int{1, MaxStreams + 1}},
	} {
		if bad.Check() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestWindows(t *testing.T) {
	for _, tc := range []struct {
		d        time.Duration
		interval time.Duration
		windows  int
	}{
		{300 * time.Millisecond, 300 * time.Millisecond, 1},
		{time.Second, time.Second, 1},
		{2500 * time.Millisecond, time.Second, 2},
		{5 * time.Second, time.Second, 5},
	} {
		w := Workload{Name: "x", Duration: tc.d}
		if w.Interval() != tc.interval || w.Windows() != tc.windows {
			t.Errorf("%v: interval %v windows %d, want %v %d", tc.d, w.Interval(), w.Windows(), tc.interval, tc.windows)
		}
	}
	if (Workload{}).Runs() != 1 || (Workload{Repeat: 3}).Runs() != 3 {
		t.Error("Runs")
	}
	if s := (Workload{}).SizesOr(1, 2); len(s) != 2 {
		t.Errorf("SizesOr default %v", s)
	}
	if s := (Workload{Sizes: []int{7}}).SizesOr(1, 2); len(s) != 1 || s[0] != 7 {
		t.Errorf("SizesOr %v", s)
	}
}

// The peers' links carry pollnet's wire MTU unless told otherwise, so a
// payload that travels whole through pollnet travels whole through them.
func TestMTU(t *testing.T) {
	if DefaultMTU != wire.DefaultMTU {
		t.Errorf("DefaultMTU %d, pollnet's wire port %d", DefaultMTU, wire.DefaultMTU)
	}
	if (Workload{}).MTUOr() != DefaultMTU || (Workload{MTU: 1500}).MTUOr() != 1500 {
		t.Error("MTUOr")
	}
	for mtu, ok := range map[int]bool{0: true, 1500: true, 9000: true, 575: false, 65536: false} {
		w := Workload{Name: "x", Duration: time.Second, MTU: mtu}
		if err := w.Check(); (err == nil) != ok {
			t.Errorf("MTU %d: err %v", mtu, err)
		}
	}
}

// tcp_stream runs one connection unless the workload names stream counts.
func TestStreams(t *testing.T) {
	if s := (Workload{}).StreamsOr(); len(s) != 1 || s[0] != 1 {
		t.Errorf("default streams %v, want [1]", s)
	}
	w := Workload{Name: "tcp_stream", Duration: time.Second, Streams: []int{1, 4}}
	if s := w.StreamsOr(); len(s) != 2 || s[1] != 4 {
		t.Errorf("streams %v", s)
	}
	if err := w.Check(); err != nil {
		t.Error(err)
	}
}
