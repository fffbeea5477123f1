// Package engine holds what both drive modes share: packet memory (mbufs and
// their pools), workers pinned to cores, the Port interface that every driver
// implements, and the poll loop. It knows no protocol and no driver.
package engine

import (
	"errors"
	"fmt"
	"sync/atomic"
)

// Buffer geometry. An mbuf's buffer is Headroom bytes reserved for headers
// that are prepended later, followed by DataRoom bytes for the frame, as in
// DPDK's default mempools. BufSize is a multiple of 64 so buffers never share
// a cache line.
const (
	Headroom = 128
	DataRoom = 2048
	BufSize  = Headroom + DataRoom

	// MaxPacket is the largest chained packet (a TSO super-segment or a
	// reassembled datagram).
	MaxPacket = 64 * 1024
)

// Mbuf is a handle to one packet buffer: a pool number in the top 8 bits and
// an index into that pool's arena below. It is a plain integer so rings, queues
// and sockets can hold millions of them without the garbage collector ever
// scanning packet memory.
type Mbuf uint32

// NoMbuf marks the absence of an mbuf (the end of a chain, an empty slot).
const NoMbuf Mbuf = ^Mbuf(0)

const (
	poolShift = 24
	indexMask = 1<<poolShift - 1
	maxPools  = 255
	// MaxPoolSize is the most mbufs one pool can hold.
	MaxPoolSize = indexMask
)

// Errors returned by mbuf operations. They are values, never panics: a full
// pool or a short headroom is a condition the caller counts and survives.
var (
	ErrPoolEmpty   = errors.New("mbuf pool empty")
	ErrNoHeadroom  = errors.New("mbuf: not enough headroom")
	ErrNoTailroom  = errors.New("mbuf: not enough tailroom")
	ErrTooLong     = errors.New("mbuf: packet longer than 64 KiB")
	ErrShortPacket = errors.New("mbuf: packet shorter than the bytes to remove")
	// ErrShared refuses a write into bytes or a header that another holder
	// also reads (see Writable); the caller copies first, as skb_cow does.
	ErrShared = errors.New("mbuf: buffer is shared; copy it before writing")
)

// Offload flags carried with a packet, like the ol_flags of an rte_mbuf or
// the ip_summed and gso fields of an skb.
const (
	FlagRxIPCsumGood uint32 = 1 << iota // the port verified the IPv4 header checksum
	FlagRxL4CsumGood                    // the port verified the TCP/UDP checksum
	FlagTxIPCsum                        // the port must fill the IPv4 header checksum
	FlagTxL4Csum                        // the port must fill the TCP/UDP checksum
	FlagTSO                             // the port must segment at TSOSegSize
	FlagRSSHash                         // Hash holds a valid RSS hash
	flagExternal                        // the buffer is external memory (not the arena)
)

// meta is the per-mbuf header. It holds no pointers and is padded to one cache
// line so that two cores working on neighbouring mbufs never share a line.
type meta struct {
	// refcnt counts the holders of this header (and, for a direct mbuf,
	// the clones that borrow its buffer). 0 marks a free mbuf: a free of
	// a free mbuf is caught by it. Atomic; plain int32 so reset can write
	// the whole header at once.
	refcnt     int32
	dataOff    uint16
	dataLen    uint16
	pktLen     uint32
	next       Mbuf // next segment of a chain, NoMbuf at the end
	direct     Mbuf // for a clone: the mbuf whose buffer it shares
	tail       Mbuf // on a chain's first segment: its last, or NoMbuf for itself
	flags      uint32
	hash       uint32
	nbSegs     uint16
	port       uint16
	queue      uint16
	tsoSegSize uint16
	l2Len      uint8
	l3Len      uint8
	l4Len      uint8
	_          uint8
	stamp      int64
	_          [8]byte
}

// pools maps the pool number in an Mbuf to its pool. Entries are written once,
// before the pool's first mbuf can exist, so readers need no lock. It has 256
// entries so that indexing by the top byte needs no bounds check.
var pools [256]*Pool

