package engine

import "unsafe"

// Prefetch starts loading the header and the first data line of every mbuf
// in ms, the way DPDK drivers call rte_prefetch0 on a received burst: the
// misses of a whole burst then overlap instead of stalling one by one. Frames
// that arrived from another core are in its cache, so this matters most on
// the receive side of a port.
func Prefetch(ms []Mbuf) { prefetch(ms, false) }

// prefetchForWrite is Prefetch for mbufs about to be reset and filled, as a
// freshly allocated burst is.
func prefetchForWrite(ms []Mbuf) { prefetch(ms, true) }

func prefetch(ms []Mbuf, write bool) {
	var addrs [2 * Burst]uintptr
	for len(ms) > 0 {
		k := 0
		for _, m := range ms[:min(len(ms), Burst)] {
			p := pools[m>>poolShift]
			if p == nil {
				continue
			}
			i := uint32(m) & indexMask
			if int(i) >= len(p.meta) {
				continue
			}
			addrs[k] = uintptr(unsafe.Pointer(&p.meta[i]))
			addrs[k+1] = uintptr(unsafe.Pointer(unsafe.SliceData(p.arena))) + uintptr(i)*BufSize + Headroom
			k += 2
		}
		if write {
			prefetchLinesW(&addrs[0], k)
		} else {
			prefetchLines(&addrs[0], k)
		}
		ms = ms[min(len(ms), Burst):]
	}
}
