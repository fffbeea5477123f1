//go:build dpdk

package dpdk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/pollnet/pollnet/engine"
)

// The one EAL of this test process: net_null0 comes from the command line;
// the tests probe their other devices at run time.
var testEAL = EALConfig{MemoryMB: 256, Args: []string{"--vdev", "net_null0,size=64"}}

func TestMain(m *testing.M) {
	if err := InitEAL(testEAL); err != nil {
		if os.Geteuid() != 0 {
			fmt.Printf("skipping pmd/dpdk: %v (not root: run as root)\n", err)
			os.Exit(0)
		}
		fmt.Println(err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func open(t testing.TB, cfg Config) *Port {
	t.Helper()
	p, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("close %s: %v", cfg.Device, err)
		}
	})
	return p
}

// frames fills pkts with frames of size bytes from c, each carrying seq+i
// after its Ethernet header.
func frames(t testing.TB, c *engine.Cache, pkts []engine.Mbuf, size, seq int) {
	t.Helper()
	for i := range pkts {
		m, err := c.Get()
		if err != nil {
			t.Fatal(err)
		}
		b, err := m.Append(size)
		if err != nil {
			t.Fatal(err)
		}
		for j := range b {
			b[j] = byte(j)
		}
		binary.BigEndian.PutUint32(b[14:], uint32(seq+i))
		pkts[i] = m
	}
}

func newPool(t testing.TB, name string, n int) *engine.Pool {
	t.Helper()
	p, err := engine.NewPool(name, n, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("pool %s: %v", name, err)
		}
	})
	return p
}

// rxAll receives from p until it finds nothing twice in a row.
func rxAll(p *Port, got map[uint32]int, size int, bad *int) {
	var pkts [engine.Burst]engine.Mbuf
	for empty := 0; empty < 2; {
		n := p.RxBurst(0, pkts[:])
		if n == 0 {
			empty++
			continue
		}
		for _, m := range pkts[:n] {
			d := m.Data()
			if m.PktLen() != size || m.Segs() != 1 || len(d) != size {
				*bad++
			} else {
				got[binary.BigEndian.Uint32(d[14:])]++
				for j := 18; j < size; j++ {
					if d[j] != byte(j) {
						*bad++
						break
					}
				}
			}
			engine.Free(m)
		}
	}
}

func TestFramesSentOnARingComeBackExactlyOnceInBurstsOf32(t *testing.T) {
	// net_ring without devargs: each queue's transmit ring is its receive ring.
	src := newPool(t, "ring-src", 1024).NewCache() // closed after the port
	p := open(t, Config{Device: "net_ring_loop1"})
	if p.Info().Features.Interrupts {
		t.Fatal("a DPDK port says it raises interrupts")
	}
	const bursts, size = 8, 100
	for b := 0; b < bursts; b++ {
		var pkts [engine.Burst]engine.Mbuf
		frames(t, src, pkts[:], size, b*engine.Burst)
		if n := p.TxBurst(0, pkts[:]); n != engine.Burst {
			t.Fatalf("burst %d: the ring took %d of %d", b, n, engine.Burst)
		}
	}
	src.Flush()
	got := map[uint32]int{}
	bad := 0
	rxAll(p, got, size, &bad)
	if bad > 0 {
		t.Fatalf("%d frames came back damaged", bad)
	}
	for i := 0; i < bursts*engine.Burst; i++ {
		if got[uint32(i)] != 1 {
			t.Fatalf("frame %d came back %d times", i, got[uint32(i)])
		}
	}
	if len(got) != bursts*engine.Burst {
		t.Fatalf("%d distinct frames came back, want %d", len(got), bursts*engine.Burst)
	}
	const n, bytes = bursts * engine.Burst, bursts * engine.Burst * size
	rx, tx := engine.PortStats(p)
	if rx.Packets != n || rx.Bytes != bytes || rx.Dropped() != 0 {
		t.Errorf("rx counters %+v, want %d packets, %d bytes, no drops", rx, n, bytes)
	}
	if tx.Packets != n || tx.Bytes != bytes || tx.Dropped() != 0 {
		t.Errorf("tx counters %+v, want %d packets, %d bytes, no drops", tx, n, bytes)
	}
	st, err := p.EthStats()
	if err != nil {
		t.Fatal(err)
	}
	if st.IPackets != n || st.OPackets != n || st.IMissed != 0 || st.OErrors != 0 {
		t.Errorf("the device counted %+v, want %d packets each way", st, n)
	}
}

