package ring

import (
	"math/rand/v2"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"
)

// api is the method set both ring types share, so the single-goroutine
// semantics are tested once for each.
type api interface {
	EnqueueBurst([]uint32) int
	EnqueueBulk([]uint32) bool
	Enqueue(uint32) bool
	DequeueBurst([]uint32) int
	DequeueBulk([]uint32) bool
	Dequeue() (uint32, bool)
	Len() int
	Free() int
	Cap() int
}

var kinds = []struct {
	name string
	make func(size int) (api, error)
}{
	{"SPSC", func(size int) (api, error) { return NewSPSC[uint32](size) }},
	{"MPMC", func(size int) (api, error) { return NewMPMC[uint32](size) }},
}

func forEachKind(t *testing.T, size int, f func(t *testing.T, r api)) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			r, err := k.make(size)
			if err != nil {
				t.Fatal(err)
			}
			f(t, r)
		})
	}
}

func seq(from, n int) []uint32 {
	s := make([]uint32, n)
	for i := range s {
		s[i] = uint32(from + i)
	}
	return s
}

func checkLen(t *testing.T, r api, want int) {
	t.Helper()
	if got := r.Len(); got != want {
		t.Fatalf("Len = %d, want %d", got, want)
	}
	if got := r.Free(); got != r.Cap()-want {
		t.Fatalf("Free = %d, want %d", got, r.Cap()-want)
	}
}

func checkVals(t *testing.T, got []uint32, from int) {
	t.Helper()
	for i, v := range got {
		if v != uint32(from+i) {
			t.Fatalf("value %d = %d, want %d", i, v, from+i)
		}
	}
}

func TestSize(t *testing.T) {
	bad := map[int]string{
		-4:          "ring: size -4 is too small (minimum 2)",
		0:           "ring: size 0 is too small (minimum 2)",
		1:           "ring: size 1 is too small (minimum 2)",
		3:           "ring: size 3 is not a power of two",
		1000:        "ring: size 1000 is not a power of two",
		MaxSize * 2: "ring: size 33554432 is too large (maximum 16777216)",
	}
	for _, k := range kinds {
		for size, msg := range bad {
			r, err := k.make(size)
			if err == nil || err.Error() != msg {
				t.Errorf("%s(%d): err = %v, want %q", k.name, size, err, msg)
			}
			if r != nil && !isNil(r) {
				t.Errorf("%s(%d): returned a ring with an error", k.name, size)
			}
		}
		for _, size := range []int{2, 4, 64, 1024, 1 << 16} {
			r, err := k.make(size)
			if err != nil {
				t.Fatalf("%s(%d): %v", k.name, size, err)
			}
			if r.Cap() != size || r.Len() != 0 || r.Free() != size {
				t.Errorf("%s(%d): Cap %d Len %d Free %d", k.name, size, r.Cap(), r.Len(), r.Free())
			}
		}
	}
	// MaxSize itself is accepted; zero-size values keep the test cheap.
	if r, err := NewSPSC[struct{}](MaxSize); err != nil || r.Cap() != MaxSize {
		t.Errorf("NewSPSC(MaxSize): %v", err)
	}
}

// isNil reports whether an interface holds a typed nil ring pointer.
func isNil(r api) bool {
	switch r := r.(type) {
	case *SPSC[uint32]:
		return r == nil
	case *MPMC[uint32]:
		return r == nil
	}
	return false
}

