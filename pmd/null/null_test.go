package null

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/pollnet/pollnet/engine"
)

func newPort(t *testing.T, cfg Config) *Port {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("close: %v", err)
		}
	})
	return p
}

func bothModes(t *testing.T, f func(t *testing.T, copy bool)) {
	for _, copy := range []bool{false, true} {
		t.Run(fmt.Sprintf("copy=%v", copy), func(t *testing.T) { f(t, copy) })
	}
}

func TestReceivedFramesHoldTheTemplate(t *testing.T) {
	bothModes(t, func(t *testing.T, copy bool) {
		for _, size := range []int{MinSize, 64, 1514, MaxSize} {
			p := newPort(t, Config{Size: size, Copy: copy, PortIndex: 3})
			want := p.Template()
			if len(want) != size {
				t.Fatalf("template of %d bytes, want %d", len(want), size)
			}
			if debugBuild && !copy {
				// The pool's buffers were freed after the fill, and
				// the debug build poisons what it frees.
				want = bytes.Repeat([]byte{0x6b}, size)
			}
			var pkts [engine.Burst]engine.Mbuf
			for burst := 0; burst < 3; burst++ {
				if n := p.RxBurst(0, pkts[:]); n != engine.Burst {
					t.Fatalf("size %d: received %d, want a full burst", size, n)
				}
				for _, m := range pkts {
					if m.PktLen() != size || m.Segs() != 1 || !bytes.Equal(m.Data(), want) {
						t.Fatalf("size %d: frame of %d bytes in %d segments differs from the template", size, m.PktLen(), m.Segs())
					}
					if m.Port() != 3 || m.Queue() != 0 {
						t.Errorf("received on port %d queue %d, want 3 and 0", m.Port(), m.Queue())
					}
				}
				p.TxBurst(0, pkts[:])
			}
			rx, tx := engine.PortStats(p)
			if rx.Packets != 3*engine.Burst || rx.Bytes != uint64(3*engine.Burst*size) {
				t.Errorf("rx %+v", rx)
			}
			if tx.Packets != 3*engine.Burst || tx.Bytes != uint64(3*engine.Burst*size) {
				t.Errorf("tx %+v", tx)
			}
		}
	})
}

