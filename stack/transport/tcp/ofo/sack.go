package ofo

import (
	"github.com/pollnet/pollnet/stack/header/tcp"
	"github.com/pollnet/pollnet/stack/transport/tcp/seq"
)

// Block is one SACK block, as the option carries it, so that SACKBlocks can
// fill tcp.Options.SACK directly.
type Block = tcp.SACKBlock

// run is a maximal range of contiguous held bytes: what one SACK block
// reports.
type run struct{ start, end seq.Value }

// sackState is what the receiver reports in SACK options (RFC 2018 section
// 4) and D-SACK blocks (RFC 2883 section 4). The runs are kept exact as
// entries come and go, so a block is always a whole contiguous range. Which
// blocks to report first is remembered as one held byte of each recently
// reported block, most recent first; a byte rather than a range, because
// a run grows and merges after it is reported.
type sackState struct {
	runs    []run // sorted, disjoint, never adjacent
	recent  [tcp.MaxSACKBlocks]seq.Value
	nrecent int

	dsack    run
	hasDSACK bool
}

// dsackBuilder gathers the duplicated bytes of one arrival, in increasing
// order: the first range, extended by those that continue it (Linux's
// tcp_dsack_set, then tcp_dsack_extend).
type dsackBuilder struct {
	start, end seq.Value
	set        bool
}

func (d *dsackBuilder) add(a, b seq.Value) {
	if !d.set {
		d.start, d.end, d.set = a, b, true
		return
	}
	if a.LessEq(d.end) && d.end.LessThan(b) {
		d.end = b
	}
}

func (st *sackState) setDSACK(a, b seq.Value) {
	st.dsack, st.hasDSACK = run{a, b}, true
}

func (st *sackState) reset() { *st = sackState{runs: st.runs[:0]} }

// runOf is the index of the run holding s, or -1.
func (st *sackState) runOf(s seq.Value) int {
	rs := st.runs
	lo, hi := 0, len(rs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s.LessThan(rs[m].end) {
			hi = m
		} else {
			lo = m + 1
		}
	}
	if lo < len(rs) && rs[lo].start.LessEq(s) {
		return lo
	}
	return -1
}

// held records that [a, b) is held now and that it arrived last.
func (st *sackState) held(a, b seq.Value) {
	rs := st.runs
	// Runs k..m-1 overlap or touch [a, b).
	lo, hi := 0, len(rs)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if a.LessEq(rs[mid].end) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	k, m := lo, lo
	for m < len(rs) && rs[m].start.LessEq(b) {
		m++
	}
	if k == m {
		st.runs = append(st.runs, run{})
		rs = st.runs
		copy(rs[k+1:], rs[k:])
		rs[k] = run{a, b}
	} else {
		if a.LessThan(rs[k].start) {
			rs[k].start = a
		}
		end := rs[m-1].end
		if end.LessThan(b) {
			end = b
		}
		rs[k].end = end
		n := copy(rs[k+1:], rs[m:])
		st.runs = rs[:k+1+n]
	}
	st.touch(a)
}

// touch makes the block holding s the most recent, forgetting any other
// remembered byte of the same block and the oldest beyond four.
func (st *sackState) touch(s seq.Value) {
	r := st.runOf(s)
	if r < 0 {
		return
	}
	var keep [tcp.MaxSACKBlocks]seq.Value
	keep[0] = s
	n := 1
	for _, a := range st.recent[:st.nrecent] {
		if n == len(keep) {
			break
		}
		if ra := st.runOf(a); ra >= 0 && ra != r {
			keep[n] = a
			n++
		}
	}
	st.recent, st.nrecent = keep, n
}

// dropTop records that the highest entry, [a, b), is gone.
func (st *sackState) dropTop(a, b seq.Value) {
	last := len(st.runs) - 1
	if last < 0 || st.runs[last].end != b {
		return
	}
	if st.runs[last].start == a {
		st.runs = st.runs[:last]
	} else {
		st.runs[last].end = a
	}
}

// taken records that everything before next has left the queue.
func (st *sackState) taken(next seq.Value) {
	k := 0
	for k < len(st.runs) && st.runs[k].end.LessEq(next) {
		k++
	}
	if k > 0 {
		n := copy(st.runs, st.runs[k:])
		st.runs = st.runs[:n]
	}
	if len(st.runs) > 0 && st.runs[0].start.LessThan(next) {
		st.runs[0].start = next
	}
}

// SACKBlocks fills dst (from length 0, at most cap(dst) and at most 4
// blocks) with the SACK blocks to send with an acknowledgement of rcvNxt,
// as RFC 2018 section 4 orders them: "The first SACK block ... MUST specify
// the contiguous block of data containing the segment which triggered this
// ACK", then the most recently reported blocks that are not the same block,
// then, so that the option carries "as many distinct SACK blocks as
// possible", other held blocks from the lowest. Nothing at or below rcvNxt
// is reported. A caller with a D-SACK to send puts it first and passes one
// block less of room; with timestamps the option has room for 3.
func (q *Queue) SACKBlocks(dst []Block, rcvNxt seq.Value) []Block {
	room := min(cap(dst), tcp.MaxSACKBlocks)
	dst = dst[:0]
	st := &q.sack
	k := 0
	for _, a := range st.recent[:st.nrecent] {
		r := st.runOf(a)
		if r < 0 {
			continue // taken or pruned: forget it
		}
		st.recent[k] = a
		k++
		if len(dst) < room {
			dst = appendRun(dst, st.runs[r], rcvNxt)
		}
	}
	st.nrecent = k
	for _, r := range st.runs {
		if len(dst) >= room {
			break
		}
		dst = appendRun(dst, r, rcvNxt)
	}
	return dst
}

// appendRun adds r to dst unless it is there already or acknowledged.
func appendRun(dst []Block, r run, rcvNxt seq.Value) []Block {
	if r.end.LessEq(rcvNxt) {
		return dst
	}
	for _, b := range dst {
		if b.Right == uint32(r.end) {
			return dst
		}
	}
	if r.start.LessThan(rcvNxt) {
		r.start = rcvNxt
	}
	return append(dst, Block{Left: uint32(r.start), Right: uint32(r.end)})
}

// DSACK returns the D-SACK block pending, the bytes of the latest arrival
// that were held already, and forgets it: RFC 2883 section 4 reports each
// duplicate once, as the first block of the next SACK option.
func (q *Queue) DSACK() (Block, bool) {
	st := &q.sack
	if !st.hasDSACK {
		return Block{}, false
	}
	st.hasDSACK = false
	return Block{Left: uint32(st.dsack.start), Right: uint32(st.dsack.end)}, true
}
