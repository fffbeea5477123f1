package sndq

import (
	"bytes"
	"errors"
	"testing"
	"unsafe"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/engine/mbuftest"
	"github.com/pollnet/pollnet/stack/transport/tcp/seq"
)

type rig struct {
	t      testing.TB
	p      *engine.Pool
	cs     *engine.Caches
	q      *Queue
	start  seq.Value
	stream []byte
	queued []engine.Mbuf // what was appended, to check it is never written
	snap   [][]byte      // their bytes when appended
}

func newRig(t testing.TB, start seq.Value, limit, n int) *rig {
	p, cs := mbuftest.Pool(t, 4096)
	r := &rig{t: t, p: p, cs: cs, q: new(Queue), start: start}
	r.q.Init(Config{Limit: limit, Pool: p, Free: cs.Free, Start: start})
	r.stream = make([]byte, n)
	for i := range r.stream {
		r.stream[i] = byte(i*7 + i>>8)
	}
	return r
}

// appendPieces queues the stream in pieces of the given sizes (cycled), each
// behind 20 bytes of junk so offsets are exercised; every third piece is a
// chain.
func (r *rig) appendPieces(sizes ...int) {
	r.t.Helper()
	for i, from := 0, 0; from < len(r.stream); i++ {
		n := min(sizes[i%len(sizes)], len(r.stream)-from)
		b := append(bytes.Repeat([]byte{0xee}, 20), r.stream[from:from+n]...)
		var m engine.Mbuf
		if i%3 == 2 && len(b) > 30 {
			m = mbuftest.Packet(r.t, r.cs, r.p, b, 25, len(b)/2)
		} else {
			m = mbuftest.Packet(r.t, r.cs, r.p, b)
		}
		r.queued = append(r.queued, m)
		r.snap = append(r.snap, mbuftest.Bytes(m))
		if err := r.q.Append(m, 20, n); err != nil {
			r.t.Fatalf("append %d bytes at %d: %v", n, from, err)
		}
		from += n
	}
}

// segment builds the packet for [s, s+mss), checks its shape and returns
// its payload.
func (r *rig) segment(s seq.Value, mss int) []byte {
	r.t.Helper()
	m, n, err := r.q.Segment(s, mss, r.cs)
	if err != nil {
		r.t.Fatalf("segment at %d: %v", s.Sub(r.start), err)
	}
	defer r.cs.Free(m)
	if want := min(mss, r.q.Unsent(s)); n != want || m.PktLen() != n {
		r.t.Fatalf("segment at %d carries %d bytes (packet %d), want %d", s.Sub(r.start), n, m.PktLen(), want)
	}
	if m.Len() != 0 || m.Headroom() != engine.Headroom {
		r.t.Fatalf("head has %d data bytes and %d headroom, want an empty head with all its headroom", m.Len(), m.Headroom())
	}
	if _, err := m.Prepend(54); err != nil {
		r.t.Fatalf("prepend headers: %v", err)
	}
	return mbuftest.Bytes(m)[54:]
}

func (r *rig) checkUnwritten() {
	r.t.Helper()
	for i, m := range r.queued {
		if m.Refs() == 0 {
			continue
		}
		if !bytes.Equal(mbuftest.Bytes(m), r.snap[i]) {
			r.t.Fatalf("queued buffer %d was written", i)
		}
	}
}

func TestAStreamAppendedInOddPiecesIsSegmentedBackExactlyAtEveryMSS(t *testing.T) {
	for _, mss := range []int{1, 7, 536, 1448, 4000, 9000, MaxSegment} {
		r := newRig(t, 1000, 1<<20, 20011)
		r.appendPieces(13, 1, 977, 2500, 61, 3)
		var got []byte
		for s := r.q.Una(); s != r.q.Nxt(); {
			p := r.segment(s, mss)
			got = append(got, p...)
			s = s.Add(seq.Size(len(p)))
		}
		if !bytes.Equal(got, r.stream) {
			t.Fatalf("mss %d: stream differs", mss)
		}
		r.checkUnwritten()
		r.q.Purge()
	}
}

func TestASegmentSpansThreeBuffersAndRetransmissionsRebuildTheSameBytes(t *testing.T) {
	r := newRig(t, 5, 1<<20, 3000)
	r.appendPieces(100, 50, 200) // a chain every third
	// [90, 400) covers the end of the first, all of the second and third.
	if p := r.segment(r.start.Add(90), 310); !bytes.Equal(p, r.stream[90:400]) {
		t.Fatal("segment across three buffers differs")
	}
	for _, s := range []int{0, 90, 149, 350, 1234} {
		for range 2 {
			p := r.segment(r.start.Add(seq.Size(s)), 1000)
			if !bytes.Equal(p, r.stream[s:s+len(p)]) {
				t.Fatalf("retransmission at %d differs", s)
			}
		}
	}
	r.checkUnwritten()
	r.q.Purge()
}

