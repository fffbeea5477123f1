package afxdp

import (
	"fmt"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/pollnet/pollnet/engine"
)

// benchRings is a queue's four rings in ordinary memory with the UMEM
// mapped as the port maps it: the benchmark plays the kernel's side, so
// RxBurst and TxBurst run as they do on a socket, system calls aside (the
// rings' flags never ask for a wakeup).
type benchRings struct {
	fill, comp, rx, tx *sharedRing
	rxd, txd           []unix.XDPDesc
	rxs, txs           struct{ prod, cons, flags uint32 }
}

func newBenchPort(b *testing.B, frames uint32) (*Port, *benchRings) {
	b.Helper()
	umem, err := mapUmem(2 * int(frames) * DefaultFrameSize)
	if err != nil {
		b.Fatal(err)
	}
	s := &socket{fd: -1, umem: umem, frameSize: DefaultFrameSize, frames: frames}
	r := &benchRings{fill: newShared(int(frames), 0), comp: newShared(int(frames), 0),
		rxd: make([]unix.XDPDesc, frames), txd: make([]unix.XDPDesc, frames)}
	s.fill, s.comp = r.fill.producer(), r.comp.consumer()
	s.rx = newRing(&r.rxs.prod, &r.rxs.cons, &r.rxs.flags, r.rxd, false)
	s.tx = newRing(&r.txs.prod, &r.txs.cons, &r.txs.flags, r.txd, true)
	pool, err := engine.NewPool("afxdp-bench", 4096, 0)
	if err != nil {
		b.Fatal(err)
	}
	p := &Port{pool: pool, socks: []*socket{s}, maxFrame: 1514}
	rq := &rxQueue{sock: s, fill: &s.fill, rx: &s.rx, rxEnd: uint64(frames) * DefaultFrameSize, pool: pool}
	rq.cache = rq.caches.For(pool)
	tq := &txQueue{sock: s, tx: &s.tx, comp: &s.comp, free: make([]uint64, 0, frames)}
	b.Cleanup(func() {
		rq.caches.Flush()
		tq.caches.Flush()
		if err := pool.Close(); err != nil {
			b.Errorf("pool: %v", err)
		}
		unix.Munmap(umem)
	})
	for i := frames; i < 2*frames; i++ {
		tq.free = append(tq.free, uint64(i)*DefaultFrameSize)
	}
	tq.done = &tq.caches
	rq.tq = tq
	p.rxq, p.txq = []*rxQueue{rq}, []*txQueue{tq}
	// Every receive frame on the fill ring, as openSocket leaves it.
	n := s.fill.free(frames)
	for i := uint32(0); i < n; i++ {
		*s.fill.slot(i) = uint64(i) * DefaultFrameSize
	}
	s.fill.submit(n)
	return p, r
}

// deliver plays the kernel's receive: n frames of size bytes from the fill
// ring onto the rx ring, at the XDP headroom as copy mode puts them.
func (r *benchRings) deliver(n int, size uint32) {
	f := r.fill.consumer()
	rx := newRing(&r.rxs.prod, &r.rxs.cons, &r.rxs.flags, r.rxd, true)
	k := f.avail(uint32(n))
	k = rx.free(k)
	for i := uint32(0); i < k; i++ {
		*rx.slot(i) = unix.XDPDesc{Addr: *f.slot(i) + unix.XDP_PACKET_HEADROOM, Len: size}
	}
	f.release(k)
	rx.submit(k)
}

// complete plays the kernel's transmit: every descriptor on the tx ring
// taken and its frame put on the completion ring.
func (r *benchRings) complete() {
	tx := newRing(&r.txs.prod, &r.txs.cons, &r.txs.flags, r.txd, false)
	c := r.comp.producer()
	k := tx.avail(1 << 16)
	k = c.free(k)
	for i := uint32(0); i < k; i++ {
		*c.slot(i) = tx.slot(i).Addr
	}
	tx.release(k)
	c.submit(k)
}

// BenchmarkBoundaryCopy measures the port's own copy between UMEM frames
// and mbufs, per frame, in bursts of 32 over a queue of 1024 frames each
// way: rx and tx run RxBurst and TxBurst themselves, against rings whose
// kernel side the benchmark plays (no system call, no kernel copy), with
// the mbufs' allocation and freeing; rx-copy and tx-copy are the copy
// alone (AppendBytes into an empty mbuf, trimmed back after; CopyOut into
// a UMEM frame).
func BenchmarkBoundaryCopy(b *testing.B) {
	const burst, frames = 32, 1024
	for _, size := range []int{64, 1514} {
		b.Run(fmt.Sprintf("rx/%d", size), func(b *testing.B) {
			p, r := newBenchPort(b, frames)
			pkts := make([]engine.Mbuf, burst)
			var cs engine.Caches
			defer cs.Flush()
			n := 0
			b.ResetTimer()
			for b.Loop() {
				r.deliver(burst, uint32(size))
				k := p.RxBurst(0, pkts)
				if k != burst {
					b.Fatalf("RxBurst got %d of %d", k, burst)
				}
				cs.FreeBulk(pkts[:k])
				n += k
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/frame")
		})
		b.Run(fmt.Sprintf("tx/%d", size), func(b *testing.B) {
			p, r := newBenchPort(b, frames)
			pkts := make([]engine.Mbuf, burst)
			var cs engine.Caches
			defer cs.Flush()
			n := 0
			b.ResetTimer()
			for b.Loop() {
				if err := cs.AllocBulk(p.pool, pkts); err != nil {
					b.Fatal(err)
				}
				for _, m := range pkts {
					m.Append(size) // the bytes the last user left: no copy of ours
				}
				k := p.TxBurst(0, pkts)
				if k != burst {
					b.Fatalf("TxBurst took %d of %d", k, burst)
				}
				r.complete()
				n += k
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/frame")
		})
		b.Run(fmt.Sprintf("rx-copy/%d", size), func(b *testing.B) {
			p, _ := newBenchPort(b, frames)
			var cs engine.Caches
			defer cs.Flush()
			umem := p.socks[0].umem
			ms := make([]engine.Mbuf, burst)
			if err := cs.AllocBulk(p.pool, ms); err != nil {
				b.Fatal(err)
			}
			defer cs.FreeBulk(ms)
			n, addr := 0, uint64(0)
			b.ResetTimer()
			for b.Loop() {
				for _, m := range ms {
					a := addr + unix.XDP_PACKET_HEADROOM
					cs.AppendBytes(m, p.pool, umem[a:a+uint64(size)])
					m.Trim(size) // empty again for the next round
					addr = (addr + DefaultFrameSize) % (frames * DefaultFrameSize)
				}
				n += burst
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/frame")
		})
		b.Run(fmt.Sprintf("tx-copy/%d", size), func(b *testing.B) {
			p, _ := newBenchPort(b, frames)
			var cs engine.Caches
			defer cs.Flush()
			umem := p.socks[0].umem
			ms := make([]engine.Mbuf, burst)
			if err := cs.AllocBulk(p.pool, ms); err != nil {
				b.Fatal(err)
			}
			for _, m := range ms {
				m.Append(size)
			}
			defer cs.FreeBulk(ms)
			n, addr := 0, uint64(frames*DefaultFrameSize)
			b.ResetTimer()
			for b.Loop() {
				for _, m := range ms {
					m.CopyOut(umem[addr:addr+uint64(size)], 0)
					addr += DefaultFrameSize
					if addr == 2*frames*DefaultFrameSize {
						addr = frames * DefaultFrameSize
					}
				}
				n += burst
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/frame")
		})
	}
}
