package afpacket

import (
	"encoding/binary"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/engine/csum"
)

// The receive ring's blocks pass between the kernel and the port in order.
// A block is the kernel's while its status is TP_STATUS_KERNEL; the kernel
// fills it and publishes it by storing TP_STATUS_USER (after a write
// barrier), so the port's atomic load of the status orders every read of the
// block's frames after the kernel's writes. The port gives it back by
// storing TP_STATUS_KERNEL atomically once it has copied every frame out;
// it never touches the block afterwards. Blocks are handed over in ring
// order and taken back in the same order, so the port only ever looks at
// block cur.

// open takes block cur if the kernel has handed it over, and reports
// whether it did. An empty block (which the kernel does not hand over, but
// costs nothing to allow) is given straight back.
func (rq *rxQueue) open() bool {
	for {
		blk := rq.ring[rq.cur*rq.blockSize:]
		if atomic.LoadUint32(word(blk, blkStatus))&unix.TP_STATUS_USER == 0 {
			return false
		}
		rq.left = int(u32(blk, blkNumPkts))
		rq.pos = int(u32(blk, blkFirstFrame))
		if rq.left > 0 {
			return true
		}
		rq.retire()
	}
}

// retire gives block cur back to the kernel and moves to the next.
func (rq *rxQueue) retire() {
	atomic.StoreUint32(word(rq.ring[rq.cur*rq.blockSize:], blkStatus), unix.TP_STATUS_KERNEL)
	rq.left = 0
	if rq.cur++; rq.cur == rq.blocks {
		rq.cur = 0
	}
}

// RxBurst copies up to len(pkts) frames out of the handed-over blocks into
// mbufs of the port's pool, giving each block back once it is empty. Frames
// longer than the MTU (a veth peer's TSO or a NIC's GRO super-frames, or
// frames the ring truncated) are dropped as too long; with no mbuf to copy
// into, a frame is dropped (rx_nombuf) and the burst ends, as a NIC drops
// what it cannot place. A frame whose layout lies outside its block (the
// kernel's, so never expected) drops the rest of the block as an error.
func (p *Port) RxBurst(q int, pkts []engine.Mbuf) int {
	rq := p.rxq[q]
	n := 0
	var bytes uint64
	var drops [engine.NumDropReasons]uint64
	for n < len(pkts) {
		if rq.left == 0 && !rq.open() {
			break
		}
		blk := rq.ring[rq.cur*rq.blockSize : (rq.cur+1)*rq.blockSize]
		off := rq.pos
		if off < blkHeaderLen || off > len(blk)-hdrSize {
			drops[engine.DropError] += uint64(rq.left)
			rq.retire()
			continue
		}
		status := u32(blk, off+hdrStatus)
		next := int(u32(blk, off+hdrNextOffset))
		snap, length := int(u32(blk, off+hdrSnaplen)), int(u32(blk, off+hdrLen))
		mac := off + int(u16(blk, off+hdrMac))
		m, why, ok := engine.NoMbuf, engine.DropError, false
		switch {
		case mac < off+hdrSize || mac > len(blk)-snap:
			// why is DropError
		case snap < length || length > p.maxFrame:
			why = engine.DropTooLong
		default:
			m, why, ok = rq.copyOut(blk[mac:mac+snap], status, blk[off:off+hdrSize])
		}
		// Done with the frame's bytes: the block may go back.
		if rq.left--; rq.left == 0 {
			rq.retire()
		} else if next < hdrSize {
			drops[engine.DropError] += uint64(rq.left)
			rq.retire()
		} else {
			rq.pos += next
		}
		if !ok {
			drops[why]++
			if why == engine.DropNoMbuf {
				break
			}
			continue
		}
		m.SetRxInfo(p.index, q)
		bytes += uint64(m.PktLen())
		pkts[n] = m
		n++
	}
	rq.ctr.Count(uint64(n), bytes, &drops)
	return n
}

// copyOut copies one frame into a new packet. A VLAN tag the kernel took
// out of the frame (into the header hdr) is put back, so the stack sees the
// frame as it was on the wire. A TCP or UDP checksum the sending kernel left
// to the device (TP_STATUS_CSUMNOTREADY) is completed here, and the packet
// is marked checksum-good, like one the kernel verified (TP_STATUS_CSUM_VALID).
func (rq *rxQueue) copyOut(frame []byte, status uint32, hdr []byte) (engine.Mbuf, engine.DropReason, bool) {
	m, err := rq.cache.Get()
	if err != nil {
		return engine.NoMbuf, engine.DropNoMbuf, false
	}
	l3 := ethHeader
	if status&unix.TP_STATUS_VLAN_VALID != 0 && len(frame) >= 12 {
		tpid := uint16(unix.ETH_P_8021Q)
		if status&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
			tpid = u16(hdr, hdrVLANTPID)
		}
		binary.BigEndian.PutUint16(rq.vlan[0:], tpid)
		binary.BigEndian.PutUint16(rq.vlan[2:], uint16(u32(hdr, hdrVLANTCI)))
		err = rq.caches.AppendBytes(m, rq.pool, frame[:12])
		if err == nil {
			err = rq.caches.AppendBytes(m, rq.pool, rq.vlan[:])
		}
		if err == nil {
			err = rq.caches.AppendBytes(m, rq.pool, frame[12:])
		}
		l3 += 4
	} else if len(frame) <= engine.DataRoom {
		b, _ := m.Append(len(frame)) // a fresh mbuf's tailroom is DataRoom
		copy(b, frame)
	} else {
		err = rq.caches.AppendBytes(m, rq.pool, frame)
	}
	if err != nil {
		rq.caches.Free(m)
		return engine.NoMbuf, engine.DropNoMbuf, false
	}
	switch {
	case status&unix.TP_STATUS_CSUMNOTREADY != 0:
		if csum.Finish(m, l3) == nil {
			m.SetFlags(engine.FlagRxL4CsumGood)
		}
	case status&unix.TP_STATUS_CSUM_VALID != 0:
		m.SetFlags(engine.FlagRxL4CsumGood)
	}
	return m, 0, true
}
