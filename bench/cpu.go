package bench

import (
	"time"

	"golang.org/x/sys/unix"
)

// CPUTime is the user plus system CPU time this process has used, from
// getrusage: every thread, busy-polling workers included.
func CPUTime() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
