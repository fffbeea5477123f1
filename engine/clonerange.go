package engine

import (
	"errors"
	"sync/atomic"
)

// ErrRange refuses a CloneRange whose bytes are not all in the packet.
var ErrRange = errors.New("mbuf: clone range empty or outside the packet")

// CloneRange returns a new packet whose data is bytes [off, off+n) of packet
// m, made of clones (indirect mbufs sharing the buffers, never copying, never
// writable) of just the segments that hold those bytes, each narrowed to its
// part; m is not changed and stays valid. The clones come from p through cs.
//
// Clone copies a whole chain, and a chain's later segments carry no packet
// length, so a part of a chain (a TCP segment cut from a queued write, as
// Linux's tcp_fragment does) needs this walk from m's first segment. The new
// packet carries no offload flags or header lengths: those describe m's
// headers, which the range need not hold. An empty range, or one past m's
// end, is ErrRange; a pool running dry frees what was built and returns its
// error.
func (cs *Caches) CloneRange(m Mbuf, off, n int, p *Pool) (Mbuf, error) {
	if off < 0 || n <= 0 || n > m.PktLen()-off {
		return NoMbuf, ErrRange
	}
	head, tail := NoMbuf, NoMbuf
	segs := 0
	for s := m; n > 0; s = s.meta().next {
		sm := s.meta()
		if debug {
			s.pool().checkLive(s, sm)
		}
		if off >= int(sm.dataLen) { // before the range, or empty
			off -= int(sm.dataLen)
			continue
		}
		c, err := cs.Alloc(p)
		if err != nil {
			if head != NoMbuf {
				cs.Free(head)
			}
			return NoMbuf, err
		}
		owner := s
		if sm.direct != NoMbuf {
			owner = sm.direct
		}
		atomic.AddInt32(&owner.meta().refcnt, 1)
		k := min(int(sm.dataLen)-off, n)
		cm := c.meta()
		cm.direct = owner
		cm.dataOff, cm.dataLen = sm.dataOff+uint16(off), uint16(k)
		if head == NoMbuf {
			head = c
		} else {
			tail.meta().next = c
			head.meta().tail = c
		}
		tail = c
		segs++
		off, n = 0, n-k
		// The head's length grows as segments join, so a free on a
		// dry pool above sees a consistent packet.
		hm := head.meta()
		hm.pktLen += uint32(k)
		hm.nbSegs = uint16(segs)
	}
	return head, nil
}
