package workload

import (
	"testing"
	"time"
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
