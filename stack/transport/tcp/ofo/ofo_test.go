package ofo

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/engine/mbuftest"
	"github.com/pollnet/pollnet/stack/transport/tcp/seq"
)

// hdr is the header room in front of each test segment's payload, so that
// offsets are exercised.
const hdr = 40

// acct is an Accountant with a cap, recording its peak.
type acct struct{ cap, held, peak int }

func (a *acct) Charge(n int) bool {
	if a.held+n > a.cap {
		return false
	}
	a.held += n
	a.peak = max(a.peak, a.held)
	return true
}
func (a *acct) Uncharge(n int) { a.held -= n }
func (a *acct) Room() int      { return a.cap - a.held }

type rig struct {
	t      testing.TB
	p      *engine.Pool
	cs     *engine.Caches
	a      *acct
	q      *Queue
	base   seq.Value
	stream []byte
}

func newRig(t testing.TB, poolSize, limit, acctCap int, base seq.Value, n int) *rig {
	p, cs := mbuftest.Pool(t, poolSize)
	r := &rig{t: t, p: p, cs: cs, a: &acct{cap: acctCap}, q: new(Queue), base: base}
	r.q.Init(Config{Limit: limit, Account: r.a, Free: cs.Free})
	r.stream = make([]byte, n)
	for i := range r.stream {
		r.stream[i] = byte(i*7 + i>>8)
	}
	return r
}

// seg builds a packet carrying stream[from:from+n] after hdr bytes of junk,
// as a chain when chained is set.
func (r *rig) seg(from, n int, chained bool) engine.Mbuf {
	b := make([]byte, hdr+n)
	for i := range hdr {
		b[i] = 0xee
	}
	copy(b[hdr:], r.stream[from:from+n])
	if chained && len(b) > 2 {
		return mbuftest.Packet(r.t, r.cs, r.p, b, len(b)/2)
	}
	return mbuftest.Packet(r.t, r.cs, r.p, b)
}

func (r *rig) seq(i int) seq.Value { return r.base.Add(seq.Size(i)) }

// insert queues stream[from:from+n].
func (r *rig) insert(from, n int) error {
	return r.q.Insert(r.seq(from), r.seg(from, n, false), hdr, n)
}

// check verifies the queue's invariants: entries sorted, disjoint, each
// holding the stream's bytes; runs the union of entries; charges matching.
func (r *rig) check() {
	r.t.Helper()
	es := r.q.ents()
	bytesHeld, segs := 0, 0
	var runs []run
	for i, e := range es {
		if e.Len == 0 {
			r.t.Fatalf("entry %d is empty", i)
		}
		if i > 0 && e.Seq.LessThan(es[i-1].End()) {
			r.t.Fatalf("entry %d [%d,%d) overlaps or precedes entry %d ending %d", i, e.Seq, e.End(), i-1, es[i-1].End())
		}
		got := make([]byte, e.Len)
		e.Mbuf.CopyOut(got, int(e.Off))
		from := int(e.Seq.Sub(r.base))
		if !bytes.Equal(got, r.stream[from:from+int(e.Len)]) {
			r.t.Fatalf("entry %d at stream offset %d holds the wrong bytes", i, from)
		}
		bytesHeld += int(e.segs) * engine.BufSize
		segs += int(e.segs)
		if n := len(runs); n > 0 && runs[n-1].end == e.Seq {
			runs[n-1].end = e.End()
		} else {
			runs = append(runs, run{e.Seq, e.End()})
		}
	}
	c := r.q.Counters()
	if c.BytesHeld != bytesHeld || c.Segments != len(es) || r.a.held != segs {
		r.t.Fatalf("charged %d bytes, %d entries, %d mbufs; hold %d, %d, %d", c.BytesHeld, c.Segments, r.a.held, bytesHeld, len(es), segs)
	}
	if len(runs) != len(r.q.sack.runs) {
		r.t.Fatalf("SACK runs %v, held %v", r.q.sack.runs, runs)
	}
	for i := range runs {
		if runs[i] != r.q.sack.runs[i] {
			r.t.Fatalf("SACK runs %v, held %v", r.q.sack.runs, runs)
		}
	}
}

