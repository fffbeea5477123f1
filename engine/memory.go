package engine

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
	"sync"
)

// packetMem is a pool's packet memory: the buffers, the headers, and where
// they were mapped.
type packetMem struct {
	arena []byte
	metas []meta
	addr  uintptr // the mapping's start; 0 when the memory is Go heap
	size  int     // bytes mapped (or allocated) for buffers and headers
	unmap func()
}

// PoolMemory says what a pool's packet memory is made of.
type PoolMemory struct {
	Bytes     int64 // the bytes mapped for its buffers and headers
	HugeBytes int64 // the number of those bytes backed by transparent huge pages (AnonHugePages); 0 for Go heap memory (race builds, other systems)
}

// Memory reports the pool's packet memory and how much of it the kernel backs
// with huge pages, read now: khugepaged may collapse more pages later.
func (p *Pool) Memory() (PoolMemory, error) {
	huge, err := p.mem.hugeBytes()
	if err != nil {
		return PoolMemory{Bytes: int64(p.mem.size)}, err
	}
	return PoolMemory{Bytes: int64(p.mem.size), HugeBytes: huge}, nil
}

// madePacketMemory sums the packet memory of every pool this process has
// made, as each pool found it when made.
var madePacketMemory struct {
	sync.Mutex
	PacketMemoryTotal
}

// PacketMemoryTotal is the packet memory of the pools a process has made.
type PacketMemoryTotal struct {
	Pools int // the number of pools made
	PoolMemory
}

// recordPoolMemory adds a new pool's memory to the process's total.
func recordPoolMemory(p *Pool) {
	m, _ := p.Memory() // a failed read counts the bytes, none of them huge
	madePacketMemory.Lock()
	madePacketMemory.Pools++
	madePacketMemory.Bytes += m.Bytes
	madePacketMemory.HugeBytes += m.HugeBytes
	madePacketMemory.Unlock()
}

// PacketMemory is the packet memory of every pool this process has made and
// how much of it the kernel backed with huge pages when it was made, so a
// result file can say whether the arena got them (a TLB miss per packet is
// what huge pages are there to avoid).
func PacketMemory() PacketMemoryTotal {
	madePacketMemory.Lock()
	defer madePacketMemory.Unlock()
	return madePacketMemory.PacketMemoryTotal
}

// hugeBytesIn sums AnonHugePages over the mappings of an smaps listing that
// lie in [lo, hi). A mapping that reaches outside the range (the kernel may
// merge ours with a neighbour that has the same flags) counts for at most its
// bytes inside the range, so the sum never exceeds hi-lo.
func hugeBytesIn(r io.Reader, lo, hi uintptr) (int64, error) {
	var total int64
	var start, end uintptr // the current mapping
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Bytes()
		if s, e, ok := parseRange(line); ok {
			start, end = s, e
			continue
		}
		rest, ok := bytes.CutPrefix(line, []byte("AnonHugePages:"))
		if !ok {
			continue
		}
		from, to := max(start, lo), min(end, hi)
		if from >= to {
			continue
		}
		kb, err := strconv.ParseInt(string(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(rest), []byte("kB")))), 10, 64)
		if err != nil {
			continue
		}
		total += min(kb<<10, int64(to-from))
	}
	return total, sc.Err()
}

// parseRange parses the "start-end" that opens a mapping's entry in smaps.
func parseRange(line []byte) (start, end uintptr, ok bool) {
	field, _, _ := bytes.Cut(line, []byte(" "))
	a, b, found := bytes.Cut(field, []byte("-"))
	if !found {
		return 0, 0, false
	}
	s, err1 := strconv.ParseUint(string(a), 16, 64)
	e, err2 := strconv.ParseUint(string(b), 16, 64)
	if err1 != nil || err2 != nil || e < s {
		return 0, 0, false
	}
	return uintptr(s), uintptr(e), true
}
