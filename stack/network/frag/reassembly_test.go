package frag

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/engine/mbuftest"
	"github.com/pollnet/pollnet/stack/header/ipv4"
)

const sec = int64(time.Second)

// addAll feeds fragments and returns the datagram that completes, failing
// the test on a second completion or an unexpected error.
func addAll(t *testing.T, r *Reassembler, now int64, frags []engine.Mbuf) engine.Mbuf {
	t.Helper()
	whole := engine.NoMbuf
	for i, f := range frags {
		w, ok, err := r.Add(now, f)
		switch {
		case err == ErrDuplicate || err == ErrOverlap:
		case err != nil:
			t.Fatalf("fragment %d: %v", i, err)
		case ok && whole != engine.NoMbuf:
			t.Fatalf("fragment %d completed a second datagram", i)
		case ok:
			whole = w
		}
	}
	return whole
}

func TestReassembleRandomOrderWithDuplicates(t *testing.T) {
	p, cs := mbuftest.Pool(t, 256)
	rng := rand.New(rand.NewPCG(11, 12))
	r := NewReassembler(cs, p, ReasmConfig{})
	for round := range 50 {
		d := datagram(9000-ipv4.HeaderLen, uint16(round), 0, nil)
		m := mbuftest.Packet(t, cs, p, d)
		frags, err := Fragment(nil, cs, p, m, 1500)
		cs.Free(m)
		if err != nil {
			t.Fatal(err)
		}
		// Duplicates: some byte copies, some clones sharing the
		// original's buffer (so the held first fragment may be shared,
		// and its header must be rewritten in a private mbuf).
		for _, f := range frags[:len(frags)] {
			switch rng.IntN(3) {
			case 0:
				frags = append(frags, mbuftest.Packet(t, cs, p, mbuftest.Bytes(f)))
			case 1:
				c, err := cs.Clone(f, p)
				if err != nil {
					t.Fatal(err)
				}
				frags = append(frags, c)
			}
		}
		rng.Shuffle(len(frags), func(i, j int) { frags[i], frags[j] = frags[j], frags[i] })
		// The completing fragment may come before the duplicates; feed
		// the rest afterwards as a new datagram's stray fragments.
		var whole engine.Mbuf = engine.NoMbuf
		for i, f := range frags {
			w, ok, err := r.Add(int64(round)*sec, f)
			if err != nil && err != ErrDuplicate {
				t.Fatalf("round %d fragment %d: %v", round, i, err)
			}
			if ok {
				whole = w
			}
		}
		if whole == engine.NoMbuf {
			t.Fatalf("round %d: no datagram", round)
		}
		if got := mbuftest.Bytes(whole); !bytes.Equal(got, d) {
			t.Fatalf("round %d: reassembled %d bytes differ from the original %d", round, len(got), len(d))
		}
		if _, err := ipv4.Parse(mbuftest.Bytes(whole)); err != nil {
			t.Fatal(err)
		}
		cs.Free(whole)
		r.Clear() // duplicates that arrived after completion start a new queue
	}
	c := r.Counters()
	if c.ReasmOKs != 50 || c.BytesHeld != 0 || c.Queues != 0 || c.Duplicates == 0 {
		t.Fatalf("counters %+v", c)
	}
}

func TestReassembleChainedFragments(t *testing.T) {
	p, cs := mbuftest.Pool(t, 256)
	r := NewReassembler(cs, p, ReasmConfig{})
	d := datagram(60000, 77, 0, nil)
	m := mbuftest.Packet(t, cs, p, d)
	frags, err := Fragment(nil, cs, p, m, 9000) // each fragment spans segments
	cs.Free(m)
	if err != nil {
		t.Fatal(err)
	}
	for i, j := 0, len(frags)-1; i < j; i, j = i+1, j-1 {
		frags[i], frags[j] = frags[j], frags[i]
	}
	whole := addAll(t, r, 0, frags)
	if whole == engine.NoMbuf || !bytes.Equal(mbuftest.Bytes(whole), d) {
		t.Fatal("reassembled datagram differs")
	}
	cs.Free(whole)
}