func TestANullPortYieldsFramesAndSwallowsWhatItSends(t *testing.T) {
	p := open(t, Config{Device: "net_null0", PortIndex: 7})
	if p.Info().Driver != "net_null" {
		t.Errorf("driver %q, want net_null", p.Info().Driver)
	}
	var pkts [engine.Burst]engine.Mbuf
	for b := 0; b < 3; b++ {
		if n := p.RxBurst(0, pkts[:]); n != engine.Burst {
			t.Fatalf("burst %d: received %d, want a full burst", b, n)
		}
		for _, m := range pkts {
			if m.PktLen() != 64 || m.Port() != 7 || m.Queue() != 0 {
				t.Fatalf("frame of %d bytes from port %d queue %d, want 64 from 7 and 0", m.PktLen(), m.Port(), m.Queue())
			}
		}
		if n := p.TxBurst(0, pkts[:]); n != engine.Burst {
			t.Fatalf("burst %d: the null port took %d of %d", b, n, engine.Burst)
		}
	}
	rx, tx := engine.PortStats(p)
	if rx.Packets != 3*engine.Burst || rx.Bytes != 3*engine.Burst*64 || tx.Packets != 3*engine.Burst || tx.Bytes != 3*engine.Burst*64 {
		t.Errorf("rx %+v tx %+v, want %d frames of 64 bytes each way", rx, tx, 3*engine.Burst)
	}
	if avail := p.Pool().Available(); avail != p.Pool().Size()-p.rxq[0].nspare {
		t.Errorf("%d of %d mbufs back in the pool with %d spare: sent frames were not freed",
			avail, p.Pool().Size(), p.rxq[0].nspare)
	}
}

func TestBurstsAllocateNothingInGo(t *testing.T) {
	src := newPool(t, "alloc-src", 1024).NewCache()
	loop := open(t, Config{Device: "net_ring_loop2"})
	null := open(t, Config{Device: "net_null1,size=128"})
	var pkts [engine.Burst]engine.Mbuf
	frames(t, src, pkts[:], 60, 0)
	for i := range pkts {
		engine.Free(pkts[i])
	}
	// The same 32 frames go round the ring: each round sends them and
	// receives them back.
	got := 0
	allocs := testing.AllocsPerRun(200, func() {
		for i := range pkts {
			m, _ := src.Get()
			m.Append(60)
			pkts[i] = m
		}
		loop.TxBurst(0, pkts[:])
		got += loop.RxBurst(0, pkts[:])
		for _, m := range pkts {
			engine.Free(m)
		}
	})
	if allocs != 0 {
		t.Errorf("a burst round over net_ring allocated %v times", allocs)
	}
	if got < 200*engine.Burst {
		t.Errorf("%d frames came back over 201 rounds of %d", got, engine.Burst)
	}
	allocs = testing.AllocsPerRun(200, func() {
		n := null.RxBurst(0, pkts[:])
		null.TxBurst(0, pkts[:n])
	})
	if allocs != 0 {
		t.Errorf("a burst round over net_null allocated %v times", allocs)
	}
	src.Flush()
}

