// Package futex puts threads to sleep on a 32-bit word and wakes them, with
// the Linux futex system call. A goroutine that sleeps here keeps its thread
// in the kernel, so the waker's system call wakes that thread directly
// instead of going through the Go scheduler of the waking goroutine, which
// can leave the woken goroutine queued behind a busy thread for a long time.
package futex

import (
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Operations of futex(2) (linux/futex.h); x/sys/unix does not name them.
const (
	opWait      = 0
	opWake      = 1
	privateFlag = 128
)

// Wait sleeps while *addr holds val, at most d (d <= 0: no limit). It may
// return early or spuriously: callers re-check their condition.
func Wait(addr *atomic.Uint32, val uint32, d time.Duration) {
	var ts *unix.Timespec
	if d > 0 {
		t := unix.NsecToTimespec(int64(d))
		ts = &t
	}
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), opWait|privateFlag, uintptr(val),
		uintptr(unsafe.Pointer(ts)), 0, 0)
}

// Wake wakes up to n threads sleeping on addr.
func Wake(addr *atomic.Uint32, n int) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), opWake|privateFlag, uintptr(n), 0, 0, 0)
}