// receiver plays the connection: in-order data is read at once, the rest
// queued, and the queue drained after each advance.
type receiver struct {
	r    *rig
	next seq.Value
	out  []byte
	dst  []Entry
}

func (rc *receiver) arrive(from, n int, chained bool) {
	r := rc.r
	s, m := r.seq(from), r.seg(from, n, chained)
	end := s.Add(seq.Size(n))
	if rc.next.LessThan(s) {
		err := r.q.Insert(s, m, hdr, n)
		if err != nil && !errors.Is(err, ErrDuplicate) {
			r.t.Fatalf("insert [%d,+%d): %v", from, n, err)
		}
		r.check()
		return
	}
	if rc.next.LessThan(end) {
		skip := int(rc.next.Sub(s))
		rc.out = append(rc.out, make([]byte, n-skip)...)
		m.CopyOut(rc.out[len(rc.out)-(n-skip):], hdr+skip)
		rc.next = end
	}
	r.cs.Free(m)
	rc.drain()
}

func (rc *receiver) drain() {
	r := rc.r
	for {
		var got []Entry
		got, rc.next = r.q.Take(rc.next, rc.dst[:0])
		for _, e := range got {
			rc.out = append(rc.out, make([]byte, e.Len)...)
			e.Mbuf.CopyOut(rc.out[len(rc.out)-int(e.Len):], int(e.Off))
			r.cs.Free(e.Mbuf)
		}
		r.check()
		if len(got) < cap(rc.dst) {
			return
		}
	}
}

func TestRandomArrivalsWithDuplicatesAndOverlapsRebuildTheStream(t *testing.T) {
	for round := range 40 {
		rng := rand.New(rand.NewPCG(uint64(round), 7))
		base := seq.Value(rng.Uint32())
		if round%4 == 0 {
			base = 0xffffffff - seq.Value(rng.IntN(20000)) // wraps mid-stream
		}
		const n = 20000
		r := newRig(t, 512, 1<<22, 1<<20, base, n)
		type span struct{ from, n int }
		var spans []span
		for at := 0; at < n; {
			l := min(1+rng.IntN(1400), n-at)
			spans = append(spans, span{at, l})
			at += l
		}
		k := len(spans)
		for range k / 2 { // exact duplicates
			spans = append(spans, spans[rng.IntN(k)])
		}
		for range k / 2 { // overlaps across boundaries
			from := rng.IntN(n)
			spans = append(spans, span{from, min(1+rng.IntN(3000), n-from, engine.DataRoom-hdr)})
		}
		rng.Shuffle(len(spans), func(i, j int) { spans[i], spans[j] = spans[j], spans[i] })
		rc := &receiver{r: r, next: base, dst: make([]Entry, 0, 3)}
		for i, s := range spans {
			rc.arrive(s.from, s.n, i%3 == 0)
		}
		if rc.next != base.Add(n) || !bytes.Equal(rc.out, r.stream) {
			t.Fatalf("round %d: rebuilt %d bytes up to %d, want the %d-byte stream up to %d", round, len(rc.out), rc.next, n, base.Add(n))
		}
		if !r.q.Empty() || r.a.held != 0 {
			t.Fatalf("round %d: %d entries and %d mbufs charged after the stream completed", round, r.q.Len(), r.a.held)
		}
	}
}

func TestSequenceNumbersThatWrapAreOrderedAndTaken(t *testing.T) {
	r := newRig(t, 64, 0, 64, 0xffffff00, 1024)
	// Held across the wrap: [0xffffff80, 0x40) and [0x40, 0xc0), then the
	// hole [0xffffff00, 0xffffff80) fills.
	if err := r.insert(0x140, 0x80); err != nil {
		t.Fatal(err)
	}
	if err := r.insert(0x80, 0x100); err != nil {
		t.Fatal(err)
	}
	r.check()
	if es := r.q.ents(); es[0].Seq != 0xffffff80 || es[1].Seq != 0x40 {
		t.Fatalf("entries start at %#x, %#x; want 0xffffff80, 0x40", es[0].Seq, es[1].Seq)
	}
	got, next := r.q.Take(0xffffff80, make([]Entry, 0, 4))
	if len(got) != 2 || next != 0xc0 {
		t.Fatalf("took %d entries up to %#x, want 2 up to 0xc0", len(got), next)
	}
	for _, e := range got {
		r.cs.Free(e.Mbuf)
	}
	r.check()
}

