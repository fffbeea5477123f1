package null

import "github.com/pollnet/pollnet/engine"

// The four burst functions, net_null's eth_null_rx, eth_null_copy_rx,
// eth_null_tx and eth_null_copy_tx. New picks one pair by Copy.

// rxNoCopy hands out fresh mbufs that say Size bytes, writing none of them.
func rxNoCopy(rq *rxQueue, pkts []engine.Mbuf) int {
	n := len(pkts)
	if n == 0 {
		return 0
	}
	if rq.cache.GetBulkReceived(pkts, rq.size, rq.port, rq.queue) != nil {
		rq.nombuf.add(uint64(n))
		return 0
	}
	rq.pkts.add(uint64(n))
	rq.bytes.add(uint64(n * rq.size))
	return n
}

// rxCopy hands out fresh mbufs with the template copied into each.
func rxCopy(rq *rxQueue, pkts []engine.Mbuf) int {
	n := len(pkts)
	if n == 0 {
		return 0
	}
	if rq.cache.GetBulkReceived(pkts, rq.size, rq.port, rq.queue) != nil {
		rq.nombuf.add(uint64(n))
		return 0
	}
	for _, m := range pkts {
		copy(m.Data(), rq.tmpl)
	}
	rq.pkts.add(uint64(n))
	rq.bytes.add(uint64(n * rq.size))
	return n
}

// txNoCopy frees every frame.
func txNoCopy(tq *txQueue, pkts []engine.Mbuf) int {
	var bytes uint64
	for _, m := range pkts {
		bytes += uint64(m.PktLen())
	}
	tq.done.FreeBulk(pkts)
	tq.pkts.add(uint64(len(pkts)))
	tq.bytes.add(bytes)
	return len(pkts)
}

// txCopy copies every frame into the queue's scratch buffer, as much of it
// as fits (net_null copies its packet size), then frees it.
func txCopy(tq *txQueue, pkts []engine.Mbuf) int {
	var bytes uint64
	for _, m := range pkts {
		bytes += uint64(m.PktLen())
		if m.Next() == engine.NoMbuf {
			copy(tq.scratch, m.Data())
		} else {
			m.CopyOut(tq.scratch, 0)
		}
	}
	tq.done.FreeBulk(pkts)
	tq.pkts.add(uint64(len(pkts)))
	tq.bytes.add(bytes)
	return len(pkts)
}