func TestReassemblyPassThroughAndPadding(t *testing.T) {
	p, cs := mbuftest.Pool(t, 32)
	r := NewReassembler(cs, p, ReasmConfig{})
	plain := mbuftest.Packet(t, cs, p, datagram(100, 1, ipv4.FlagDF, nil))
	if w, ok, err := r.Add(0, plain); w != plain || !ok || err != nil {
		t.Fatalf("non-fragment: %v %v %v", w, ok, err)
	}
	cs.Free(plain)
	if r.Counters().ReasmReqds != 0 {
		t.Fatal("a non-fragment counted as a reassembly request")
	}
	// Fragments with Ethernet padding after the datagram are trimmed.
	d := datagram(24, 2, 0, nil)
	a := append(fragmentBytes(d, 0, 16, true), 0xee, 0xee, 0xee, 0xee)
	b := append(fragmentBytes(d, 16, 8, false), make([]byte, 18)...)
	addAll(t, r, 0, []engine.Mbuf{mbuftest.Packet(t, cs, p, a)})
	whole := addAll(t, r, 0, []engine.Mbuf{mbuftest.Packet(t, cs, p, b)})
	if whole == engine.NoMbuf || !bytes.Equal(mbuftest.Bytes(whole), d) {
		t.Fatalf("padded fragments: %x", mbuftest.Bytes(whole))
	}
	cs.Free(whole)
}

func TestReassemblyOverlapKeepsFirstArrival(t *testing.T) {
	p, cs := mbuftest.Pool(t, 32)
	r := NewReassembler(cs, p, ReasmConfig{})
	d := datagram(64, 3, 0, nil)
	forged := append([]byte(nil), d...)
	for i := ipv4.HeaderLen; i < len(forged); i++ {
		forged[i] = 0xaa
	}
	steps := []struct {
		b   []byte
		err error
	}{
		{fragmentBytes(d, 16, 16, true), nil},
		{fragmentBytes(forged, 8, 16, true), ErrOverlap},  // overlaps the front
		{fragmentBytes(forged, 24, 16, true), ErrOverlap}, // overlaps the back
		{fragmentBytes(forged, 16, 8, true), ErrOverlap},  // inside
		{fragmentBytes(forged, 8, 32, true), ErrOverlap},  // covers it
		{fragmentBytes(forged, 16, 16, true), ErrDuplicate},
		{fragmentBytes(d, 0, 16, true), nil},
		{fragmentBytes(d, 48, 16, false), nil},
		{fragmentBytes(forged, 40, 16, true), ErrOverlap}, // overlaps the last
		{fragmentBytes(d, 32, 16, true), nil},             // completes
	}
	var whole engine.Mbuf = engine.NoMbuf
	for i, s := range steps {
		w, ok, err := r.Add(0, mbuftest.Packet(t, cs, p, s.b))
		if err != s.err {
			t.Fatalf("step %d: %v, want %v", i, err, s.err)
		}
		if ok {
			whole = w
		}
	}
	if whole == engine.NoMbuf || !bytes.Equal(mbuftest.Bytes(whole), d) {
		t.Fatal("overlapping fragments changed the datagram")
	}
	cs.Free(whole)
	if c := r.Counters(); c.Overlaps != 5 || c.Duplicates != 1 || c.ReasmOKs != 1 {
		t.Fatalf("counters %+v", c)
	}
}