func TestWithNoMbufToReceiveIntoFramesAreDroppedAndCounted(t *testing.T) {
	src := newPool(t, "nombuf-src", 256).NewCache()
	p := open(t, Config{Device: "net_ring_loop3", PoolSize: 2 * burstMax})
	// Hold every mbuf of the port's pool.
	var held []engine.Mbuf
	c := p.Pool().NewCache()
	for {
		m, err := c.Get()
		if err != nil {
			break
		}
		held = append(held, m)
	}
	var pkts [engine.Burst]engine.Mbuf
	frames(t, src, pkts[:], 60, 0)
	if n := p.TxBurst(0, pkts[:]); n != engine.Burst {
		t.Fatalf("sent %d of %d", n, engine.Burst)
	}
	if n := p.RxBurst(0, pkts[:]); n != 0 {
		t.Fatalf("received %d frames with no mbuf to put them in", n)
	}
	if d := p.RxStats(0).Drops[engine.DropNoMbuf]; d != engine.Burst {
		t.Errorf("rx_nombuf %d, want %d", d, engine.Burst)
	}
	for _, m := range held {
		engine.Free(m)
	}
	c.Close()
	if n := p.RxBurst(0, pkts[:]); n != 0 {
		t.Errorf("%d dropped frames were received after all", n)
	}
	src.Flush()
}

func TestARingPairIsACableBetweenItsPorts(t *testing.T) {
	src := newPool(t, "pair-src", 256).NewCache()
	a, b, err := NewRingPair("cable", Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []*Port{b, a} {
		t.Cleanup(func() {
			if err := p.Close(); err != nil {
				t.Errorf("close %s: %v", p.Info().Name, err)
			}
		})
	}
	var pkts [engine.Burst]engine.Mbuf
	frames(t, src, pkts[:], 64, 100)
	if n := a.TxBurst(0, pkts[:]); n != engine.Burst {
		t.Fatalf("a sent %d of %d", n, engine.Burst)
	}
	frames(t, src, pkts[:], 64, 200)
	if n := b.TxBurst(0, pkts[:]); n != engine.Burst {
		t.Fatalf("b sent %d of %d", n, engine.Burst)
	}
	for _, c := range []struct {
		p     *Port
		first uint32
	}{{a, 200}, {b, 100}} {
		got, bad := map[uint32]int{}, 0
		rxAll(c.p, got, 64, &bad)
		if bad > 0 || len(got) != engine.Burst {
			t.Fatalf("%s received %d distinct frames and %d damaged, want %d", c.p.Info().Name, len(got), bad, engine.Burst)
		}
		for i := uint32(0); i < engine.Burst; i++ {
			if got[c.first+i] != 1 {
				t.Fatalf("%s received frame %d %d times: frames must cross to the other port", c.p.Info().Name, c.first+i, got[c.first+i])
			}
		}
	}
	// Frames left in a ring when both ports close go back to their pool.
	frames(t, src, pkts[:], 64, 300)
	a.TxBurst(0, pkts[:])
	src.Flush()
}

func TestChainedFramesLeaveWholeAndTooLongOnesAreDropped(t *testing.T) {
	src := newPool(t, "chain-src", 2048).NewCache()
	p := open(t, Config{Device: "net_ring_loop4", MTU: 1500})
	var pkts [4]engine.Mbuf
	// A 1000-byte frame in three segments.
	frames(t, src, pkts[:1], 400, 7)
	for _, n := range []int{300, 300} {
		s, _ := src.Get()
		b, _ := s.Append(n)
		for j := range b {
			b[j] = byte(pkts[0].PktLen() + j)
		}
		if err := pkts[0].Chain(s); err != nil {
			t.Fatal(err)
		}
	}
	// Frames over the MTU and runts are dropped, the chain after them sent.
	long, _ := src.Get()
	long.Append(1000)
	s, _ := src.Get()
	s.Append(600)
	long.Chain(s)
	runt, _ := src.Get()
	runt.Append(10)
	pkts[1], pkts[2], pkts[3] = long, runt, pkts[0]
	frames(t, src, pkts[:1], 60, 8)
	if n := p.TxBurst(0, pkts[:]); n != 4 {
		t.Fatalf("the port took %d of 4 frames", n)
	}
	got, bad := map[uint32]int{}, 0
	var rx [4]engine.Mbuf
	n := p.RxBurst(0, rx[:])
	if n != 2 {
		t.Fatalf("received %d frames, want the two good ones", n)
	}
	for i, want := range []int{60, 1000} {
		d := rx[i].Data()
		if len(d) != want || rx[i].Segs() != 1 {
			t.Fatalf("frame %d: %d bytes in %d segments, want %d in one", i, len(d), rx[i].Segs(), want)
		}
		for j := 18; j < want; j++ {
			if d[j] != byte(j) {
				bad++
			}
		}
		got[binary.BigEndian.Uint32(d[14:])]++
		engine.Free(rx[i])
	}
	if bad > 0 || got[7] != 1 || got[8] != 1 {
		t.Errorf("frames %v, %d bytes differ", got, bad)
	}
	tx := p.TxStats(0)
	if tx.Packets != 2 || tx.Bytes != 1060 || tx.Drops[engine.DropTooLong] != 1 || tx.Drops[engine.DropError] != 1 {
		t.Errorf("tx counters %+v, want 2 frames of 1060 bytes, one too long, one runt", tx)
	}
	src.Flush()
}

func TestTheNAPIModeRefusesADPDKPort(t *testing.T) {
	p := open(t, Config{Device: "net_null2"})
	sq, err := engine.NewSoftirq(nil, engine.SoftirqConfig{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = sq.Add(engine.NAPIConfig{Port: p, Handler: func(*engine.Worker, engine.QueueRef, []engine.Mbuf) {}})
	if err == nil || !strings.Contains(err.Error(), "cannot raise interrupts") {
		t.Fatalf("adding a DPDK port to a softirq: %v, want a refusal saying it has no interrupts", err)
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "poll mode") {
			t.Errorf("SetRxInterrupt: %v, want a panic pointing at the poll mode", r)
		}
	}()
	p.SetRxInterrupt(0, func() {})
}

func TestASecondEALIsRefusedAndTheSameOneIsNot(t *testing.T) {
	if err := InitEAL(testEAL); err != nil {
		t.Errorf("the same configuration again: %v", err)
	}
	err := InitEAL(EALConfig{Args: []string{"--vdev", "net_null9"}})
	if err == nil || !strings.Contains(err.Error(), "one EAL per process") {
		t.Errorf("another configuration: %v, want a refusal", err)
	}
}

func TestOpenSaysWhatIsWrong(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "Device is empty"},
		{Config{Device: "net_null0", MTU: 9000}, "MTU 9000 out of range"},
		{Config{Device: "no_such_driver0"}, "probing it as a device failed"},
	} {
		if _, err := Open(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%+v): %v, want %q", c.cfg, err, c.want)
		}
	}
	p := open(t, Config{Device: "net_null3"})
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	// Its device was removed: the name can be probed again.
	open(t, Config{Device: "net_null3"})
}

