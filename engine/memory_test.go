package engine

import (
	"strings"
	"testing"
)

func TestPoolMemoryReportsHugePagesWithinItsMapping(t *testing.T) {
	p := newTestPool(t, 4096, 0)
	mem, err := p.Memory()
	if err != nil {
		t.Fatal(err)
	}
	if mem.Bytes < int64(p.Size())*BufSize {
		t.Fatalf("pool of %d mbufs reports %d bytes", p.Size(), mem.Bytes)
	}
	if mem.HugeBytes < 0 || mem.HugeBytes > mem.Bytes {
		t.Fatalf("%d bytes in huge pages of %d mapped", mem.HugeBytes, mem.Bytes)
	}
	if raceEnabled && mem.HugeBytes != 0 {
		t.Fatalf("a heap pool reports %d bytes of huge pages", mem.HugeBytes)
	}
	t.Logf("%d of %d bytes in huge pages", mem.HugeBytes, mem.Bytes)
}

// A /proc/self/smaps excerpt: the pool's range 7f0000000000-7f0000800000 is
// split in two mappings by the kernel, and a neighbour starts inside the
// last one's range.
const smapsGolden = `7effffe00000-7f0000000000 rw-p 00000000 00:00 0 
Size:               2048 kB
AnonHugePages:      2048 kB
7f0000000000-7f0000400000 rw-p 00000000 00:00 0 
Size:               4096 kB
Rss:                4096 kB
AnonHugePages:      4096 kB
VmFlags: rd wr mr mw me ac sd hg 
7f0000400000-7f0000a00000 rw-p 00000000 00:00 0 
Size:               6144 kB
AnonHugePages:      6144 kB
7f0000a00000-7f0000c00000 r--p 00000000 00:00 0  [heap]
AnonHugePages:      2048 kB
`

func TestSmapsHugePagesCountOnlyThePoolsRange(t *testing.T) {
	got, err := hugeBytesIn(strings.NewReader(smapsGolden), 0x7f0000000000, 0x7f0000800000)
	if err != nil {
		t.Fatal(err)
	}
	// 4 MiB from the first mapping; the second spans past the range, so
	// only its 4 MiB inside the range can count.
	if want := int64(8 << 20); got != want {
		t.Fatalf("huge bytes %d, want %d", got, want)
	}
	if _, err := hugeBytesIn(strings.NewReader("garbage\n"), 0, 1); err != nil {
		t.Fatalf("a line it does not know: %v", err)
	}
}

func TestPacketMemoryCountsEveryPoolMade(t *testing.T) {
	before := PacketMemory()
	p, err := NewPool("memory-total", 1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	after := PacketMemory()
	m, _ := p.Memory()
	if after.Pools != before.Pools+1 || after.Bytes-before.Bytes != m.Bytes || m.Bytes < 1000*BufSize {
		t.Fatalf("total grew by %d bytes for a pool of %d", after.Bytes-before.Bytes, m.Bytes)
	}
	if after.HugeBytes < before.HugeBytes || after.HugeBytes > after.Bytes {
		t.Fatalf("huge bytes %d of %d", after.HugeBytes, after.Bytes)
	}
}
