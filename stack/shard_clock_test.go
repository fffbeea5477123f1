package stack

import (
	"testing"
	"time"

	"github.com/pollnet/pollnet/pmd/wire"
	"github.com/pollnet/pollnet/stack/timer"
)

// The loop reads the clock, then waits for the shard's lock, which a
// sender may hold while it stamps segments with later times; timers must
// then run at the clock's time, not the loop's, or RACK sees segments sent
// "before" ones already acknowledged and retransmits them for nothing.
func TestTimersRunAtTheClockOnceTheShardIsLockedNotAtTheLoopsEarlierReading(t *testing.T) {
	r := newRig(t, wire.Config{}, Config{})
	r.fakeClock()
	sh := r.s.shards[0]
	loopRead := *r.now
	fired := int64(-1)
	var tm timer.Timer
	tm.Init(func(now int64) { fired = now })
	sh.mu.Lock()
	sh.wheel.Arm(&tm, loopRead+int64(2*time.Millisecond))
	sh.mu.Unlock()
	*r.now += int64(5 * time.Millisecond) // a sender held the lock this long
	sh.Advance(loopRead)
	if fired != *r.now {
		t.Fatalf("timer fired at %d (-1: not at all), want the clock's %d", fired, *r.now)
	}
}
