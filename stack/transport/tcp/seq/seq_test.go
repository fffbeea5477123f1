package seq

import (
	"math/bits"
	"testing"

	"github.com/pollnet/pollnet/stack/siphash"
)

func TestComparisonsHoldAcrossTheWrap(t *testing.T) {
	cases := []struct {
		a, b Value
		less bool
	}{
		{1, 2, true},
		{2, 1, false},
		{0xffffffff, 0, true}, // the wrap: 2^32-1 comes just before 0
		{0, 0xffffffff, false},
		{0xfffffff0, 0x10, true},
		{0x10, 0xfffffff0, false},
		{0, 0x7fffffff, true}, // the farthest number still ahead
		{0x7fffffff, 0, false},
		{5, 5, false},
	}
	for _, c := range cases {
		if got := c.a.LessThan(c.b); got != c.less {
			t.Errorf("%#x.LessThan(%#x) = %v, want %v", c.a, c.b, got, c.less)
		}
		if got := c.a.LessEq(c.b); got != (c.less || c.a == c.b) {
			t.Errorf("%#x.LessEq(%#x) = %v, want %v", c.a, c.b, got, c.less || c.a == c.b)
		}
	}
}

func TestAddAndSubWrapModulo2To32(t *testing.T) {
	v := Value(0xfffffffe)
	w := v.Add(5)
	if w != 3 {
		t.Fatalf("0xfffffffe + 5 = %#x, want 3", w)
	}
	if d := w.Sub(v); d != 5 {
		t.Fatalf("3 - 0xfffffffe = %d, want 5", d)
	}
	if !v.LessThan(w) {
		t.Fatal("a number is not before the number 5 past it across the wrap")
	}
}

func TestInWindowIncludesTheStartAndExcludesTheEnd(t *testing.T) {
	cases := []struct {
		v, start Value
		size     Size
		in       bool
	}{
		{100, 100, 10, true},  // the first number
		{109, 100, 10, true},  // the last
		{110, 100, 10, false}, // one past the end
		{99, 100, 10, false},  // one before the start
		{100, 100, 0, false},  // an empty window holds nothing
		{0xfffffffb, 0xfffffffb, 10, true},
		{2, 0xfffffffb, 10, true}, // across the wrap
		{4, 0xfffffffb, 10, true},
		{5, 0xfffffffb, 10, false},
		{0xfffffffa, 0xfffffffb, 10, false},
		{7, 8, 0xffffffff, false}, // the largest window holds all but one number
		{6, 8, 0xffffffff, true},  // 8 + 2^32 - 2, wrapped
	}
	for _, c := range cases {
		if got := c.v.InWindow(c.start, c.size); got != c.in {
			t.Errorf("%#x.InWindow(%#x, %d) = %v, want %v", c.v, c.start, c.size, got, c.in)
		}
	}
}

var (
	fixedKey = siphash.Key{K0: 0x0706050403020100, K1: 0x0f0e0d0c0b0a0908}
	ours     = [4]byte{198, 18, 0, 1}
	theirs   = [4]byte{198, 18, 0, 2}
)

func TestISNDiffersPerTupleAndPerKey(t *testing.T) {
	base := ISN(fixedKey, ours, theirs, 40000, 80, 0)
	others := []Value{
		ISN(fixedKey, theirs, ours, 40000, 80, 0), // addresses swapped
		ISN(fixedKey, ours, theirs, 80, 40000, 0), // ports swapped
		ISN(fixedKey, ours, theirs, 40001, 80, 0),
		ISN(fixedKey, ours, [4]byte{198, 18, 0, 3}, 40000, 80, 0),
		ISN(siphash.Key{K0: fixedKey.K0 + 1, K1: fixedKey.K1}, ours, theirs, 40000, 80, 0),
		ISN(siphash.NewKey(), ours, theirs, 40000, 80, 0),
	}
	for i, o := range others {
		if o == base {
			t.Errorf("variant %d gives the same ISN %#x as the base tuple", i, o)
		}
	}
	if again := ISN(fixedKey, ours, theirs, 40000, 80, 0); again != base {
		t.Fatalf("the same tuple, key and time gave %#x then %#x", base, again)
	}
}

func TestISNGrowsBy250EveryMillisecond(t *testing.T) {
	const ms = int64(1e6)
	start := int64(123456789) * 4000 // any tick boundary
	v0 := ISN(fixedKey, ours, theirs, 40000, 80, start)
	for _, d := range []int64{1, 2, 10, 1000, 60000} {
		v := ISN(fixedKey, ours, theirs, 40000, 80, start+d*ms)
		if got := v.Sub(v0); got != Size(250*d) {
			t.Errorf("after %d ms the ISN moved by %d, want %d", d, got, 250*d)
		}
	}
	// Within one 4 µs tick it does not move.
	if v := ISN(fixedKey, ours, theirs, 40000, 80, start+3999); v != v0 {
		t.Errorf("the ISN moved within one 4 µs tick: %#x -> %#x", v0, v)
	}
}

func TestISNOffsetsAreUnpredictableAcrossTuples(t *testing.T) {
	// The offset F of RFC 6528 is ISN at time 0. Over 10000 tuples that
	// differ in one field, a linear or otherwise structured F would repeat
	// either an offset or a step between neighbours; a keyed hash does
	// neither (the key is fixed, so the test is deterministic), and sets
	// each bit in about half of the offsets.
	const n = 10000
	offsets := make(map[Value]int, n)
	steps := make(map[Size]int, n)
	var ones [32]int
	prev := Value(0)
	for i := 0; i < n; i++ {
		dst := [4]byte{198, 18, byte(i >> 8), byte(i)}
		v := ISN(fixedKey, ours, dst, uint16(32768+i), 443, 0)
		if j, dup := offsets[v]; dup {
			t.Fatalf("tuples %d and %d share the offset %#x", j, i, v)
		}
		offsets[v] = i
		if i > 0 {
			s := v.Sub(prev)
			if j, dup := steps[s]; dup {
				t.Fatalf("the step from tuple %d to %d repeats the step before tuple %d (%#x)", i-1, i, j, s)
			}
			steps[s] = i
		}
		prev = v
		for b := 0; b < 32; b++ {
			ones[b] += int(v>>b) & 1
		}
	}
	for b, c := range ones {
		if c < n*45/100 || c > n*55/100 {
			t.Errorf("bit %d is set in %d of %d offsets, want about half", b, c, n)
		}
	}
	if bits.OnesCount32(uint32(ISN(fixedKey, ours, theirs, 1, 2, 0)^ISN(fixedKey, ours, theirs, 1, 3, 0))) < 4 {
		t.Error("a one-bit change of a port flips almost no bit of the ISN")
	}
}

func TestISNAndComparisonsAllocateNothing(t *testing.T) {
	key := siphash.NewKey()
	now := int64(0)
	var sink Value
	allocs := testing.AllocsPerRun(1000, func() {
		now += 1000
		v := ISN(key, ours, theirs, 40000, 80, now)
		if v.Add(10).LessThan(v) || !v.InWindow(v, 1) || !v.LessEq(v) {
			sink++
		}
		sink += v
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per ISN, want 0", allocs)
	}
	_ = sink
}
