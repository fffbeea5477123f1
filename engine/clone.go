package engine

import "sync/atomic"

// Sharing without copying. Ref makes more holders of the same packet, headers
// and all; Clone makes new headers over the same bytes (indirect segments,
// each pointing at the direct segment that owns its buffer). Either way no
// holder may write the shared bytes (Mbuf.Writable): a writer copies first.

// Ref adds one reference to every segment of m, so that two holders (say a
// socket's retransmit queue and a port's transmit ring) can each free it.
// The holders share the headers as well as the bytes: Append and Prepend
// refuse the packet (ErrShared), and neither holder may change its headers
// (Adj, Trim, Chain, AppendBytes); one that needs to takes a Clone instead.
func Ref(m Mbuf) {
	for ; m != NoMbuf; m = m.meta().next {
		if debug {
			m.pool().checkLive(m, m.meta())
		}
		atomic.AddInt32(&m.meta().refcnt, 1)
	}
}

// Clone returns a new packet whose segments share m's data without copying
// it (rte_pktmbuf_clone). Each clone segment has its own offsets, so a clone
// can be trimmed or adjusted without touching m; neither may write the shared
// bytes. The clone's headers come from p through cs.
func (cs *Caches) Clone(m Mbuf, p *Pool) (Mbuf, error) {
	head, tail := NoMbuf, NoMbuf
	for s := m; s != NoMbuf; s = s.meta().next {
		if debug {
			s.pool().checkLive(s, s.meta())
		}
		c, err := cs.Alloc(p)
		if err != nil {
			if head != NoMbuf {
				cs.Free(head)
			}
			return NoMbuf, err
		}
		sm, cm := s.meta(), c.meta()
		owner := s
		if sm.direct != NoMbuf {
			owner = sm.direct
		}
		atomic.AddInt32(&owner.meta().refcnt, 1)
		cm.direct = owner
		cm.dataOff, cm.dataLen = sm.dataOff, sm.dataLen
		cm.flags = sm.flags &^ flagExternal
		cm.hash, cm.port, cm.queue = sm.hash, sm.port, sm.queue
		cm.tsoSegSize, cm.l2Len, cm.l3Len, cm.l4Len = sm.tsoSegSize, sm.l2Len, sm.l3Len, sm.l4Len
		cm.stamp = sm.stamp
		if head == NoMbuf {
			head = c
			cm.pktLen, cm.nbSegs = sm.pktLen, sm.nbSegs
		} else {
			tail.meta().next = c
			head.meta().tail = c
		}
		tail = c
	}
	return head, nil
}
