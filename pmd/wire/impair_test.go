package wire

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine"
)

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