func TestBurstPartial(t *testing.T) {
	forEachKind(t, 8, func(t *testing.T, r api) {
		if n := r.EnqueueBurst(seq(0, 5)); n != 5 {
			t.Fatalf("first burst = %d, want 5", n)
		}
		checkLen(t, r, 5)
		if n := r.EnqueueBurst(seq(5, 5)); n != 3 {
			t.Fatalf("second burst = %d, want 3", n)
		}
		checkLen(t, r, 8)
		if n := r.EnqueueBurst(seq(8, 1)); n != 0 {
			t.Fatalf("burst into full ring = %d", n)
		}
		if r.Enqueue(99) {
			t.Fatal("Enqueue into full ring succeeded")
		}
		if n := r.EnqueueBurst(nil); n != 0 {
			t.Fatalf("empty burst = %d", n)
		}

		out := make([]uint32, 6)
		if n := r.DequeueBurst(out); n != 6 {
			t.Fatalf("dequeue burst = %d, want 6", n)
		}
		checkVals(t, out, 0)
		checkLen(t, r, 2)
		if n := r.DequeueBurst(out); n != 2 {
			t.Fatalf("dequeue burst = %d, want 2", n)
		}
		checkVals(t, out[:2], 6)
		checkLen(t, r, 0)
		if n := r.DequeueBurst(out); n != 0 {
			t.Fatalf("dequeue from empty = %d", n)
		}
		if _, ok := r.Dequeue(); ok {
			t.Fatal("Dequeue from empty succeeded")
		}
	})
}

func TestBulkAllOrNone(t *testing.T) {
	forEachKind(t, 8, func(t *testing.T, r api) {
		if !r.EnqueueBulk(nil) || !r.DequeueBulk(nil) {
			t.Fatal("empty bulk must succeed")
		}
		if r.EnqueueBulk(seq(0, 9)) {
			t.Fatal("bulk larger than the ring succeeded")
		}
		checkLen(t, r, 0)
		if !r.EnqueueBulk(seq(0, 6)) {
			t.Fatal("bulk of 6 into empty ring failed")
		}
		if r.EnqueueBulk(seq(100, 3)) {
			t.Fatal("bulk of 3 with 2 free succeeded")
		}
		checkLen(t, r, 6)
		out := make([]uint32, 8)
		if r.DequeueBulk(out[:7]) {
			t.Fatal("dequeue bulk of 7 with 6 present succeeded")
		}
		checkLen(t, r, 6)
		if !r.EnqueueBulk(seq(6, 2)) {
			t.Fatal("bulk of 2 with 2 free failed")
		}
		checkLen(t, r, 8)
		if !r.DequeueBulk(out) {
			t.Fatal("dequeue bulk of 8 from full ring failed")
		}
		checkVals(t, out[:8], 0) // the failed bulks left nothing behind
		checkLen(t, r, 0)
	})
}

// TestWraparound runs many laps round a small ring with mixed operation kinds
// and sizes, checking order throughout.
func TestWraparound(t *testing.T) {
	forEachKind(t, 8, func(t *testing.T, r api) {
		rng := rand.New(rand.NewPCG(1, 2))
		var in, out [8]uint32
		next, expect, held := 0, 0, 0
		for expect < 8*10000 {
			k := 1 + rng.IntN(8)
			for i := range k {
				in[i] = uint32(next + i)
			}
			switch rng.IntN(3) {
			case 0:
				next += r.EnqueueBurst(in[:k])
			case 1:
				if r.EnqueueBulk(in[:k]) {
					next += k
				} else if held+k <= 8 {
					t.Fatalf("bulk of %d failed with %d held", k, held)
				}
			case 2:
				if r.Enqueue(in[0]) {
					next++
				}
			}
			held = next - expect
			checkLen(t, r, held)

			k = 1 + rng.IntN(8)
			got := 0
			switch rng.IntN(3) {
			case 0:
				got = r.DequeueBurst(out[:k])
			case 1:
				if r.DequeueBulk(out[:k]) {
					got = k
				} else if held >= k {
					t.Fatalf("dequeue bulk of %d failed with %d held", k, held)
				}
			case 2:
				if v, ok := r.Dequeue(); ok {
					out[0], got = v, 1
				}
			}
			checkVals(t, out[:got], expect)
			expect += got
			held = next - expect
			checkLen(t, r, held)
		}
	})
}

