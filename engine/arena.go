//go:build linux && !race

package engine

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

const hugePage = 2 << 20

// packetMemory maps a pool's buffers and headers outside the Go heap, aligned
// to 2 MiB and advised for transparent huge pages: the garbage collector
// never sees it, and the TLB covers a whole pool with a few entries, which is
// why DPDK insists on hugepages. Whether the kernel gave huge pages is its
// choice; Pool.Memory reports it.
func packetMemory(n int) (packetMem, error) {
	arenaLen := roundUp(n*BufSize, hugePage)
	metaLen := roundUp(n*int(unsafe.Sizeof(meta{})), hugePage)
	region, err := unix.Mmap(-1, 0, arenaLen+metaLen+hugePage, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return packetMem{}, fmt.Errorf("map %d bytes of packet memory: %w", arenaLen+metaLen, err)
	}
	skip := 0
	if r := int(uintptr(unsafe.Pointer(&region[0])) % hugePage); r != 0 {
		skip = hugePage - r
	}
	use := region[skip : skip+arenaLen+metaLen]
	_ = unix.Madvise(use, unix.MADV_HUGEPAGE) // advice only: small pages still work
	// Fault every page in now, not on the first packets of a run.
	for i := 0; i < len(use); i += 4096 {
		use[i] = 0
	}
	return packetMem{
		arena: use[: n*BufSize : n*BufSize],
		metas: unsafe.Slice((*meta)(unsafe.Pointer(&use[arenaLen])), n),
		addr:  uintptr(unsafe.Pointer(&use[0])),
		size:  len(use),
		unmap: func() { unix.Munmap(region) },
	}, nil
}

// hugeBytes reads how much of the mapping the kernel backs with transparent
// huge pages, from /proc/self/smaps (the only per-mapping account of it;
// mincore says only whether a page is resident).
func (m *packetMem) hugeBytes() (int64, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return hugeBytesIn(f, m.addr, m.addr+uintptr(m.size))
}

func roundUp(n, to int) int { return (n + to - 1) / to * to }
