package wire

import (
	"bytes"
	"encoding/binary"
	"sync/atomic"
	"testing"

	"github.com/pollnet/pollnet/engine"
)

// udpFrame builds an Ethernet/IPv4/UDP frame of n bytes for a flow.
func udpFrame(n int, src, dst [4]byte, sport, dport uint16, fill byte) []byte {
	f := make([]byte, n)
	f[12], f[13] = 0x08, 0x00
	f[14] = 0x45
	binary.BigEndian.PutUint16(f[16:], uint16(n-14))
	f[22] = 64
	f[23] = 17
	copy(f[26:30], src[:])
	copy(f[30:34], dst[:])
	binary.BigEndian.PutUint16(f[34:], sport)
	binary.BigEndian.PutUint16(f[36:], dport)
	for i := 42; i < n; i++ {
		f[i] = fill + byte(i)
	}
	return f
}

type harness struct {
	t    *testing.T
	pair *Pair
	pool *engine.Pool
	cs   engine.Caches
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	pr, err := NewPair(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := engine.NewPool("tx-"+t.Name(), 4096, 64)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, pair: pr, pool: pool}
	t.Cleanup(func() {
		h.cs.Flush()
		for _, p := range pr.Ports {
			if err := p.Close(); err != nil {
				t.Errorf("close %s: %v", p.Info().Name, err)
			}
		}
		if err := pool.Close(); err != nil {
			t.Errorf("sender pool: %v", err)
		}
	})
	return h
}

func (h *harness) mbuf(frame []byte) engine.Mbuf {
	h.t.Helper()
	m, err := h.cs.Alloc(h.pool)
	if err != nil {
		h.t.Fatal(err)
	}
	if len(frame) <= m.Tailroom() {
		b, _ := m.Append(len(frame))
		copy(b, frame)
		return m
	}
	off := 0
	seg := m
	for off < len(frame) {
		if seg.Tailroom() == 0 {
			s, _ := h.cs.Alloc(h.pool)
			m.Chain(s)
			seg = s
		}
		k := min(seg.Tailroom(), len(frame)-off)
		b, _ := m.Append(k)
		copy(b, frame[off:off+k])
		off += k
	}
	return m
}

func (h *harness) send(port, q int, frames ...[]byte) {
	h.t.Helper()
	var ms []engine.Mbuf
	for _, f := range frames {
		ms = append(ms, h.mbuf(f))
	}
	if n := h.pair.Ports[port].TxBurst(q, ms); n != len(ms) {
		h.t.Fatalf("TxBurst took %d of %d", n, len(ms))
	}
}

// recv drains a queue and returns the frames' bytes, freeing the mbufs.
func (h *harness) recv(port, q int) [][]byte {
	var out [][]byte
	var pkts [engine.Burst]engine.Mbuf
	for {
		n := h.pair.Ports[port].RxBurst(q, pkts[:])
		if n == 0 {
			return out
		}
		for _, m := range pkts[:n] {
			b := make([]byte, m.PktLen())
			m.CopyOut(b, 0)
			out = append(out, b)
		}
		h.cs.FreeBulk(pkts[:n])
	}
}

func TestCopyDelivers(t *testing.T) {
	h := newHarness(t, Config{})
	f := udpFrame(60, [4]byte{198, 18, 0, 1}, [4]byte{198, 18, 0, 2}, 1000, 9, 1)
	h.send(0, 0, f, f)
	got := h.recv(1, 0)
	if len(got) != 2 || !bytes.Equal(got[0], f) {
		t.Fatalf("received %d frames, first %x", len(got), got)
	}
	// Copy mode: the sender's buffers are done once sent, and go back to
	// their pool when the queue's completions are reaped.
	if n := h.pair.Ports[0].ReapTx(0); n != 2 {
		t.Fatalf("reaped %d completions, want 2", n)
	}
	h.pair.Ports[0].txq[0].caches.Flush()
	h.cs.Flush()
	if h.pool.Available() != h.pool.Size() {
		t.Fatalf("sender pool has %d of %d back", h.pool.Available(), h.pool.Size())
	}
	rx := h.pair.Ports[1].RxStats(0)
	tx := h.pair.Ports[0].TxStats(0)
	if rx.Packets != 2 || rx.Bytes != 120 || tx.Packets != 2 || tx.Bytes != 120 {
		t.Fatalf("rx %+v tx %+v", rx, tx)
	}
	// And the other direction.
	h.send(1, 0, f)
	if got := h.recv(0, 0); len(got) != 1 {
		t.Fatalf("reverse direction delivered %d", len(got))
	}
}