func TestAckFreesWholeBuffersAndTrimsAPartialOneByOffset(t *testing.T) {
	r := newRig(t, 0, 1<<20, 1000)
	r.appendPieces(300)
	if got := r.q.Ack(r.start.Add(450)); got != 450 {
		t.Fatalf("ack freed %d bytes, want 450", got)
	}
	if r.q.Una() != r.start.Add(450) || r.q.Len() != 550 || r.queued[0].Refs() != 0 || r.queued[1].Refs() != 1 {
		t.Fatalf("after ack: una %d len %d refs %d %d", r.q.Una(), r.q.Len(), r.queued[0].Refs(), r.queued[1].Refs())
	}
	if p := r.segment(r.q.Una(), 2000); !bytes.Equal(p, r.stream[450:]) {
		t.Fatal("data after a partial ack differs")
	}
	if r.q.Ack(r.start.Add(400)) != 0 || r.q.Ack(r.start.Add(1001)) != 0 {
		t.Fatal("an old or too new ack freed data")
	}
	if _, _, err := r.q.Segment(r.start.Add(100), 10, r.cs); !errors.Is(err, ErrRange) {
		t.Fatalf("segment of acked data: %v, want ErrRange", err)
	}
	r.checkUnwritten()
	r.q.Ack(r.q.Nxt())
	if r.q.Len() != 0 || r.q.Unsent(r.q.Una()) != 0 || r.q.Counters().Acked != 4 {
		t.Fatalf("after the last ack: len %d, counters %+v", r.q.Len(), r.q.Counters())
	}
}

func TestSequenceNumbersWrapAcross2To32(t *testing.T) {
	r := newRig(t, seq.Value(1<<32-700), 1<<20, 5000)
	r.appendPieces(333, 1200)
	var got []byte
	for s := r.q.Una(); s != r.q.Nxt(); {
		p := r.segment(s, 1000)
		got = append(got, p...)
		s = s.Add(seq.Size(len(p)))
		if len(got) > 2000 {
			r.q.Ack(s.Add(^seq.Size(99))) // s-100
		}
	}
	if !bytes.Equal(got, r.stream) {
		t.Fatal("stream across the wrap differs")
	}
	if r.q.Nxt() != seq.Value(5000-700) || r.q.Len() != 100 {
		t.Fatalf("nxt %d len %d", r.q.Nxt(), r.q.Len())
	}
	r.q.Purge()
}

func TestSharedBuffersAreNeverWrittenAndTheirCountsComeBack(t *testing.T) {
	r := newRig(t, 77, 1<<20, 0)
	app := mbuftest.Packet(t, r.cs, r.p, bytes.Repeat([]byte{1}, 1500))
	chain := mbuftest.Packet(t, r.cs, r.p, bytes.Repeat([]byte{2}, 3000), 1000, 1000)
	before := []int{app.Refs(), chain.Refs(), chain.Next().Refs(), chain.Next().Next().Refs()}
	clone, err := r.cs.Clone(app, r.p)
	if err != nil {
		t.Fatal(err)
	}
	engine.Ref(chain) // the application keeps the chain too
	freed := 0
	extID := engine.RegisterExtFree(func(uint64) { freed++ })
	mem := bytes.Repeat([]byte{3}, 4000)
	eb, err := r.p.NewExtBuf(uintptr(unsafe.Pointer(&mem[0])), len(mem), extID, 0)
	if err != nil {
		t.Fatal(err)
	}
	ext, err := r.cs.AttachExternal(r.p, eb, 100, 3000)
	if err != nil {
		t.Fatal(err)
	}
	eb.Release()
	engine.Ref(ext) // the queue's reference; the application keeps ext
	want := append(append(append([]byte{}, bytes.Repeat([]byte{1}, 1500)...), bytes.Repeat([]byte{2}, 3000)...), bytes.Repeat([]byte{3}, 3000)...)
	for _, m := range []engine.Mbuf{clone, chain, ext} {
		if err := r.q.Append(m, 0, m.PktLen()); err != nil {
			t.Fatal(err)
		}
	}
	var segs []engine.Mbuf
	var got []byte
	for s := r.q.Una(); s != r.q.Nxt(); {
		m, n, err := r.q.Segment(s, 1448, r.cs)
		if err != nil {
			t.Fatal(err)
		}
		segs = append(segs, m)
		got = append(got, mbuftest.Bytes(m)...)
		s = s.Add(seq.Size(n))
	}
	if !bytes.Equal(got, want) {
		t.Fatal("segments differ from the shared buffers")
	}
	// The segments borrow the queued buffers: more holders than the
	// application and the queue.
	if app.Refs() <= 2 || chain.Next().Refs() <= 2 || ext.Refs() <= 2 {
		t.Fatalf("in flight: refs %d %d %d, want the segments' references too", app.Refs(), chain.Next().Refs(), ext.Refs())
	}
	r.q.Ack(r.q.Nxt()) // acked before the port let go of the segments
	for _, m := range segs {
		r.cs.Free(m)
	}
	after := []int{app.Refs(), chain.Refs(), chain.Next().Refs(), chain.Next().Next().Refs()}
	if !equalInts(before, after) || ext.Refs() != 1 {
		t.Fatalf("reference counts %v after, %v before; ext %d", after, before, ext.Refs())
	}
	if !bytes.Equal(mbuftest.Bytes(app), bytes.Repeat([]byte{1}, 1500)) || !bytes.Equal(mbuftest.Bytes(chain), bytes.Repeat([]byte{2}, 3000)) || !bytes.Equal(mem, bytes.Repeat([]byte{3}, 4000)) {
		t.Fatal("a shared buffer was written")
	}
	r.cs.Free(app)
	r.cs.Free(chain)
	r.cs.Free(ext)
	if freed != 1 {
		t.Fatalf("external memory released %d times, want 1", freed)
	}
}