func TestTransmitFreesEveryFrame(t *testing.T) {
	bothModes(t, func(t *testing.T, copy bool) {
		p := newPort(t, Config{Copy: copy, Queues: 2, PoolSize: 1024})
		// Frames of another pool come back to it too.
		other, err := engine.NewPool("other", 64, 0)
		if err != nil {
			t.Fatal(err)
		}
		var held []engine.Mbuf
		var pkts [engine.Burst]engine.Mbuf
		for i := 0; i < 10; i++ {
			n := p.RxBurst(i%2, pkts[:])
			held = append(held, pkts[:n]...)
		}
		if got := p.Pool().Available(); got != p.Pool().Size()-len(held) {
			t.Fatalf("%d available with %d held, pool of %d", got, len(held), p.Pool().Size())
		}
		var mine engine.Caches
		for range 5 {
			m, err := mine.Alloc(other)
			if err != nil {
				t.Fatal(err)
			}
			m.SetLen(60)
			held = append(held, m)
		}
		mine.Close()
		for len(held) > 0 {
			k := min(len(held), 7) // odd bursts, across both queues
			if n := p.TxBurst(len(held)%2, held[:k]); n != k {
				t.Fatalf("took %d of %d", n, k)
			}
			held = held[k:]
		}
		if got := p.Pool().Available(); got != p.Pool().Size() {
			t.Errorf("%d of %d mbufs back in the pool", got, p.Pool().Size())
		}
		if err := other.Close(); err != nil {
			t.Errorf("the other pool: %v", err)
		}
		if err := p.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
}

func TestCopyModeCopiesBothWays(t *testing.T) {
	p := newPort(t, Config{Copy: true, PoolSize: 2 * engine.Burst})
	tq := p.txq[0]
	var pkts [engine.Burst]engine.Mbuf
	// Write a mark into every frame of the pool and send it.
	for round := 0; round < 2; round++ {
		if n := p.RxBurst(0, pkts[:]); n != engine.Burst {
			t.Fatalf("received %d", n)
		}
		for i, m := range pkts {
			d := m.Data()
			copy(d[20:], "marked")
			d[26] = byte(round)
			d[27] = byte(i)
		}
		p.TxBurst(0, pkts[:])
		if got := tq.scratch[20:28]; !bytes.Equal(got, []byte{'m', 'a', 'r', 'k', 'e', 'd', byte(round), engine.Burst - 1}) {
			t.Fatalf("scratch holds %q after sending the marked burst %d", got, round)
		}
	}
	// Every buffer has been written; a receive copies the template over.
	want := p.Template()
	for round := 0; round < 2; round++ {
		p.RxBurst(0, pkts[:])
		for _, m := range pkts {
			if !bytes.Equal(m.Data(), want) {
				t.Fatalf("a received frame keeps what its last holder wrote: % x", m.Data()[20:28])
			}
		}
		p.TxBurst(0, pkts[:])
	}
}

func TestNoCopyModeWritesNothing(t *testing.T) {
	p := newPort(t, Config{PoolSize: 2 * engine.Burst})
	var pkts [engine.Burst]engine.Mbuf
	for round := 0; round < 2; round++ {
		p.RxBurst(0, pkts[:])
		for _, m := range pkts {
			copy(m.Data()[20:], "marked")
		}
		p.TxBurst(0, pkts[:])
	}
	if !bytes.Equal(p.txq[0].scratch, make([]byte, p.Size())) {
		t.Errorf("transmit copied into the scratch buffer without Copy")
	}
	// Every buffer now holds the mark: the port wrote no template over it.
	// (The debug build poisons a buffer when it is freed.)
	for round := 0; round < 2; round++ {
		p.RxBurst(0, pkts[:])
		for _, m := range pkts {
			if d := m.Data(); string(d[20:26]) != "marked" && !(debugBuild && d[20] == 0x6b) {
				t.Fatalf("the port rewrote a frame: % x", m.Data()[20:28])
			}
		}
		p.TxBurst(0, pkts[:])
	}
}

// With SharedCache a sent frame's mbuf is the next one received, as from
// an lcore's mempool cache; without it, sent frames go to the transmit
// queue's cache and receives come from the receive queue's.
func TestSharedCacheReusesSentMbufs(t *testing.T) {
	for _, shared := range []bool{false, true} {
		p := newPort(t, Config{SharedCache: shared})
		var a, b [engine.Burst]engine.Mbuf
		p.RxBurst(0, a[:])
		p.TxBurst(0, a[:])
		p.RxBurst(0, b[:])
		same := 0
		for i := range a {
			for j := range b {
				if a[i] == b[j] {
					same++
				}
			}
		}
		p.TxBurst(0, b[:])
		if shared && same != engine.Burst || !shared && same != 0 {
			t.Errorf("shared cache %v: %d of the %d mbufs sent came back in the next receive", shared, same, engine.Burst)
		}
	}
}

// With SetTxCaches the frames sent go into the caller's caches, the ones
// its next allocation takes from, and back into the queue's own after nil.
func TestSentFramesGoIntoTheCallersCaches(t *testing.T) {
	p := newPort(t, Config{})
	var mine engine.Caches
	defer mine.Close()
	var pkts [engine.Burst]engine.Mbuf
	p.SetTxCaches(0, &mine)
	p.RxBurst(0, pkts[:])
	p.TxBurst(0, pkts[:])
	if n := mine.For(p.Pool()).Len(); n != engine.Burst {
		t.Fatalf("the caller's cache holds %d after a burst was sent, want %d", n, engine.Burst)
	}
	p.SetTxCaches(0, nil)
	p.RxBurst(0, pkts[:])
	p.TxBurst(0, pkts[:])
	if n := mine.For(p.Pool()).Len(); n != engine.Burst {
		t.Fatalf("after SetTxCaches(nil) the caller's cache holds %d, want still %d", n, engine.Burst)
	}
}

func TestEmptyPoolCountsNoMbuf(t *testing.T) {
	p := newPort(t, Config{PoolSize: 2 * engine.Burst})
	var a, b, c [engine.Burst]engine.Mbuf
	if p.RxBurst(0, a[:]) != engine.Burst || p.RxBurst(0, b[:]) != engine.Burst {
		t.Fatal("the pool holds two bursts")
	}
	if n := p.RxBurst(0, c[:]); n != 0 {
		t.Fatalf("received %d from an empty pool", n)
	}
	rx := p.RxStats(0)
	if rx.Drops[engine.DropNoMbuf] != engine.Burst || rx.Packets != 2*engine.Burst {
		t.Errorf("rx %+v", rx)
	}
	p.TxBurst(0, a[:])
	p.TxBurst(0, b[:])
	if n := p.RxBurst(0, c[:]); n != engine.Burst {
		t.Errorf("received %d after the pool filled again", n)
	}
	p.TxBurst(0, c[:])
}

func TestBurstsAllocateNothing(t *testing.T) {
	bothModes(t, func(t *testing.T, copy bool) {
		p := newPort(t, Config{Copy: copy})
		var pkts [engine.Burst]engine.Mbuf
		allocs := testing.AllocsPerRun(1000, func() {
			n := p.RxBurst(0, pkts[:])
			p.TxBurst(0, pkts[:n])
		})
		if allocs != 0 {
			t.Errorf("%.1f allocations per burst", allocs)
		}
	})
}

func TestNoInterrupts(t *testing.T) {
	p := newPort(t, Config{})
	if p.Info().Features.Interrupts {
		t.Fatal("a null port claims interrupts")
	}
	w, err := engine.NewWorker(engine.AnyCore)
	if err != nil {
		t.Fatal(err)
	}
	s, err := engine.NewSoftirq(w, engine.SoftirqConfig{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Add(engine.NAPIConfig{Port: p, Queue: 0, Handler: func(*engine.Worker, engine.QueueRef, []engine.Mbuf) {}})
	if err == nil || !strings.Contains(err.Error(), "cannot raise interrupts") {
		t.Errorf("NAPI on a null port: %v", err)
	}
}

func TestConfigRefused(t *testing.T) {
	for _, cfg := range []Config{
		{Size: MinSize - 1}, {Size: MaxSize + 1}, {Queues: -1}, {Queues: MaxQueues + 1},
		{PoolSize: 10}, {PoolSize: engine.MaxPoolSize + 1}, {PortIndex: -1},
	} {
		if p, err := New(cfg); err == nil {
			p.Close()
			t.Errorf("%+v accepted", cfg)
		}
	}
}

func TestCloseFindsLeaks(t *testing.T) {
	p := newPort(t, Config{})
	var pkts [engine.Burst]engine.Mbuf
	p.RxBurst(0, pkts[:])
	err := p.Close()
	if err == nil || !strings.Contains(err.Error(), "still in use") {
		t.Fatalf("close with a burst out: %v", err)
	}
	engine.Free(pkts[0]) // give them back so the pool could close
	for _, m := range pkts[1:] {
		engine.Free(m)
	}
	if err := p.pool.Close(); err != nil {
		t.Errorf("pool close once every mbuf is back: %v", err)
	}
	if err := p.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second close: %v", err)
	}
}

// The template is a well-formed Ethernet/IPv4/UDP frame: fields where a
// parser looks for them and both checksums verifying.
func TestTemplateIsAValidDatagram(t *testing.T) {
	for _, size := range []int{60, 61, 64, 1514, 2048} {
		f, err := Template(size, DefaultMAC)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(f[0:6], DefaultMAC[:]) || !bytes.Equal(f[6:12], PeerMAC[:]) || f[12] != 0x08 || f[13] != 0x00 {
			t.Errorf("size %d: ethernet header % x", size, f[:14])
		}
		ip := f[14:34]
		if ip[0] != 0x45 || ip[9] != 17 || int(binary.BigEndian.Uint16(ip[2:4])) != size-14 ||
			!bytes.Equal(ip[12:16], PeerIP[:]) || !bytes.Equal(ip[16:20], PortIP[:]) {
			t.Errorf("size %d: ipv4 header % x", size, ip)
		}
		if fold(sum(ip, 0)) != 0xffff {
			t.Errorf("size %d: ipv4 header checksum does not verify", size)
		}
		udp := f[34:]
		if binary.BigEndian.Uint16(udp[0:2]) != SrcPort || binary.BigEndian.Uint16(udp[2:4]) != DstPort ||
			int(binary.BigEndian.Uint16(udp[4:6])) != len(udp) {
			t.Errorf("size %d: udp header % x", size, udp[:8])
		}
		pseudo := append(append(append([]byte{}, PeerIP[:]...), PortIP[:]...), 0, 17, byte(len(udp)>>8), byte(len(udp)))
		if fold(sum(udp, sum(pseudo, 0))) != 0xffff {
			t.Errorf("size %d: udp checksum does not verify", size)
		}
	}
	// The 64-byte frame, byte for byte.
	golden := "020000004e00 02000000fe01 0800" +
		"4500 0032 0000 4000 4011 ae93 c6120001 c6130001" +
		"0009 0009 001e 04ff" +
		"000102030405060708090a0b0c0d0e0f101112131415"
	f, _ := Template(64, DefaultMAC)
	if got := fmt.Sprintf("%x", f); got != strings.ReplaceAll(golden, " ", "") {
		t.Errorf("64-byte template\n got %s\nwant %s", got, strings.ReplaceAll(golden, " ", ""))
	}
}

// BenchmarkForward is the forwarding loop of the pps scenario on one
// goroutine: a burst received, both MACs of every frame swapped, the burst
// sent back. One op is one packet.
func BenchmarkForward(b *testing.B) {
	for _, cfg := range []Config{{}, {SharedCache: true}, {Copy: true}, {Copy: true, SharedCache: true}} {
		b.Run(fmt.Sprintf("copy=%v/shared=%v", cfg.Copy, cfg.SharedCache), func(b *testing.B) {
			p, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			var pkts [engine.Burst]engine.Mbuf
			// The thread's CPU time per packet beside the wall time: on a
			// machine shared with other work it is the steadier figure.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			cpu0 := threadCPU()
			b.ResetTimer()
			defer func() { b.ReportMetric(float64(threadCPU()-cpu0)/float64(b.N), "cpu-ns/op") }()
			for i := 0; i < b.N; i += engine.Burst {
				n := p.RxBurst(0, pkts[:])
				for _, m := range pkts[:n] {
					d := m.Data()
					var t [6]byte
					copy(t[:], d[0:6])
					copy(d[0:6], d[6:12])
					copy(d[6:12], t[:])
				}
				p.TxBurst(0, pkts[:n])
			}
		})
	}
}

func threadCPU() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return ts.Nano()
}