func TestReassemblyMalformed(t *testing.T) {
	p, cs := mbuftest.Pool(t, 32)
	r := NewReassembler(cs, p, ReasmConfig{})
	d := datagram(64, 4, 0, nil)
	big := datagram(65535-ipv4.HeaderLen, 5, 0, nil)
	steps := []struct {
		name string
		b    []byte
		err  error
	}{
		{"not a multiple of 8", fragmentBytes(d, 0, 12, true), ErrFragment},
		{"empty", fragmentBytes(d, 8, 0, true), ErrFragment},
		{"past 65535", nil, ErrTooBig}, // built below
		{"held last", fragmentBytes(d, 32, 16, false), nil},
		{"second, different last", fragmentBytes(d, 48, 8, false), ErrFragment},
		{"middle beyond the end", fragmentBytes(d, 48, 8, true), ErrFragment},
		{"last before held data", fragmentBytes(d, 16, 8, false), ErrFragment},
		{"truncated", fragmentBytes(d, 0, 8, true)[:10], ipv4.ErrTruncated},
	}
	// Make the "past 65535" fragment claim offset 65520 with 24 bytes.
	pb := fragmentBytes(big, 65480, 24, false)
	pb[6], pb[7] = 0x1f, 0xfe // offset 65520
	pb[10], pb[11] = 0, 0
	s := ipv4.Checksum(pb[:20], 0)
	pb[10], pb[11] = byte(s>>8), byte(s)
	steps[2].b = pb
	for _, st := range steps {
		if _, _, err := r.Add(0, mbuftest.Packet(t, cs, p, st.b)); err != st.err {
			t.Errorf("%s: %v, want %v", st.name, err, st.err)
		}
	}
	if c := r.Counters(); c.Invalid != 7 || c.ReasmFails != 7 || c.Queues != 1 {
		t.Fatalf("counters %+v", c)
	}
	r.Clear()
}

func TestReassemblyTimeout(t *testing.T) {
	p, cs := mbuftest.Pool(t, 32)
	var timedOut []byte
	r := NewReassembler(cs, p, ReasmConfig{OnTimeout: func(first engine.Mbuf) { timedOut = mbuftest.Bytes(first) }})
	d1 := datagram(64, 1, 0, nil)
	d2 := datagram(64, 2, 0, nil)
	r.Add(0, mbuftest.Packet(t, cs, p, fragmentBytes(d1, 0, 16, true)))    // first fragment held
	r.Add(sec, mbuftest.Packet(t, cs, p, fragmentBytes(d2, 16, 16, true))) // no first fragment
	if n := r.Expire(30*sec - 1); n != 0 {
		t.Fatalf("expired %d early", n)
	}
	if n := r.Expire(30 * sec); n != 1 || timedOut == nil {
		t.Fatalf("expired %d at 30 s (hook called: %v)", n, timedOut != nil)
	}
	if !bytes.Equal(timedOut, fragmentBytes(d1, 0, 16, true)) {
		t.Fatal("OnTimeout got the wrong fragment")
	}
	timedOut = nil
	// A late fragment of the expired datagram starts afresh; Add itself
	// expires the second datagram.
	if _, ok, err := r.Add(31*sec, mbuftest.Packet(t, cs, p, fragmentBytes(d1, 16, 48, false))); ok || err != nil {
		t.Fatalf("late fragment: %v %v", ok, err)
	}
	if c := r.Counters(); c.Timeouts != 2 || c.Queues != 1 || timedOut != nil {
		t.Fatalf("counters %+v, hook %v", c, timedOut != nil)
	}
	r2 := NewReassembler(cs, p, ReasmConfig{Timeout: 5 * sec})
	r2.Add(0, mbuftest.Packet(t, cs, p, fragmentBytes(d1, 0, 16, true)))
	if r2.Expire(5*sec) != 1 {
		t.Fatal("custom timeout")
	}
	if r.Expire(1<<62) != 1 || r.Counters().BytesHeld != 0 {
		t.Fatal("far-future expiry")
	}
}

