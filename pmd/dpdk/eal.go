//go:build dpdk

package dpdk

/*
#cgo pkg-config: libdpdk
#cgo LDFLAGS: -lrte_net_ring
#include <stdlib.h>
#include <rte_eal.h>
#include "burst.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// EALConfig is how the process's one Environment Abstraction Layer starts.
type EALConfig struct {
	// Args are EAL arguments added after the defaults, e.g.
	// {"--vdev", "net_null0"}. A later argument overrides a default one
	// where the EAL lets it (--log-level, -m).
	Args []string
	// MemoryMB is the memory the EAL reserves (-m), 256 when 0.
	MemoryMB int
	// Hugepages uses hugetlbfs memory; without it the EAL runs on
	// ordinary pages (--no-huge), which needs no setup.
	Hugepages bool
	// PCI lets the EAL probe PCI devices; without it only --vdev ports
	// exist (--no-pci), and the machine's own NIC is left alone.
	PCI bool
}

// args are the full argument vector: the program name, the defaults, then
// cfg.Args. The EAL shares no configuration with other processes
// (--in-memory on hugepages; --no-shconf on ordinary pages, where the EAL
// refuses --in-memory) and has a file prefix of its own; it runs on one
// lcore, the first CPU this process may use. Telemetry is off and only
// errors are logged.
func (cfg EALConfig) args() []string {
	mem := cfg.MemoryMB
	if mem == 0 {
		mem = 256
	}
	a := []string{"pollnet", "-l", fmt.Sprint(firstCPU()), "-m", fmt.Sprint(mem),
		"--file-prefix", fmt.Sprintf("pollnet%d", os.Getpid()),
		"--no-telemetry", "--log-level", "*:error"}
	if cfg.Hugepages {
		a = append(a, "--in-memory")
	} else {
		a = append(a, "--no-huge", "--no-shconf") // --in-memory without hugepages
	}
	if !cfg.PCI {
		a = append(a, "--no-pci")
	}
	return append(a, cfg.Args...)
}

func firstCPU() int {
	var set unix.CPUSet
	if unix.SchedGetaffinity(0, &set) == nil {
		for i := 0; i < len(set)*64; i++ {
			if set.IsSet(i) {
				return i
			}
		}
	}
	return 0
}

var eal struct {
	mu   sync.Mutex
	done bool
	args []string
	err  error
}

// ErrEAL is wrapped by every error from a port opened before the EAL is up.
var ErrEAL = errors.New("dpdk: the EAL is not initialised: call InitEAL first")

// InitEAL starts the EAL (rte_eal_init) once per process: DPDK cannot start
// it twice. A later call with the same configuration returns the first
// call's result; with another, an error that says so.
//
// The EAL pins the thread that starts it to its main lcore. That thread is
// Go's, so InitEAL starts it on a thread of its own, gives the thread its
// CPUs back, and lets it end with its goroutine: no goroutine ever runs on
// a thread the EAL pinned or calls itself lcore 0.
func InitEAL(cfg EALConfig) error {
	args := cfg.args()
	prefix := args[slices.Index(args, "--file-prefix")+1]
	eal.mu.Lock()
	defer eal.mu.Unlock()
	if eal.done {
		if !slices.Equal(args, eal.args) {
			return fmt.Errorf("dpdk: the EAL already started with %q; DPDK allows one EAL per process", eal.args[1:])
		}
		return eal.err
	}
	eal.done, eal.args = true, args
	errc := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with us
		argv := make([]*C.char, len(args))
		for i, a := range args {
			argv[i] = C.CString(a)
		}
		// The EAL keeps pointers into argv; the strings stay allocated.
		cargv := (**C.char)(C.malloc(C.size_t(len(argv)) * C.size_t(unsafe.Sizeof(argv[0]))))
		copy(unsafe.Slice(cargv, len(argv)), argv)
		ret := C.pn_eal_init(C.int(len(argv)), cargv)
		// The EAL makes its runtime directory even when it shares no
		// files (--no-shconf) and never removes it; it stays empty here.
		if dir := C.GoString(C.rte_eal_get_runtime_dir()); !cfg.Hugepages && strings.HasSuffix(dir, "/"+prefix) {
			os.Remove(dir) // only if empty
		}
		if ret < 0 {
			errc <- fmt.Errorf("dpdk: rte_eal_init %q: %s", args[1:], C.GoString(C.pn_strerror(-ret)))
			return
		}
		errc <- nil
	}()
	eal.err = <-errc
	return eal.err
}

// EALStarted reports whether InitEAL succeeded.
func EALStarted() bool {
	eal.mu.Lock()
	defer eal.mu.Unlock()
	return eal.done && eal.err == nil
}

func dpdkError(what string, ret C.int) error {
	if ret >= 0 {
		return nil
	}
	return fmt.Errorf("%s: %s", what, C.GoString(C.pn_strerror(-ret)))
}