func TestSharedPacketsAreNeverWritten(t *testing.T) {
	r := newRig(t, 64, 0, 64, 1000, 4096)
	if err := r.insert(50, 100); err != nil { // held [1050,1150)
		t.Fatal(err)
	}
	orig := r.seg(0, 300, true) // [1000,1300), also held by someone else
	want := mbuftest.Bytes(orig)
	lens := []int{orig.Len(), orig.Next().Len()}
	engine.Ref(orig)
	// Trimmed at both ends by what is held, then partly taken.
	if err := r.insert(200, 50); err != nil {
		t.Fatal(err)
	}
	if err := r.q.Insert(r.seq(0), orig, hdr, 300); err != nil {
		t.Fatal(err)
	}
	clone, err := r.cs.Clone(orig, r.p)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.q.Insert(r.seq(10), clone, hdr+10, 20); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("a clone of held bytes: %v, want ErrDuplicate", err)
	}
	r.check()
	got, next := r.q.Take(r.seq(20), make([]Entry, 0, 8))
	if next != r.seq(300) {
		t.Fatalf("took up to %d, want %d", next, r.seq(300))
	}
	for _, e := range got {
		r.cs.Free(e.Mbuf)
	}
	if !bytes.Equal(mbuftest.Bytes(orig), want) || orig.Len() != lens[0] || orig.Next().Len() != lens[1] || orig.PktLen() != hdr+300 {
		t.Fatal("the shared packet's bytes or lengths changed")
	}
	if orig.Refs() != 1 {
		t.Fatalf("the shared packet has %d references after the queue let go, want 1", orig.Refs())
	}
	r.cs.Free(orig)
}

func TestAccountingReturnsToZeroAfterTakeAndAfterPurge(t *testing.T) {
	r := newRig(t, 64, 0, 64, 5, 8192)
	for _, at := range []int{100, 300, 500, 700} {
		if err := r.q.Insert(r.seq(at), r.seg(at, 100, true), hdr, 100); err != nil {
			t.Fatal(err)
		}
	}
	r.check()
	if r.a.held != 8 || r.q.Counters().BytesHeld != 8*engine.BufSize {
		t.Fatalf("4 two-segment packets charged %d mbufs, %d bytes", r.a.held, r.q.Counters().BytesHeld)
	}
	got, _ := r.q.Take(r.seq(100), make([]Entry, 0, 4))
	for _, e := range got {
		r.cs.Free(e.Mbuf)
	}
	r.check()
	r.q.Purge()
	r.check()
	if c := r.q.Counters(); r.a.held != 0 || c.BytesHeld != 0 || c.Segments != 0 {
		t.Fatalf("after Purge: %d mbufs, %d bytes, %d entries charged", r.a.held, c.BytesHeld, c.Segments)
	}
	// After Take drains everything.
	for _, at := range []int{1000, 1100} {
		if err := r.insert(at, 100); err != nil {
			t.Fatal(err)
		}
	}
	got, next := r.q.Take(r.seq(900), make([]Entry, 0, 4))
	if len(got) != 0 || next != r.seq(900) {
		t.Fatal("Take took data beyond a hole")
	}
	got, _ = r.q.Take(r.seq(1000), got)
	for _, e := range got {
		r.cs.Free(e.Mbuf)
	}
	if r.a.held != 0 || r.q.Counters().BytesHeld != 0 {
		t.Fatalf("after Take: %d mbufs, %d bytes charged", r.a.held, r.q.Counters().BytesHeld)
	}
}

