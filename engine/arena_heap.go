//go:build !linux || race

package engine

// packetMemory takes a pool's buffers and headers from the Go heap. Race
// builds use it so the race detector watches packet memory; both slices hold
// no pointers, so the collector still never scans them.
func packetMemory(n int) (packetMem, error) {
	arena := make([]byte, n*BufSize)
	return packetMem{arena: arena, metas: make([]meta, n), size: len(arena), unmap: func() {}}, nil
}

// hugeBytes is 0 for heap memory: whatever the kernel does with the heap is
// not the pool's to report.
func (m *packetMem) hugeBytes() (int64, error) { return 0, nil }