func TestZeroCopyHandsOverTheMbuf(t *testing.T) {
	h := newHarness(t, Config{ZeroCopy: true})
	m := h.mbuf(udpFrame(100, [4]byte{1, 2, 3, 4}, [4]byte{5, 6, 7, 8}, 1, 2, 0))
	h.pair.Ports[0].TxBurst(0, []engine.Mbuf{m})
	var pkts [4]engine.Mbuf
	if n := h.pair.Ports[1].RxBurst(0, pkts[:]); n != 1 || pkts[0] != m {
		t.Fatalf("zero-copy delivered %v, want the same mbuf %v", pkts[:n], m)
	}
	h.cs.Free(m)
}

func TestJumboFrameIsChained(t *testing.T) {
	h := newHarness(t, Config{})
	f := udpFrame(9000, [4]byte{198, 18, 0, 1}, [4]byte{198, 18, 0, 2}, 1, 2, 3)
	h.send(0, 0, f)
	var pkts [1]engine.Mbuf
	if n := h.pair.Ports[1].RxBurst(0, pkts[:]); n != 1 {
		t.Fatal("jumbo frame not delivered")
	}
	m := pkts[0]
	if m.Segs() < 5 || m.PktLen() != 9000 {
		t.Fatalf("jumbo frame: %d segments, %d bytes", m.Segs(), m.PktLen())
	}
	b := make([]byte, 9000)
	m.CopyOut(b, 0)
	h.cs.Free(m)
	if !bytes.Equal(b, f) {
		t.Fatal("jumbo frame bytes differ")
	}
	// Over the MTU: dropped and counted, not delivered.
	h.send(0, 0, make([]byte, DefaultMTU+maxLinkHeader+1))
	if got := h.recv(1, 0); len(got) != 0 || h.pair.Ports[0].TxStats(0).Drops[engine.DropTooLong] != 1 {
		t.Fatalf("oversized frame: delivered %d, too_long %d", len(got), h.pair.Ports[0].TxStats(0).Drops[engine.DropTooLong])
	}
}

func TestFullRingDropsAndCounts(t *testing.T) {
	h := newHarness(t, Config{RingSize: 64})
	f := udpFrame(60, [4]byte{1, 1, 1, 1}, [4]byte{2, 2, 2, 2}, 1, 2, 0)
	for i := 0; i < 10; i++ {
		var fs [][]byte
		for j := 0; j < 20; j++ {
			fs = append(fs, f)
		}
		h.send(0, 0, fs...) // never blocks, whatever the receiver does
	}
	got := h.recv(1, 0)
	missed := h.pair.Ports[1].RxStats(0).Drops[engine.DropRingFull]
	if len(got) != 64 || missed != 200-64 {
		t.Fatalf("received %d, rx_missed %d; want 64 and %d", len(got), missed, 200-64)
	}
}

func TestInterrupts(t *testing.T) {
	h := newHarness(t, Config{})
	var raised atomic.Int32
	p := h.pair.Ports[1]
	p.SetRxInterrupt(0, func() { raised.Add(1) })
	f := udpFrame(60, [4]byte{1, 1, 1, 1}, [4]byte{2, 2, 2, 2}, 1, 2, 0)
	h.send(0, 0, f)
	if raised.Load() != 0 {
		t.Fatal("interrupt raised while not armed")
	}
	// Arming with a frame already waiting raises at once: nothing stranded.
	p.ArmRx(0)
	if raised.Load() != 1 {
		t.Fatalf("arming over a waiting frame raised %d interrupts, want 1", raised.Load())
	}
	// The handler ran with the queue masked: more frames raise nothing.
	h.send(0, 0, f, f)
	if raised.Load() != 1 {
		t.Fatal("a masked queue raised an interrupt")
	}
	h.recv(1, 0)
	p.ArmRx(0)
	if raised.Load() != 1 {
		t.Fatal("arming an empty queue raised an interrupt")
	}
	h.send(0, 0, f)
	if raised.Load() != 2 || p.RxStats(0).Interrupts != 2 {
		t.Fatalf("armed queue: %d raised, counter %d", raised.Load(), p.RxStats(0).Interrupts)
	}
	h.recv(1, 0)
	p.ArmRx(0)
	p.DisarmRx(0)
	h.send(0, 0, f)
	if raised.Load() != 2 {
		t.Fatal("a disarmed queue raised an interrupt")
	}
	h.recv(1, 0)
}