func equalInts(a, b []int) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

func TestTheLimitRefusesWithErrFullAndTheCallerKeepsItsBuffer(t *testing.T) {
	r := newRig(t, 0, 1000, 0)
	m := mbuftest.Packet(t, r.cs, r.p, make([]byte, 600))
	if err := r.q.Append(m, 0, 600); err != nil {
		t.Fatal(err)
	}
	m2 := mbuftest.Packet(t, r.cs, r.p, make([]byte, 600))
	if err := r.q.Append(m2, 0, 600); !errors.Is(err, ErrFull) || r.q.Space() != 400 || r.q.Counters().Refused != 1 {
		t.Fatalf("append past the limit: %v, space %d", err, r.q.Space())
	}
	if err := r.q.Append(m2, 100, 600); !errors.Is(err, ErrInvalid) {
		t.Fatalf("append beyond the packet: %v", err)
	}
	if err := r.q.Append(m2, 200, 400); err != nil || r.q.Space() != 0 {
		t.Fatalf("append up to the limit: %v, space %d", err, r.q.Space())
	}
	r.q.Purge()
	if r.q.Len() != 0 || r.q.Space() != 1000 {
		t.Fatal("purge left data")
	}
}

func TestAppendSegmentAndAckAllocateNothingInSteadyState(t *testing.T) {
	for _, chained := range []bool{false, true} {
		r := newRig(t, 9, 1<<20, 0)
		bufs := make([]engine.Mbuf, 64)
		for i := range bufs {
			if chained {
				bufs[i] = mbuftest.Packet(t, r.cs, r.p, make([]byte, 3000), 1500)
			} else {
				bufs[i] = mbuftest.Packet(t, r.cs, r.p, make([]byte, 1500))
			}
		}
		run := func() {
			for _, b := range bufs {
				engine.Ref(b)
				if err := r.q.Append(b, 0, b.PktLen()); err != nil {
					t.Fatal(err)
				}
			}
			for s := r.q.Una(); s != r.q.Nxt(); {
				m, n, err := r.q.Segment(s, 1448, r.cs)
				if err != nil {
					t.Fatal(err)
				}
				r.cs.Free(m)
				s = s.Add(seq.Size(n))
				r.q.Ack(s)
			}
		}
		run() // grows the ring
		if a := testing.AllocsPerRun(20, run); a != 0 {
			t.Fatalf("chained %v: %v allocations per run", chained, a)
		}
		for _, b := range bufs {
			r.cs.Free(b)
		}
	}
}

func TestSegmentOnADryPoolCountsNoMbufsAndLeavesTheQueueWhole(t *testing.T) {
	p, cs := mbuftest.Pool(t, 16)
	var q Queue
	q.Init(Config{Pool: p, Free: cs.Free, Start: 5})
	chain := mbuftest.Packet(t, cs, p, bytes.Repeat([]byte{4}, 3000), 1000, 1000)
	if err := q.Append(chain, 0, 3000); err != nil {
		t.Fatal(err)
	}
	// A head and one clone: the segment's third mbuf is missing.
	var held []engine.Mbuf
	for p.Available() > 2 {
		m, err := cs.Alloc(p)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, m)
	}
	if m, _, err := q.Segment(5, 2500, cs); !errors.Is(err, engine.ErrPoolEmpty) || m != engine.NoMbuf {
		t.Fatalf("segment on a dry pool: %v, %v", m, err)
	}
	if q.Counters().NoMbufs != 1 || q.Len() != 3000 {
		t.Fatalf("counters %+v, %d bytes queued", q.Counters(), q.Len())
	}
	for s := chain; s != engine.NoMbuf; s = s.Next() {
		if s.Refs() != 1 {
			t.Fatalf("a queued segment kept %d references", s.Refs())
		}
	}
	cs.FreeBulk(held)
	m, n, err := q.Segment(5, 2500, cs)
	if err != nil || n != 2500 || !bytes.Equal(mbuftest.Bytes(m), bytes.Repeat([]byte{4}, 2500)) {
		t.Fatalf("segment once mbufs are back: %d bytes, %v", n, err)
	}
	cs.Free(m)
	q.Purge()
}