func TestPruneFreesFromTheTop(t *testing.T) {
	r := newRig(t, 64, 0, 64, 0, 8192)
	for _, at := range []int{2000, 1000, 4000, 3000, 5000} {
		if err := r.insert(at, 100); err != nil {
			t.Fatal(err)
		}
	}
	if freed := r.q.Prune(2*engine.BufSize - 1); freed != 2*engine.BufSize {
		t.Fatalf("Prune freed %d bytes, want %d", freed, 2*engine.BufSize)
	}
	r.check()
	es := r.q.ents()
	if len(es) != 3 || es[2].Seq != 3000 {
		t.Fatalf("after pruning, %d entries, the highest at %d; want 3 up to 3000", len(es), es[len(es)-1].Seq)
	}
	c := r.q.Counters()
	if c.OFOPruned != 1 || c.PrunedSegs != 2 {
		t.Fatalf("OFOPruned %d, PrunedSegs %d; want 1, 2", c.OFOPruned, c.PrunedSegs)
	}
	blocks := r.q.SACKBlocks(make([]Block, 0, 4), 0)
	for _, b := range blocks {
		if b.Left >= 4000 {
			t.Fatalf("SACK block %v reports pruned data", b)
		}
	}
	r.q.Purge()
}

func TestAFullQueueDropsHigherDataForLowerAndRefusesTheRest(t *testing.T) {
	r := newRig(t, 64, 3*engine.BufSize, 64, 0, 8192)
	for _, at := range []int{3000, 4000, 5000} {
		if err := r.insert(at, 100); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.insert(2000, 100); err != nil {
		t.Fatalf("a lower segment into a full queue: %v", err)
	}
	if err := r.insert(6000, 100); !errors.Is(err, ErrMemory) {
		t.Fatalf("a higher segment into a full queue: %v, want ErrMemory", err)
	}
	r.check()
	c := r.q.Counters()
	if es := r.q.ents(); es[len(es)-1].Seq != 4000 || c.OFODrop != 1 || c.PrunedSegs != 1 || c.OFOQueue != 4 {
		t.Fatalf("top %d, counters %+v", es[len(es)-1].Seq, c)
	}
	r.q.Purge()
}

func TestAnArrivalCoveringHeldSegmentsReplacesThem(t *testing.T) {
	r := newRig(t, 64, 0, 64, 0, 8192)
	for _, at := range []int{1100, 1300, 1500} {
		if err := r.insert(at, 100); err != nil {
			t.Fatal(err)
		}
	}
	// [1150, 1550): trimmed to [1200, 1500), replacing [1300,1400).
	if err := r.insert(1150, 400); err != nil {
		t.Fatal(err)
	}
	r.check()
	es := r.q.ents()
	if len(es) != 3 || es[1].Seq != 1200 || es[1].Len != 300 {
		t.Fatalf("entries %v", es)
	}
	if c := r.q.Counters(); c.OFOMerge != 1 {
		t.Fatalf("OFOMerge %d, want 1", c.OFOMerge)
	}
	if b, ok := r.q.DSACK(); !ok || b != blk(1150, 1200) {
		t.Fatalf("D-SACK %v %v, want the first duplicated range [1150,1200)", b, ok)
	}
	// Bytes held in three adjacent entries: a duplicate though no one
	// entry holds them all.
	if err := r.insert(1150, 400); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("%v, want ErrDuplicate", err)
	}
	r.q.Purge()
}

func TestInvalidSegmentsAreFreedNotHeld(t *testing.T) {
	r := newRig(t, 16, 0, 16, 0, 1024)
	for _, c := range []struct{ off, n int }{{hdr, 0}, {hdr, 101}, {-1, 10}} {
		if err := r.q.Insert(1000, r.seg(0, 100, false), c.off, c.n); !errors.Is(err, ErrInvalid) {
			t.Fatalf("off %d len %d: %v, want ErrInvalid", c.off, c.n, err)
		}
	}
	r.check()
}