func TestPeek(t *testing.T) {
	r, _ := NewSPSC[uint32](4)
	if _, ok := r.Peek(); ok {
		t.Fatal("Peek on empty ring succeeded")
	}
	r.EnqueueBurst(seq(7, 3))
	for range 2 {
		if v, ok := r.Peek(); !ok || v != 7 {
			t.Fatalf("Peek = %d, %v; want 7, true", v, ok)
		}
	}
	checkLen(t, r, 3)
	if v, ok := r.Dequeue(); !ok || v != 7 {
		t.Fatalf("Dequeue = %d, %v; want 7, true", v, ok)
	}
	if v, ok := r.Peek(); !ok || v != 8 {
		t.Fatalf("Peek = %d, %v; want 8, true", v, ok)
	}
	out := make([]uint32, 2)
	r.DequeueBurst(out)
	if _, ok := r.Peek(); ok {
		t.Fatal("Peek on drained ring succeeded")
	}
}

// TestLayout checks that fields written by different goroutines are at least
// padSize bytes apart.
func TestLayout(t *testing.T) {
	var s SPSC[uint32]
	var m MPMC[uint32]
	gaps := []struct {
		name string
		a, b uintptr
	}{
		{"SPSC slots-tail", unsafe.Offsetof(s.slots), unsafe.Offsetof(s.tail)},
		{"SPSC tail-head", unsafe.Offsetof(s.tail), unsafe.Offsetof(s.head)},
		{"SPSC head-end", unsafe.Offsetof(s.head), unsafe.Sizeof(s)},
		{"SPSC start-slots", 0, unsafe.Offsetof(s.slots)},
		{"MPMC slots-enq", unsafe.Offsetof(m.slots), unsafe.Offsetof(m.enq)},
		{"MPMC enq-deq", unsafe.Offsetof(m.enq), unsafe.Offsetof(m.deq)},
		{"MPMC deq-end", unsafe.Offsetof(m.deq), unsafe.Sizeof(m)},
		{"MPMC start-slots", 0, unsafe.Offsetof(m.slots)},
	}
	for _, g := range gaps {
		if g.b-g.a < padSize {
			t.Errorf("%s: %d bytes apart, want >= %d", g.name, g.b-g.a, padSize)
		}
	}
}

// TestReleaseLayout checks the assumption release (release_amd64.go) makes:
// an atomic.Uint64 is exactly its uint64 value.
func TestReleaseLayout(t *testing.T) {
	var a atomic.Uint64
	if unsafe.Sizeof(a) != 8 {
		t.Fatalf("atomic.Uint64 is %d bytes, want 8", unsafe.Sizeof(a))
	}
	release(&a, 0x0123456789abcdef)
	if a.Load() != 0x0123456789abcdef {
		t.Fatalf("release stored %#x", a.Load())
	}
}

// TestMPMCPreemptedProducer freezes a producer between claiming its slot and
// publishing it, as a preemption would, and checks that other producers are
// not held up and consumers see the ring as ending at the frozen slot.
func TestMPMCPreemptedProducer(t *testing.T) {
	r, _ := NewMPMC[uint32](8)
	r.Enqueue(0)
	pos, k := r.claimEnq(2, true) // positions 1 and 2, not yet written
	if k != 2 || pos != 1 {
		t.Fatalf("claim = %d, %d; want 1, 2", pos, k)
	}
	if n := r.EnqueueBurst(seq(3, 10)); n != 5 {
		t.Fatalf("other producer enqueued %d, want 5 (the rest of the ring)", n)
	}
	out := make([]uint32, 8)
	if n := r.DequeueBurst(out); n != 1 || out[0] != 0 {
		t.Fatalf("dequeue got %d values %v; want just 0", n, out[:n])
	}
	if _, ok := r.Dequeue(); ok {
		t.Fatal("consumer got past an unpublished slot")
	}
	if r.DequeueBulk(out[:1]) {
		t.Fatal("bulk consumer got past an unpublished slot")
	}
	r.publish(pos, seq(1, 2)) // the producer resumes
	if n := r.DequeueBurst(out); n != 7 {
		t.Fatalf("dequeue after resume got %d, want 7", n)
	}
	checkVals(t, out[:7], 1)
}