func TestBadConfigs(t *testing.T) {
	for _, c := range []Config{
		{Queues: -1}, {Queues: 65}, {RingSize: 1000}, {RingSize: 1}, {MTU: 10},
		{Impair: [2]Impairment{{Loss: 1.5}}}, {Impair: [2]Impairment{{}, {Delay: -1}}},
	} {
		if pr, err := NewPair(c); err == nil {
			for _, p := range pr.Ports {
				p.Close()
			}
			t.Errorf("config %+v accepted", c)
		}
	}
}

func TestCloseReportsLeaks(t *testing.T) {
	pr, err := NewPair(Config{PoolSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	pool, _ := engine.NewPool("leak-src", 64, 8)
	var cs engine.Caches
	m, _ := cs.Alloc(pool)
	m.Append(60)
	pr.Ports[0].TxBurst(0, []engine.Mbuf{m})
	var pkts [1]engine.Mbuf
	pr.Ports[1].RxBurst(0, pkts[:]) // received and never freed: a leak
	pr.Ports[0].Close()
	if err := pr.Ports[1].Close(); err == nil {
		t.Fatal("closing a pair with an mbuf still out reported no leak")
	}
	engine.Free(pkts[0])
	cs.Flush()
	pool.Close()
}

func BenchmarkWire(b *testing.B) {
	for _, zc := range []bool{false, true} {
		name := "copy"
		if zc {
			name = "zero-copy"
		}
		b.Run(name, func(b *testing.B) {
			pr, _ := NewPair(Config{ZeroCopy: zc})
			pool, _ := engine.NewPool("bench-src", 4096, 256)
			var cs engine.Caches
			f := udpFrame(60, [4]byte{1, 1, 1, 1}, [4]byte{2, 2, 2, 2}, 1, 2, 0)
			var burst, rx [engine.Burst]engine.Mbuf
			b.ResetTimer()
			for i := 0; i < b.N; i += engine.Burst {
				cs.AllocBulk(pool, burst[:])
				for _, m := range burst {
					d, _ := m.Append(60)
					copy(d, f)
				}
				pr.Ports[0].TxBurst(0, burst[:])
				n := pr.Ports[1].RxBurst(0, rx[:])
				cs.FreeBulk(rx[:n])
			}
			b.StopTimer()
			cs.Flush()
			pr.Ports[0].Close()
			pr.Ports[1].Close()
			pool.Close()
		})
	}
}

// Every way across the wire gives the receiver the same metadata: the
// frame's bytes and what the receiving port itself sets (its RSS hash),
// never the sender's offload requests, hash or header lengths.
func TestEveryPathAcrossTheWireCarriesTheSameMetadata(t *testing.T) {
	src, dst := [4]byte{198, 18, 0, 1}, [4]byte{198, 18, 0, 2}
	for _, queues := range []int{1, 2} {
		for _, c := range []struct {
			name string
			cfg  Config
			size int
		}{
			{"copy", Config{}, 60},
			{"copy chained", Config{}, 3000},
			{"copy impaired", Config{Impair: [2]Impairment{{Duplicate: 1, Seed: 1}}}, 60},
			{"copy impaired chained", Config{Impair: [2]Impairment{{Duplicate: 1, Seed: 1}}}, 3000},
			{"zero-copy", Config{ZeroCopy: true}, 60},
			{"zero-copy chained", Config{ZeroCopy: true}, 3000},
		} {
			c.cfg.Queues = queues
			h := newHarness(t, c.cfg)
			f := udpFrame(c.size, src, dst, 1000, 9, 0)
			m := h.mbuf(f)
			m.SetFlags(engine.FlagTxIPCsum | engine.FlagTxL4Csum | engine.FlagTSO | engine.FlagRxIPCsumGood)
			m.SetHash(0xdeadbeef)
			m.SetHeaderLens(14, 20, 8)
			m.SetTSOSegSize(1000)
			// The hash is read before sending: the port frees m once sent.
			wantFlags, wantHash := uint32(0), uint32(0)
			if queues > 1 {
				wantFlags, wantHash = engine.FlagRSSHash, h.pair.Ports[0].hash(m)
			}
			h.pair.Ports[0].TxBurst(0, []engine.Mbuf{m})
			var pkts [4]engine.Mbuf
			for q := 0; q < queues; q++ {
				n := h.pair.Ports[1].RxBurst(q, pkts[:])
				for _, r := range pkts[:n] {
					l2, l3, l4 := r.HeaderLens()
					if r.Flags() != wantFlags || r.Flags()&engine.FlagRSSHash != 0 && r.Hash() != wantHash ||
						l2+l3+l4 != 0 || r.TSOSegSize() != 0 {
						t.Errorf("%s, %d queues: received flags %#x hash %#x lens %d/%d/%d tso %d; want flags %#x hash %#x and no lens",
							c.name, queues, r.Flags(), r.Hash(), l2, l3, l4, r.TSOSegSize(), wantFlags, wantHash)
					}
					h.cs.Free(r)
				}
			}
		}
	}
}

// With SetTxCaches the frames a queue has sent go back into the caller's
// cache (as a shard gets its mbufs back where it allocates them), whether
// freed by a reap or by the completion threshold of TxBurst, with no
// allocation per burst; nil gives them back to the queue's own caches.
func TestSentFramesComeBackIntoTheCallersCache(t *testing.T) {
	for _, reap := range []bool{true, false} {
		h := newHarness(t, Config{})
		tx, rx := h.pair.Ports[0], h.pair.Ports[1]
		var mine engine.Caches
		tx.SetTxCaches(0, &mine)
		cache := mine.For(h.pool)
		f := udpFrame(60, [4]byte{198, 18, 0, 1}, [4]byte{198, 18, 0, 2}, 1000, 9, 0)
		var burst, got [engine.Burst]engine.Mbuf
		sent := 0 // sent and not yet reaped
		round := func() {
			if err := cache.GetBulk(burst[:]); err != nil {
				t.Fatal(err)
			}
			for _, m := range burst {
				d, _ := m.Append(len(f))
				copy(d, f)
			}
			before := cache.Len()
			tx.TxBurst(0, burst[:])
			sent += engine.Burst
			if reap {
				tx.ReapTx(0)
			}
			if sent >= txFreeThresh || reap {
				if after := cache.Len(); after != before+sent {
					t.Fatalf("reap %v: the caller's cache went from %d to %d, want %d back", reap, before, after, sent)
				}
				sent = 0
			}
			n := rx.RxBurst(0, got[:])
			h.cs.FreeBulk(got[:n])
		}
		for i := 0; i < 4; i++ {
			round()
		}
		if allocs := testing.AllocsPerRun(100, round); allocs != 0 {
			t.Errorf("reap %v: %.1f allocations per burst", reap, allocs)
		}
		tx.ReapTx(0)
		sent = 0
		tx.SetTxCaches(0, nil)
		before := cache.Len()
		if err := cache.GetBulk(burst[:]); err != nil {
			t.Fatal(err)
		}
		tx.TxBurst(0, burst[:])
		tx.ReapTx(0)
		if after := cache.Len(); after != before-engine.Burst {
			t.Errorf("after SetTxCaches(nil) the caller's cache went from %d to %d: sent frames still come back to it", before, after)
		}
		h.cs.FreeBulk(got[:rx.RxBurst(0, got[:])])
		mine.Flush()
		tx.txq[0].caches.Flush()
	}
}