// TestReassemblyFlood sends 100k fragments of datagrams that never complete
// and checks that memory stays under the limit throughout, old queues are
// evicted, a genuine datagram still gets through, and every mbuf comes back.
func TestReassemblyFlood(t *testing.T) {
	p, cs := mbuftest.Pool(t, 4096)
	r := NewReassembler(cs, p, ReasmConfig{})
	good := datagram(3000, 0xffff, 0, nil)
	gm := mbuftest.Packet(t, cs, p, good)
	goodFrags, _ := Fragment(nil, cs, p, gm, 1500)
	cs.Free(gm)
	frag := fragmentBytes(datagram(64, 0, 0, nil), 0, 32, true)
	var whole engine.Mbuf = engine.NoMbuf
	const n = 100000
	for i := range n {
		frag[4], frag[5] = byte(i>>8), byte(i)
		frag[15] = byte(i >> 16) // vary the source so IDs do not repeat
		frag[10], frag[11] = 0, 0
		s := ipv4.Checksum(frag[:20], 0)
		frag[10], frag[11] = byte(s>>8), byte(s)
		_, _, err := r.Add(int64(i)*1000, mbuftest.Packet(t, cs, p, frag))
		if err != nil {
			t.Fatalf("flood fragment %d: %v", i, err)
		}
		if i >= n/2 && i < n/2+len(goodFrags) {
			w, ok, err := r.Add(int64(i)*1000, goodFrags[i-n/2])
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				whole = w
			}
		}
		if held := r.Counters().BytesHeld; held > DefaultReasmLimit {
			t.Fatalf("after %d fragments %d bytes held, over the %d limit", i, held, DefaultReasmLimit)
		}
	}
	if whole == engine.NoMbuf || !bytes.Equal(mbuftest.Bytes(whole), good) {
		t.Fatal("a genuine datagram did not survive the flood")
	}
	cs.Free(whole)
	c := r.Counters()
	if c.MemoryDrops == 0 || c.Evictions == 0 || c.ReasmReqds != n+uint64(len(goodFrags)) {
		t.Fatalf("counters %+v", c)
	}
	t.Logf("flood: %+v", c)
	if r.Expire(1<<62) == 0 || r.Counters().BytesHeld != 0 || r.Counters().Queues != 0 {
		t.Fatalf("after expiry %+v", r.Counters())
	}
	// newTestPool's cleanup flushes the caches and checks every mbuf is back.
}

func TestReassemblyTooBigForLimit(t *testing.T) {
	p, cs := mbuftest.Pool(t, 64)
	r := NewReassembler(cs, p, ReasmConfig{Limit: 3 * engine.BufSize})
	d := datagram(1000, 1, 0, nil)
	other := datagram(64, 2, 0, nil)
	r.Add(0, mbuftest.Packet(t, cs, p, fragmentBytes(other, 0, 8, true)))
	for i := 0; i < 3; i++ {
		if _, _, err := r.Add(0, mbuftest.Packet(t, cs, p, fragmentBytes(d, i*16, 8, true))); err != nil {
			t.Fatalf("fragment %d: %v", i, err)
		}
	}
	if c := r.Counters(); c.Evictions != 1 || c.Queues != 1 || c.BytesHeld != 3*engine.BufSize {
		t.Fatalf("after eviction %+v", c)
	}
	// A fourth buffer can never fit this datagram: it is given up.
	if _, _, err := r.Add(0, mbuftest.Packet(t, cs, p, fragmentBytes(d, 100*8, 8, true))); err != ErrMemory {
		t.Fatalf("hopeless datagram: %v", err)
	}
	if c := r.Counters(); c.Queues != 0 || c.BytesHeld != 0 || c.MemoryDrops != 5 {
		t.Fatalf("after giving up %+v", c)
	}
	tiny := NewReassembler(cs, p, ReasmConfig{Limit: 100})
	if _, _, err := tiny.Add(0, mbuftest.Packet(t, cs, p, fragmentBytes(d, 0, 8, true))); err != ErrMemory {
		t.Fatalf("limit below one buffer: %v", err)
	}
}