func (m Mbuf) pool() *Pool   { return pools[m>>poolShift] }
func (m Mbuf) index() uint32 { return uint32(m) & indexMask }
func (m Mbuf) meta() *meta   { return &pools[m>>poolShift].meta[uint32(m)&indexMask] }

// String identifies an mbuf for logs and test failures.
func (m Mbuf) String() string {
	if m == NoMbuf {
		return "mbuf(none)"
	}
	return fmt.Sprintf("mbuf(%d:%d)", m>>poolShift, m.index())
}

// buffer returns the whole buffer behind m: its own arena slot, the slot of
// the mbuf it was cloned from, or the external memory attached to either.
func (m Mbuf) buffer() []byte {
	md := m.meta()
	if md.direct != NoMbuf {
		m = md.direct
		md = m.meta()
	}
	p := m.pool()
	i := m.index()
	if md.flags&flagExternal != 0 {
		return p.ext[i].bytes()
	}
	off := int(i) * BufSize
	return p.arena[off : off+BufSize : off+BufSize]
}

// Data returns the bytes of this segment. The slice aliases packet memory; it
// is valid until the mbuf is freed.
func (m Mbuf) Data() []byte {
	p := pools[m>>poolShift]
	i := uint32(m) & indexMask
	md := &p.meta[i]
	if debug {
		p.checkLive(m, md)
	}
	if md.direct != NoMbuf || md.flags&flagExternal != 0 {
		off := int(md.dataOff)
		return m.buffer()[off : off+int(md.dataLen)]
	}
	off := int(i)*BufSize + int(md.dataOff)
	return p.arena[off : off+int(md.dataLen)]
}

// Len is the number of data bytes in this segment.
func (m Mbuf) Len() int { return int(m.meta().dataLen) }

// PktLen is the length of the whole packet; meaningful on the first segment.
func (m Mbuf) PktLen() int { return int(m.meta().pktLen) }

// Next is the following segment of a chain, or NoMbuf.
func (m Mbuf) Next() Mbuf { return m.meta().next }

// Segs is the number of segments in the chain that starts at m.
func (m Mbuf) Segs() int { return int(m.meta().nbSegs) }

// Headroom is the free space in front of this segment's data that Prepend
// may use: 0 when the segment is not writable.
func (m Mbuf) Headroom() int {
	md := m.meta()
	if !md.writable() {
		return 0
	}
	return int(md.dataOff)
}

// Tailroom is the free space after this segment's data that Append may use:
// 0 when the segment is not writable, so a writer that finds no room chains
// a segment of its own (as AppendBytes does).
func (m Mbuf) Tailroom() int {
	md := m.meta()
	if !md.writable() {
		return 0
	}
	return BufSize - int(md.dataOff) - int(md.dataLen)
}

// Refs is the reference count of this segment; 0 once it is free.
func (m Mbuf) Refs() int { return int(atomic.LoadInt32(&m.meta().refcnt)) }

// Writable reports whether m's bytes and header belong to m's holder alone,
// so Prepend, Append and SetLen may write them. It is false for
//   - a segment with more than one reference (Ref, or an original whose
//     clones borrow its buffer): the other holders read the same header
//     and bytes;
//   - a clone, always. While the original or another clone holds the
//     buffer, the bytes outside a clone's window are theirs (a window is
//     usually a part of the buffer, so an Append would write into another
//     holder's data). Once the clone is the buffer's last holder (the
//     direct's count down to 1) writing would be safe, but writability
//     would then change under its holder whenever other goroutines let
//     go; one fixed rule is simpler, and a writer copies first (skb_cow),
//     as for any shared packet;
//   - external memory, which belongs to its owner and may be read by every
//     mbuf attached to it (pages of a file).
//
// A fresh mbuf from a pool is writable.
func (m Mbuf) Writable() bool { return m.meta().writable() }

func (md *meta) writable() bool {
	return atomic.LoadInt32(&md.refcnt) == 1 && md.direct == NoMbuf && md.flags&flagExternal == 0
}

