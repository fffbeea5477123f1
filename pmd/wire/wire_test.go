package wire

import (
	"bytes"
	"encoding/binary"
	"sync/atomic"
	"testing"
	"time"

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

func TestToeplitzVectors(t *testing.T) {
	// Verification values from Microsoft's RSS specification.
	tz, err := engine.NewToeplitz(engine.DefaultRSSKey[:], 12)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		src, dst     [4]byte
		sport, dport uint16
		withPorts    uint32
		addrsOnly    uint32
	}{
		{[4]byte{66, 9, 149, 187}, [4]byte{161, 142, 100, 80}, 2794, 1766, 0x51ccc178, 0x323e8fc2},
		{[4]byte{199, 92, 111, 2}, [4]byte{65, 69, 140, 83}, 14230, 4739, 0xc626b0ea, 0xd718262a},
		{[4]byte{24, 19, 198, 95}, [4]byte{12, 22, 207, 184}, 12898, 38024, 0x5c2b394a, 0xd2d0a5de},
	}
	for _, c := range cases {
		var in [12]byte
		copy(in[0:4], c.src[:])
		copy(in[4:8], c.dst[:])
		binary.BigEndian.PutUint16(in[8:], c.sport)
		binary.BigEndian.PutUint16(in[10:], c.dport)
		if h := tz.Hash(in[:]); h != c.withPorts {
			t.Errorf("%v:%d -> %v:%d: hash %#x, want %#x", c.src, c.sport, c.dst, c.dport, h, c.withPorts)
		}
		if h := tz.Hash(in[:8]); h != c.addrsOnly {
			t.Errorf("%v -> %v: hash %#x, want %#x", c.src, c.dst, h, c.addrsOnly)
		}
	}
	if _, err := engine.NewToeplitz(make([]byte, 10), 12); err == nil {
		t.Fatal("a 10-byte key accepted for 12-byte inputs")
	}
}