// TestMPMCPreemptedConsumer is the mirror image: a consumer frozen after
// claiming holds up neither consumers nor producers, except that producers
// cannot refill its slot until it finishes.
func TestMPMCPreemptedConsumer(t *testing.T) {
	r, _ := NewMPMC[uint32](4)
	r.EnqueueBulk(seq(0, 4))
	pos, k := r.claimDeq(1, true) // takes position 0 but has not read it
	if k != 1 || pos != 0 {
		t.Fatalf("claim = %d, %d; want 0, 1", pos, k)
	}
	out := make([]uint32, 4)
	if n := r.DequeueBurst(out); n != 3 {
		t.Fatalf("other consumer got %d, want 3", n)
	}
	checkVals(t, out[:3], 1)
	if r.Enqueue(4) {
		t.Fatal("producer overwrote a slot a consumer has not read")
	}
	r.release(pos, out[:1])
	if out[0] != 0 {
		t.Fatalf("frozen consumer read %d, want 0", out[0])
	}
	if n := r.EnqueueBurst(seq(4, 4)); n != 4 {
		t.Fatalf("enqueue after resume = %d, want 4", n)
	}
}

// stressCount scales element counts for -race and -short.
func stressCount(full int) int {
	switch {
	case raceEnabled:
		return full / 10
	case testing.Short():
		return full / 8
	}
	return full
}

func TestSPSCStress(t *testing.T) {
	n := stressCount(8_000_000)
	r, _ := NewSPSC[uint32](64)
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		rng := rand.New(rand.NewPCG(3, 4))
		var buf [32]uint32
		for next := 0; next < n && !stop.Load(); {
			k := min(1+rng.IntN(32), n-next)
			for i := range k {
				buf[i] = uint32(next + i)
			}
			sent := 0
			switch rng.IntN(3) {
			case 0:
				sent = r.EnqueueBurst(buf[:k])
			case 1:
				if r.EnqueueBulk(buf[:k]) {
					sent = k
				}
			case 2:
				if r.Enqueue(buf[0]) {
					sent = 1
				}
			}
			if sent == 0 {
				runtime.Gosched()
			}
			next += sent
		}
	})
	defer wg.Wait()
	defer stop.Store(true)

	rng := rand.New(rand.NewPCG(5, 6))
	var buf [32]uint32
	for expect := 0; expect < n; {
		k := 1 + rng.IntN(32)
		got := 0
		switch rng.IntN(4) {
		case 0:
			got = r.DequeueBurst(buf[:k])
		case 1:
			if r.DequeueBulk(buf[:k]) {
				got = k
			}
		case 2:
			if v, ok := r.Dequeue(); ok {
				buf[0], got = v, 1
			}
		case 3:
			p, ok := r.Peek()
			if !ok {
				break
			}
			v, ok := r.Dequeue()
			if !ok || v != p {
				t.Fatalf("Peek saw %d, Dequeue got %d, %v", p, v, ok)
			}
			buf[0], got = v, 1
		}
		if got == 0 {
			runtime.Gosched()
			continue
		}
		for i, v := range buf[:got] {
			if v != uint32(expect+i) {
				t.Fatalf("element %d = %d: lost, duplicated or reordered", expect+i, v)
			}
		}
		expect += got
	}
	if l := r.Len(); l != 0 {
		t.Fatalf("Len = %d after draining", l)
	}
}