// TestReassemblyEvictsOthersFirst checks that the datagram a fragment
// belongs to is never the one evicted to make room for it.
func TestReassemblyEvictsOthersFirst(t *testing.T) {
	p, cs := mbuftest.Pool(t, 16)
	r := NewReassembler(cs, p, ReasmConfig{Limit: 3 * engine.BufSize})
	a, b := datagram(64, 1, 0, nil), datagram(64, 2, 0, nil)
	for i, f := range [][]byte{fragmentBytes(a, 0, 8, true), fragmentBytes(b, 0, 8, true),
		fragmentBytes(a, 8, 8, true), fragmentBytes(a, 16, 8, true)} {
		if _, _, err := r.Add(0, mbuftest.Packet(t, cs, p, f)); err != nil {
			t.Fatalf("fragment %d: %v", i, err)
		}
	}
	if c := r.Counters(); c.Evictions != 1 || c.Queues != 1 || c.BytesHeld != 3*engine.BufSize {
		t.Fatalf("counters %+v", c)
	}
	w, ok, err := r.Add(0, mbuftest.Packet(t, cs, p, fragmentBytes(a, 24, 40, false)))
	if ok || err != ErrMemory {
		t.Fatalf("fourth buffer for a: %v %v", ok, err)
	}
	_ = w
}

