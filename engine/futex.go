package engine

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Futex operations (linux/futex.h); x/sys/unix does not name them.
const (
	futexWaitOp     = 0
	futexWakeOp     = 1
	futexPrivateOpt = 128
)

// futexWait sleeps in the kernel while *addr holds val. A worker's goroutine
// is locked to its thread, and a Go channel would wake it by way of the
// scheduler of whichever goroutine sends; the futex lets the waker's kernel
// call wake the thread itself, as an interrupt wakes ksoftirqd.
func futexWait(addr *atomic.Uint32, val uint32) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWaitOp|futexPrivateOpt,
		uintptr(val), 0, 0, 0)
}

// futexWake wakes up to n threads sleeping on addr.
func futexWake(addr *atomic.Uint32, n int) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWakeOp|futexPrivateOpt,
		uintptr(n), 0, 0, 0)
}
