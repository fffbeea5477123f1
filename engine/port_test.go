package engine

import "testing"

func TestQueueCountersAddBurstsAndTheirDropsByReason(t *testing.T) {
	var c QueueCounters
	var drops [NumDropReasons]uint64
	drops[DropNoMbuf] = 2
	c.Count(3, 300, &drops)
	c.Count(0, 0, nil)
	c.CountTx(4, 400, 1, 5)
	s := c.Stats()
	if s.Packets != 7 || s.Bytes != 700 || s.Drops[DropNoMbuf] != 2 || s.Drops[DropTooLong] != 1 || s.Drops[DropError] != 5 {
		t.Fatalf("stats %+v", s)
	}
	if n := testing.AllocsPerRun(100, func() { c.Count(1, 64, &drops); c.CountTx(1, 64, 0, 0) }); n != 0 {
		t.Fatalf("%v allocations per count", n)
	}
}