func TestReassemblyNoAllocs(t *testing.T) {
	p, cs := mbuftest.Pool(t, 64)
	r := NewReassembler(cs, p, ReasmConfig{})
	d := datagram(3000, 1, 0, nil)
	src := mbuftest.Packet(t, cs, p, d)
	defer cs.Free(src)
	frags := make([]engine.Mbuf, 0, 4)
	if n := testing.AllocsPerRun(50, func() {
		var err error
		frags, err = Fragment(frags[:0], cs, p, src, 1500)
		if err != nil {
			panic(err)
		}
		frags[0], frags[2] = frags[2], frags[0]
		for _, f := range frags {
			if w, ok, err := r.Add(0, f); err != nil {
				panic(err)
			} else if ok {
				cs.Free(w)
			}
		}
	}); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

// BenchmarkReassembly3 reassembles a datagram from three fragments in
// reverse order; the time includes copying the fragments into fresh mbufs.
func BenchmarkReassembly3(b *testing.B) {
	p, err := engine.NewPool("bench", 256, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	cs := new(engine.Caches)
	defer cs.Flush()
	r := NewReassembler(cs, p, ReasmConfig{})
	d := datagram(3000, 1, 0, nil)
	pieces := [][]byte{fragmentBytes(d, 2960, 40, false), fragmentBytes(d, 1480, 1480, true), fragmentBytes(d, 0, 1480, true)}
	var frags [3]engine.Mbuf
	b.SetBytes(int64(len(d)))
	for b.Loop() {
		for i, pc := range pieces {
			m, _ := cs.Alloc(p)
			buf, _ := m.Append(len(pc))
			copy(buf, pc)
			frags[i] = m
		}
		for _, f := range frags {
			if w, ok, err := r.Add(0, f); err != nil {
				b.Fatal(err)
			} else if ok {
				cs.Free(w)
			}
		}
	}
}

// TestASharedFirstFragmentIsCopiedWholeNotWritten: when the first
// fragment's buffer is shared, the reassembled datagram starts with a
// private copy of that whole fragment, so its first segment holds the
// transport header too (where UDP and ICMP read it), and the other
// holder's bytes are untouched.
func TestASharedFirstFragmentIsCopiedWholeNotWritten(t *testing.T) {
	p, cs := mbuftest.Pool(t, 64)
	r := NewReassembler(cs, p, ReasmConfig{})
	d := datagram(3000, 5, 0, nil)
	m := mbuftest.Packet(t, cs, p, d)
	frags, err := Fragment(nil, cs, p, m, 1500)
	cs.Free(m)
	if err != nil {
		t.Fatal(err)
	}
	orig := frags[0]
	before := mbuftest.Bytes(orig)
	if frags[0], err = cs.Clone(orig, p); err != nil {
		t.Fatal(err)
	}
	whole := addAll(t, r, 0, frags)
	if whole == engine.NoMbuf || !bytes.Equal(mbuftest.Bytes(whole), d) {
		t.Fatal("reassembled datagram differs")
	}
	if n := whole.Len(); n != len(before) || !whole.Writable() {
		t.Fatalf("first segment: %d bytes (want the whole first fragment, %d), writable %v", n, len(before), whole.Writable())
	}
	if !bytes.Equal(mbuftest.Bytes(orig), before) {
		t.Fatal("the shared first fragment was written")
	}
	cs.Free(whole)
	cs.Free(orig)
}

// budget is an Accountant with a fixed bound.
type budget struct{ limit, held int }

func (b *budget) Charge(n int) bool {
	if b.held+n > b.limit {
		return false
	}
	b.held += n
	return true
}
func (b *budget) Uncharge(n int) { b.held -= n }
func (b *budget) Room() int      { return max(0, b.limit-b.held) }

// TestReassemblyChargesTheSharedAccountant: held fragments are charged to
// the Accountant as well, and given back when their datagram completes,
// times out, is evicted or cleared. When the shared bound is reached the
// reassembler evicts its own oldest datagrams; when the rest is held by
// others, the fragment is refused.
func TestReassemblyChargesTheSharedAccountant(t *testing.T) {
	p, cs := mbuftest.Pool(t, 64)
	acct := &budget{limit: 4}
	r := NewReassembler(cs, p, ReasmConfig{Account: acct})
	a, b := datagram(64, 1, 0, nil), datagram(64, 2, 0, nil)
	for i, f := range [][]byte{fragmentBytes(a, 0, 8, true), fragmentBytes(a, 8, 8, true), fragmentBytes(b, 0, 8, true)} {
		if _, _, err := r.Add(0, mbuftest.Packet(t, cs, p, f)); err != nil {
			t.Fatalf("fragment %d: %v", i, err)
		}
	}
	if acct.held != 3 {
		t.Fatalf("3 fragments held, %d charged", acct.held)
	}
	// b completes: its one fragment's charge comes back, and so does
	// the completing fragment's.
	w, ok, err := r.Add(0, mbuftest.Packet(t, cs, p, fragmentBytes(b, 8, 56, false)))
	if !ok || err != nil || !bytes.Equal(mbuftest.Bytes(w), b) {
		t.Fatalf("b: %v %v", ok, err)
	}
	cs.Free(w)
	if acct.held != 2 {
		t.Fatalf("after b completed %d charged, want 2", acct.held)
	}
	// Someone else takes the rest of the bound: a new datagram's fragment
	// evicts a (the oldest) to fit.
	acct.held += 2
	if _, _, err := r.Add(0, mbuftest.Packet(t, cs, p, fragmentBytes(b, 0, 8, true))); err != nil {
		t.Fatalf("fragment after eviction: %v", err)
	}
	if c := r.Counters(); c.Evictions != 1 || c.Queues != 1 || acct.held != 3 {
		t.Fatalf("after eviction %+v, %d charged", c, acct.held)
	}
	// With nothing else of ours to evict, the next one is refused.
	acct.held++
	if _, _, err := r.Add(0, mbuftest.Packet(t, cs, p, fragmentBytes(b, 8, 8, true))); err != ErrMemory {
		t.Fatalf("fragment over the shared bound: %v", err)
	}
	if acct.held != 4 {
		t.Fatalf("a refused fragment left %d charged, want 4", acct.held)
	}
	r.Clear()
	if acct.held != 3 {
		t.Fatalf("after Clear %d charged, want the others' 3", acct.held)
	}
}