// SetLen sets the data length of a single-segment packet, for a driver that
// has just written a frame into the buffer. It refuses a segment that is not
// writable with ErrShared.
func (m Mbuf) SetLen(n int) error {
	md := m.meta()
	if !md.writable() {
		return ErrShared
	}
	if n < 0 || int(md.dataOff)+n > BufSize {
		return ErrNoTailroom
	}
	md.dataLen = uint16(n)
	md.pktLen = uint32(n)
	return nil
}

// Flags returns the offload flags.
func (m Mbuf) Flags() uint32 { return m.meta().flags &^ flagExternal }

// SetFlags replaces the offload flags.
func (m Mbuf) SetFlags(f uint32) {
	md := m.meta()
	md.flags = md.flags&flagExternal | f&^flagExternal
}

// Hash is the RSS hash set by the receiving port (valid with FlagRSSHash).
func (m Mbuf) Hash() uint32 { return m.meta().hash }

// SetHash records an RSS hash and sets FlagRSSHash.
func (m Mbuf) SetHash(h uint32) {
	md := m.meta()
	md.hash = h
	md.flags |= FlagRSSHash
}

// Port and Queue say where the packet was received.
func (m Mbuf) Port() int  { return int(m.meta().port) }
func (m Mbuf) Queue() int { return int(m.meta().queue) }

// SetRxInfo records the receiving port and queue.
func (m Mbuf) SetRxInfo(port, queue int) {
	md := m.meta()
	md.port = uint16(port)
	md.queue = uint16(queue)
}

// Received records the receiving port and queue, as SetRxInfo, and returns
// the packet's length: what a driver's receive burst needs of each mbuf,
// with one look-up of its header.
func (m Mbuf) Received(port, queue int) int {
	md := m.meta()
	md.port = uint16(port)
	md.queue = uint16(queue)
	return int(md.pktLen)
}

// Stamp is a time in nanoseconds attached to the packet (a receive time, or
// the release time on a delay line).
func (m Mbuf) Stamp() int64     { return m.meta().stamp }
func (m Mbuf) SetStamp(t int64) { m.meta().stamp = t }

// TSOSegSize is the segment payload size a TSO port must cut the packet into.
func (m Mbuf) TSOSegSize() int       { return int(m.meta().tsoSegSize) }
func (m Mbuf) SetTSOSegSize(mss int) { m.meta().tsoSegSize = uint16(mss) }

// HeaderLens are the L2, L3 and L4 header lengths, used by offloads.
func (m Mbuf) HeaderLens() (l2, l3, l4 int) {
	md := m.meta()
	return int(md.l2Len), int(md.l3Len), int(md.l4Len)
}

// SetHeaderLens records the header lengths for offloads.
func (m Mbuf) SetHeaderLens(l2, l3, l4 int) {
	md := m.meta()
	md.l2Len, md.l3Len, md.l4Len = uint8(l2), uint8(l3), uint8(l4)
}

// Prepend grows the first segment into its headroom by n bytes and returns
// the new front bytes, to be filled with a header. A segment that is not
// writable is refused with ErrShared: its headroom is every holder's.
func (m Mbuf) Prepend(n int) ([]byte, error) {
	md := m.meta()
	if debug {
		m.pool().checkLive(m, md)
	}
	if !md.writable() {
		return nil, ErrShared
	}
	if n < 0 || n > int(md.dataOff) {
		return nil, ErrNoHeadroom
	}
	if int(md.pktLen)+n > MaxPacket {
		return nil, ErrTooLong
	}
	md.dataOff -= uint16(n)
	md.dataLen += uint16(n)
	md.pktLen += uint32(n)
	off := int(m.index())*BufSize + int(md.dataOff) // writable: its own arena slot
	return m.pool().arena[off : off+n : off+n], nil
}

// Adj removes n bytes from the front of the first segment (a parsed header).
func (m Mbuf) Adj(n int) error {
	md := m.meta()
	if n < 0 || n > int(md.dataLen) {
		return ErrShortPacket
	}
	md.dataOff += uint16(n)
	md.dataLen -= uint16(n)
	md.pktLen -= uint32(n)
	return nil
}