func TestRSSSpreadsFlowsAndKeepsEachOnOneQueue(t *testing.T) {
	const queues = 4
	h := newHarness(t, Config{Queues: queues})
	queueOf := map[uint16]int{}
	for round := 0; round < 3; round++ {
		for sport := uint16(1000); sport < 1064; sport++ {
			h.send(0, int(sport)%queues, udpFrame(60, [4]byte{198, 18, 0, 1}, [4]byte{198, 18, 0, 2}, sport, 9, 0))
		}
		for q := 0; q < queues; q++ {
			for _, f := range h.recv(1, q) {
				sport := binary.BigEndian.Uint16(f[34:])
				if prev, ok := queueOf[sport]; ok && prev != q {
					t.Fatalf("flow %d moved from queue %d to %d", sport, prev, q)
				}
				queueOf[sport] = q
			}
		}
	}
	per := make([]int, queues)
	for _, q := range queueOf {
		per[q]++
	}
	for q, n := range per {
		if n < 64/queues/3 {
			t.Fatalf("queue %d got %d of 64 flows: %v", q, n, per)
		}
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

func TestImpairmentIsSeededAndCounted(t *testing.T) {
	run := func(seed uint64) (int, uint64) {
		h := newHarness(t, Config{Impair: [2]Impairment{{Loss: 0.2, Seed: seed}}})
		f := udpFrame(60, [4]byte{1, 1, 1, 1}, [4]byte{2, 2, 2, 2}, 1, 2, 0)
		got := 0
		for i := 0; i < 50; i++ {
			var fs [][]byte
			for j := 0; j < 20; j++ {
				fs = append(fs, f)
			}
			h.send(0, 0, fs...)
			got += len(h.recv(1, 0))
		}
		return got, h.pair.Ports[0].TxStats(0).Drops[engine.DropImpairment]
	}
	got, lost := run(7)
	if got+int(lost) != 1000 || lost < 150 || lost > 250 {
		t.Fatalf("loss 0.2 over 1000 frames: got %d, lost %d", got, lost)
	}
	again, _ := run(7)
	if again != got {
		t.Fatalf("same seed, different outcome: %d then %d", got, again)
	}
}

func seqFrames(n int) [][]byte {
	var fs [][]byte
	for i := 0; i < n; i++ {
		f := udpFrame(60, [4]byte{1, 1, 1, 1}, [4]byte{2, 2, 2, 2}, 1, 2, 0)
		binary.BigEndian.PutUint32(f[42:], uint32(i))
		fs = append(fs, f)
	}
	return fs
}

func seqs(fs [][]byte) []uint32 {
	var s []uint32
	for _, f := range fs {
		s = append(s, binary.BigEndian.Uint32(f[42:]))
	}
	return s
}

func TestDuplicateReorderCorrupt(t *testing.T) {
	t.Run("duplicate", func(t *testing.T) {
		h := newHarness(t, Config{Impair: [2]Impairment{{Duplicate: 1, Seed: 1}}})
		h.send(0, 0, seqFrames(3)...)
		if s := seqs(h.recv(1, 0)); len(s) != 6 || s[0] != 0 || s[1] != 0 || s[5] != 2 {
			t.Fatalf("duplicate 1.0: got %v", s)
		}
	})
	t.Run("reorder", func(t *testing.T) {
		h := newHarness(t, Config{Impair: [2]Impairment{{Reorder: 1, Seed: 1}}})
		h.send(0, 0, seqFrames(4)...)
		// Every frame that finds no frame already held is held back and
		// goes out after the next one.
		if s := seqs(h.recv(1, 0)); len(s) != 4 || s[0] != 1 || s[1] != 0 || s[2] != 3 || s[3] != 2 {
			t.Fatalf("reorder 1.0: got %v", s)
		}
	})
	t.Run("corrupt", func(t *testing.T) {
		h := newHarness(t, Config{Impair: [2]Impairment{{Corrupt: 1, Seed: 1}}})
		fs := seqFrames(20)
		h.send(0, 0, fs...)
		got := h.recv(1, 0)
		if len(got) != 20 {
			t.Fatalf("corrupt: got %d frames", len(got))
		}
		for i, g := range got {
			diff := 0
			for j := range g {
				for b := g[j] ^ fs[i][j]; b != 0; b &= b - 1 {
					diff++
				}
			}
			if diff != 1 {
				t.Fatalf("frame %d differs in %d bits, want 1", i, diff)
			}
		}
	})
	t.Run("delay", func(t *testing.T) {
		h := newHarness(t, Config{Impair: [2]Impairment{{Delay: 30 * time.Millisecond, Seed: 1}}})
		start := time.Now()
		h.send(0, 0, seqFrames(3)...)
		if got := h.recv(1, 0); len(got) != 0 {
			t.Fatalf("delayed frames arrived at once: %d", len(got))
		}
		var got [][]byte
		for len(got) < 3 && time.Since(start) < 5*time.Second {
			time.Sleep(5 * time.Millisecond)
			got = append(got, h.recv(1, 0)...)
		}
		if el := time.Since(start); len(got) != 3 || el < 30*time.Millisecond {
			t.Fatalf("delay 30ms: %d frames after %v", len(got), el)
		}
		if s := seqs(got); s[0] != 0 || s[2] != 2 {
			t.Fatalf("delay reordered frames: %v", s)
		}
	})
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

// fragment makes f an IPv4 fragment: more fragments follow if mf, at byte
// offset off of the datagram.
func fragment(f []byte, mf bool, off int) []byte {
	v := uint16(off / 8)
	if mf {
		v |= 0x2000
	}
	binary.BigEndian.PutUint16(f[20:], v)
	return f
}

// A datagram's fragments land on one queue: RSS hashes fragments, the first
// included, on their addresses only, as NICs and Linux do, since only the
// first carries the ports.
func TestFragmentsOfADatagramShareAQueue(t *testing.T) {
	const queues = 4
	h := newHarness(t, Config{Queues: queues})
	src, dst := [4]byte{198, 18, 0, 1}, [4]byte{198, 18, 0, 2}
	for sport := uint16(1000); sport < 1032; sport++ {
		h.send(0, 0, fragment(udpFrame(1400, src, dst, sport, 9, 0), true, 0))
		h.send(0, 0, fragment(udpFrame(200, src, dst, sport, 9, 0), false, 1376))
	}
	used := 0
	for q := 0; q < queues; q++ {
		if n := len(h.recv(1, q)); n > 0 {
			used++
			if n != 64 {
				t.Errorf("queue %d got %d of the 64 fragments", q, n)
			}
		}
	}
	if used != 1 {
		t.Fatalf("fragments of one address pair spread over %d queues", used)
	}
}

// queueOf is the peer queue RSS picks for a frame sent from port 0.
func queueOf(h *harness, frame []byte) int {
	m := h.mbuf(frame)
	defer h.cs.Free(m)
	return h.pair.Ports[0].queueFor(m)
}

// A frame the receiver cannot take is counted on the queue it was bound for,
// on every path: a duplicate or a copy made to corrupt as much as the frame.
func TestDropsAreCountedOnTheQueueTheFrameWasBoundFor(t *testing.T) {
	const queues = 4
	src, dst := [4]byte{198, 18, 0, 1}, [4]byte{198, 18, 0, 2}
	for _, c := range []struct {
		name   string
		impair Impairment
	}{
		{"duplicate", Impairment{Duplicate: 1, Seed: 1}},
		{"corrupt", Impairment{Corrupt: 1, Seed: 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, Config{Queues: queues, PoolSize: 64, Impair: [2]Impairment{c.impair}})
			var f []byte
			want := 0
			for sport := uint16(1000); want == 0; sport++ {
				f = udpFrame(60, src, dst, sport, 9, 0)
				want = queueOf(h, f)
			}
			// The receiver's pool is empty: every copy fails.
			rxPool := h.pair.Ports[1].Pool()
			var held []engine.Mbuf
			for {
				m, err := h.cs.Alloc(rxPool)
				if err != nil {
					break
				}
				held = append(held, m)
			}
			// A shared frame: corrupting it means copying it first.
			m := h.mbuf(f)
			engine.Ref(m)
			h.pair.Ports[0].TxBurst(0, []engine.Mbuf{m})
			h.cs.Free(m)
			h.cs.FreeBulk(held)
			for q := 0; q < queues; q++ {
				nombuf := h.pair.Ports[1].RxStats(q).Drops[engine.DropNoMbuf]
				if (q == want) != (nombuf > 0) {
					t.Errorf("queue %d: rx_nombuf %d; the frame was bound for queue %d", q, nombuf, want)
				}
			}
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