// BenchmarkRingRoundTrip sends a burst of 32 frames into net_ring and
// receives it back: per frame, two copies (ours into an rte_mbuf, and back)
// and the ring's own work. The difference between sizes is what the copies
// at the boundary cost.
func BenchmarkRingRoundTrip(b *testing.B) {
	for i, size := range []int{64, 1514} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			src := newPool(b, fmt.Sprintf("bench-src%d", i), 1024).NewCache()
			p := open(b, Config{Device: fmt.Sprintf("net_ring_bench%d", i)})
			var pkts [engine.Burst]engine.Mbuf
			b.SetBytes(int64(size * engine.Burst))
			for b.Loop() {
				for k := range pkts {
					m, _ := src.Get()
					m.Append(size)
					pkts[k] = m
				}
				p.TxBurst(0, pkts[:])
				n := p.RxBurst(0, pkts[:])
				for _, m := range pkts[:n] {
					engine.Free(m)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*engine.Burst), "ns/frame")
			src.Flush()
		})
	}
}

func TestReceivedFramesLongerThanAnMbufAreDroppedAndCounted(t *testing.T) {
	// net_null makes frames of its size without writing them.
	p := open(t, Config{Device: "net_null4,size=2100"})
	var pkts [engine.Burst]engine.Mbuf
	if n := p.RxBurst(0, pkts[:]); n != 0 {
		t.Fatalf("received %d frames of 2100 bytes into mbufs of %d", n, engine.DataRoom)
	}
	if rx := p.RxStats(0); rx.Drops[engine.DropTooLong] != engine.Burst || rx.Packets != 0 {
		t.Errorf("rx counters %+v, want %d too long", rx, engine.Burst)
	}
}
