package bench

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine"
)

func TestTheSamplerReadsCountersOffTheDevicesCore(t *testing.T) {
	all, err := engine.Cores()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 2 {
		t.Skipf("one usable core (%v): nowhere else to sample from", all)
	}
	dut := all[len(all)-1]
	var onDUT, reads atomic.Int32
	var n atomic.Uint64
	sampling{Duration: 20 * time.Millisecond, Repeat: 2, Avoid: []int{dut},
		Count: func() uint64 {
			reads.Add(1)
			if cs, err := engine.PinnedCores(); err != nil || slices.Contains(cs, dut) {
				onDUT.Add(1)
			}
			return n.Add(100)
		}}.run()
	if reads.Load() == 0 || onDUT.Load() != 0 {
		t.Fatalf("%d of %d counter reads ran on a thread allowed on the device's core %d", onDUT.Load(), reads.Load(), dut)
	}
}