// last returns the final segment of the chain whose first segment is m, from
// the tail index the first segment keeps, so appending to a long chain costs
// no walk.
func (m Mbuf) last() Mbuf {
	if t := m.meta().tail; t != NoMbuf {
		return t
	}
	return m
}

// Append grows the last segment into its tailroom by n bytes and returns the
// new tail bytes, to be filled by the caller. m is the packet's first
// segment. It refuses with ErrShared when the last segment is not writable:
// the caller chains a segment of its own (AppendBytes does) or copies first.
func (m Mbuf) Append(n int) ([]byte, error) {
	head := m.meta()
	if debug {
		m.pool().checkLive(m, head)
	}
	if int(head.pktLen)+n > MaxPacket {
		return nil, ErrTooLong
	}
	l := m.last()
	lm := l.meta()
	if !lm.writable() {
		return nil, ErrShared
	}
	end := int(lm.dataOff) + int(lm.dataLen)
	if n < 0 || end+n > BufSize {
		return nil, ErrNoTailroom
	}
	lm.dataLen += uint16(n)
	head.pktLen += uint32(n)
	off := int(l.index())*BufSize + end // writable: its own arena slot
	return l.pool().arena[off : off+n : off+n], nil
}

// Trim removes n bytes from the end of the packet, from the last segment only
// (as rte_pktmbuf_trim does).
func (m Mbuf) Trim(n int) error {
	l := m.last()
	lm := l.meta()
	if n < 0 || n > int(lm.dataLen) {
		return ErrShortPacket
	}
	lm.dataLen -= uint16(n)
	m.meta().pktLen -= uint32(n)
	return nil
}

// Chain appends the packet tail to the packet head. The tail's segments
// become part of head; the caller no longer frees tail on its own. Chaining
// writes only headers, so a shared buffer does not stop it (a clone chains
// a segment of its own behind the bytes it shares); a header shared with Ref
// must not be chained to, see Ref.
func (m Mbuf) Chain(tail Mbuf) error {
	hm, tm := m.meta(), tail.meta()
	if debug {
		m.pool().checkLive(m, hm)
		tail.pool().checkLive(tail, tm)
	}
	if int(hm.pktLen)+int(tm.pktLen) > MaxPacket {
		return ErrTooLong
	}
	m.last().meta().next = tail
	hm.tail = tail.last()
	hm.pktLen += tm.pktLen
	hm.nbSegs += tm.nbSegs
	return nil
}

// CopyOut copies packet bytes from offset off into dst, across segments, and
// returns the number copied.
func (m Mbuf) CopyOut(dst []byte, off int) int {
	n := 0
	for s := m; s != NoMbuf && len(dst) > 0; s = s.meta().next {
		d := s.Data()
		if off >= len(d) {
			off -= len(d)
			continue
		}
		c := copy(dst, d[off:])
		off = 0
		dst = dst[c:]
		n += c
	}
	return n
}

// CopyFrame copies a single-segment packet into the fresh mbuf dst and
// returns false, copying nothing, if src is chained or does not fit. It is
// the copy a port does in place of DMA.
func CopyFrame(dst, src Mbuf) bool {
	sp, dp := pools[src>>poolShift], pools[dst>>poolShift]
	si, di := uint32(src)&indexMask, uint32(dst)&indexMask
	sm, dm := &sp.meta[si], &dp.meta[di]
	if sm.next != NoMbuf {
		return false
	}
	n := int(sm.dataLen)
	off, soff := int(dm.dataOff), int(sm.dataOff)
	if sm.direct != NoMbuf || dm.direct != NoMbuf || (sm.flags|dm.flags)&flagExternal != 0 {
		// A borrowed buffer on either side: the general path.
		dbuf := dst.buffer()
		if off+n > len(dbuf) {
			return false
		}
		copy(dbuf[off:off+n], src.buffer()[soff:soff+n])
	} else {
		if off+n > BufSize {
			return false
		}
		d := int(di)*BufSize + off
		s := int(si)*BufSize + soff
		copy(dp.arena[d:d+n], sp.arena[s:s+n])
	}
	dm.dataLen = uint16(n)
	dm.pktLen = uint32(n)
	return true
}