// mpmcStress runs producers that each send a disjoint range of values and
// consumers that record what they get. It checks that every value arrives
// exactly once and that each consumer sees each producer's values in
// increasing order: a producer claims positions in the order it sends, and a
// consumer claims positions in increasing order, so the values of one
// producer that one consumer receives are in position order.
//
// With freeze set, producers and consumers sometimes yield between claiming
// slots and completing the operation, the window a preemption would hit.
func mpmcStress(t *testing.T, producers, consumers, perProducer, size int, freeze bool) {
	r, _ := NewMPMC[uint32](size)
	total := producers * perProducer
	var consumed atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup

	for p := range producers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(p), 7))
			var buf [32]uint32
			base := p * perProducer
			for next := 0; next < perProducer && !stop.Load(); {
				k := min(1+rng.IntN(32), perProducer-next)
				for i := range k {
					buf[i] = uint32(base + next + i)
				}
				sent := 0
				switch op := rng.IntN(4); {
				case op == 0 && freeze:
					pos, got := r.claimEnq(uint64(k), false)
					runtime.Gosched()
					r.publish(pos, buf[:got])
					sent = int(got)
				case op <= 1:
					sent = r.EnqueueBurst(buf[:k])
				case op == 2:
					if r.EnqueueBulk(buf[:k]) {
						sent = k
					}
				default:
					if r.Enqueue(buf[0]) {
						sent = 1
					}
				}
				if sent == 0 || (freeze && rng.IntN(8) == 0) {
					runtime.Gosched()
				}
				next += sent
			}
		})
	}

	got := make([][]uint32, consumers)
	errs := make([]string, consumers)
	for c := range consumers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 8))
			last := make([]int, producers) // last value index seen per producer
			for i := range last {
				last[i] = -1
			}
			mine := make([]uint32, 0, 2*total/consumers)
			var buf [32]uint32
			for consumed.Load() < int64(total) && !stop.Load() {
				k := 1 + rng.IntN(32)
				n := 0
				switch op := rng.IntN(4); {
				case op == 0 && freeze:
					pos, m := r.claimDeq(uint64(k), false)
					runtime.Gosched()
					r.release(pos, buf[:m])
					n = int(m)
				case op <= 1:
					n = r.DequeueBurst(buf[:k])
				case op == 2:
					if r.DequeueBulk(buf[:k]) {
						n = k
					}
				default:
					if v, ok := r.Dequeue(); ok {
						buf[0], n = v, 1
					}
				}
				if n == 0 {
					runtime.Gosched()
					continue
				}
				for _, v := range buf[:n] {
					p, i := int(v)/perProducer, int(v)%perProducer
					if p >= producers {
						errs[c] = "received a value no producer sent"
						stop.Store(true)
						return
					}
					if i <= last[p] {
						errs[c] = "a producer's values arrived out of order"
						stop.Store(true)
						return
					}
					last[p] = i
				}
				mine = append(mine, buf[:n]...)
				consumed.Add(int64(n))
			}
			got[c] = mine
		})
	}
	wg.Wait()
	for c, e := range errs {
		if e != "" {
			t.Fatalf("consumer %d: %s", c, e)
		}
	}

	seen := make([]uint8, total)
	n := 0
	for _, mine := range got {
		for _, v := range mine {
			seen[v]++
		}
		n += len(mine)
	}
	if n != total {
		t.Errorf("received %d values, sent %d", n, total)
	}
	var missing, dup []string
	for v, c := range seen {
		switch {
		case c == 0 && len(missing) < 5:
			missing = append(missing, strconv.Itoa(v))
		case c > 1 && len(dup) < 5:
			dup = append(dup, strconv.Itoa(v))
		}
	}
	if missing != nil || dup != nil {
		t.Fatalf("missing %s; duplicated %s", strings.Join(missing, ","), strings.Join(dup, ","))
	}
	if l := r.Len(); l != 0 {
		t.Fatalf("Len = %d after draining", l)
	}
	if _, ok := r.Dequeue(); ok {
		t.Fatal("value left in the ring")
	}
}

func TestMPMCStress(t *testing.T) {
	// 8 goroutines on 2 cores: the scheduler preempts them mid-operation.
	mpmcStress(t, 4, 4, stressCount(1_000_000), 64, false)
}

func TestMPMCStressFrozen(t *testing.T) {
	mpmcStress(t, 4, 4, stressCount(200_000), 64, true)
}

func TestMPMCStressSmallRing(t *testing.T) {
	// A ring smaller than a burst keeps producers and consumers on the same
	// slots, so every lap boundary is contended.
	mpmcStress(t, 3, 2, stressCount(400_000), 8, false)
}

func TestNoAllocs(t *testing.T) {
	forEachKind(t, 64, func(t *testing.T, r api) {
		in := seq(0, 32)
		out := make([]uint32, 32)
		a := testing.AllocsPerRun(100, func() {
			r.EnqueueBurst(in)
			r.DequeueBurst(out)
			r.EnqueueBulk(in)
			r.DequeueBulk(out)
			r.Enqueue(1)
			r.Dequeue()
		})
		if a != 0 {
			t.Fatalf("%v allocations per run, want 0", a)
		}
	})
}