func TestTakeStopsWhenTheCallersSliceIsFull(t *testing.T) {
	r := newRig(t, 64, 0, 64, 0, 8192)
	for at := 100; at < 1000; at += 100 {
		if err := r.insert(at, 100); err != nil {
			t.Fatal(err)
		}
	}
	dst := make([]Entry, 0, 4)
	got, next := r.q.Take(r.seq(150), dst)
	if len(got) != 4 || next != r.seq(500) || got[0].Seq != r.seq(150) || got[0].Len != 50 || got[0].Off != hdr+50 {
		t.Fatalf("took %d up to %d, first %+v", len(got), next, got[0])
	}
	for _, e := range got {
		r.cs.Free(e.Mbuf)
	}
	if b, ok := r.q.DSACK(); !ok || b != blk(100, 150) {
		t.Fatalf("D-SACK %v %v, want the bytes below rcvNxt [100,150)", b, ok)
	}
	r.check()
	got, next = r.q.Take(next, dst)
	for _, e := range got {
		r.cs.Free(e.Mbuf)
	}
	if len(got) != 4 || next != r.seq(900) {
		t.Fatalf("second Take: %d up to %d", len(got), next)
	}
	r.q.Purge()
}

func TestInsertAndTakeAllocateNothingInSteadyState(t *testing.T) {
	r := newRig(t, 64, 0, 64, 0, 1024)
	pkt := func(n int) engine.Mbuf {
		m, err := r.cs.Alloc(r.p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Append(hdr + n); err != nil {
			t.Fatal(err)
		}
		return m
	}
	dst := make([]Entry, 0, 8)
	next := seq.Value(0xfffff000)
	step := func() {
		r.q.Insert(next.Add(300), pkt(100), hdr, 100)
		r.q.Insert(next.Add(100), pkt(100), hdr, 100)
		r.q.Insert(next.Add(200), pkt(100), hdr, 100)
		r.q.Insert(next.Add(150), pkt(100), hdr, 100) // duplicate
		_ = r.q.SACKBlocks(make([]Block, 0, 4)[:0:3], next)
		r.q.DSACK()
		var got []Entry
		got, next = r.q.Take(next.Add(100), dst)
		for _, e := range got {
			r.cs.Free(e.Mbuf)
		}
	}
	for range 10 {
		step()
	}
	if a := testing.AllocsPerRun(200, step); a != 0 {
		t.Fatalf("%.1f allocations per round of four inserts and a take", a)
	}
	r.q.Purge()
}

func TestTinySegmentsWithGapsCannotGrowMemoryPastTheLimits(t *testing.T) {
	const (
		segments = 100_000
		limit    = 64 * engine.BufSize
		acctCap  = 48
		poolSize = 256
	)
	r := newRig(t, poolSize, limit, acctCap, 0x7ffffff0, 2*segments+2)
	rng := rand.New(rand.NewPCG(11, 12))
	var errs [4]uint64
	for i := range segments {
		at := 2 + 2*rng.IntN(segments) // every other byte: gaps everywhere, some repeats
		if r.p.Available() < poolSize-acctCap-64 {
			t.Fatalf("segment %d: %d of %d mbufs out", i, poolSize-r.p.Available(), poolSize)
		}
		switch err := r.q.Insert(r.seq(at), r.seg(at, 1, false), hdr, 1); {
		case err == nil:
			errs[0]++
		case errors.Is(err, ErrMemory):
			errs[1]++
		case errors.Is(err, ErrDuplicate):
			errs[2]++
		default:
			t.Fatal(err)
		}
		c := r.q.Counters()
		if c.BytesHeld > limit || r.a.held > acctCap {
			t.Fatalf("segment %d: %d bytes, %d mbufs held", i, c.BytesHeld, r.a.held)
		}
	}
	c := r.q.Counters()
	if c.OFOQueue != errs[0] || c.OFODrop != errs[1] || c.Duplicates != errs[2] || errs[1] == 0 {
		t.Fatalf("counters %+v, results queued %d refused %d duplicate %d", c, errs[0], errs[1], errs[2])
	}
	if r.a.peak > acctCap {
		t.Fatalf("peak charge %d mbufs past the cap %d", r.a.peak, acctCap)
	}
	r.check()
	r.q.Purge()
	if r.a.held != 0 {
		t.Fatalf("%d mbufs still charged", r.a.held)
	}
}
