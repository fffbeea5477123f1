package afpacket

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/engine/csum"
)

// The transmit ring's slots pass between the port and the kernel in order.
// A slot is the port's while its status is TP_STATUS_AVAILABLE: the port
// copies a frame in, then publishes it by storing TP_STATUS_SEND_REQUEST
// atomically, which orders the copy before the kernel can see the request.
// On a kick (sendto) the kernel walks the ring from its own head, which
// moves in step with the port's, sending every requested slot; it marks a
// slot TP_STATUS_SENDING while the frame is in flight and AVAILABLE again
// when the driver lets the frame go (at once, on a veth). A slot the kernel
// still holds ends the burst: the ring is full.

// slot is the bytes of transmit slot i.
func (tq *txQueue) slot(i int) []byte {
	off := (i/tq.perBlock)*tq.blockSize + (i%tq.perBlock)*tq.frameSize
	return tq.ring[off : off+tq.frameSize]
}

// TxBurst copies frames into free slots of the ring and kicks the kernel
// once for the burst (one sendto(2)), freeing the mbufs it took: the ring
// holds its own copy. It stops at the first slot the kernel still holds and
// returns how many frames it took; the caller keeps the rest. Frames longer
// than the MTU are dropped as too long, runts shorter than an Ethernet
// header as errors; a TCP or UDP checksum left to the device
// (engine.FlagTxL4Csum) is finished in software first, since the port
// advertises no checksum offload.
func (p *Port) TxBurst(q int, pkts []engine.Mbuf) int {
	tq := p.checkTx(q)
	var sent, bytes, long, errs uint64
	i := 0
	for ; i < len(pkts); i++ {
		s := tq.slot(tq.head)
		st := word(s, hdrStatus)
		if atomic.LoadUint32(st) != unix.TP_STATUS_AVAILABLE {
			break
		}
		m := pkts[i]
		size := m.PktLen()
		switch {
		case size > tq.maxFrame:
			long++
			continue
		case size < ethHeader:
			errs++
			continue
		}
		if m.Flags()&engine.FlagTxL4Csum != 0 {
			l2, _, _ := m.HeaderLens()
			if l2 == 0 {
				l2 = ethHeader
			}
			if csum.Finish(m, l2) != nil {
				errs++
				continue
			}
		}
		m.CopyOut(s[txData:txData+size], 0)
		*(*uint32)(unsafe.Pointer(&s[hdrLen])) = uint32(size)
		*(*uint32)(unsafe.Pointer(&s[hdrNextOffset])) = 0
		atomic.StoreUint32(st, unix.TP_STATUS_SEND_REQUEST)
		if tq.head++; tq.head == tq.slots {
			tq.head = 0
		}
		sent++
		bytes += uint64(size)
	}
	tq.done.FreeBulk(pkts[:i]) // copied or dropped: either way done with
	if sent > 0 || i < len(pkts) {
		// Also when the ring was full: an earlier kick may have found
		// the driver's queue full (ENOBUFS) and left requests behind.
		tq.kick()
	}
	tq.ctr.CountTx(sent, bytes, long, errs)
	return i
}

// kick asks the kernel to send the requested slots, without waiting for
// them (MSG_DONTWAIT). A failed kick leaves the requests in the ring for
// the next one.
func (tq *txQueue) kick() {
	for {
		_, _, errno := unix.Syscall6(unix.SYS_SENDTO, uintptr(tq.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
		if errno != unix.EINTR {
			return
		}
	}
}
