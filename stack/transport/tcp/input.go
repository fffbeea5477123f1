package tcp

import (
	"github.com/pollnet/pollnet/engine"
	tcpheader "github.com/pollnet/pollnet/stack/header/tcp"
	"github.com/pollnet/pollnet/stack/socket"
	"github.com/pollnet/pollnet/stack/transport/tcp/challenge"
	"github.com/pollnet/pollnet/stack/transport/tcp/ofo"
	"github.com/pollnet/pollnet/stack/transport/tcp/sack"
	"github.com/pollnet/pollnet/stack/transport/tcp/seq"
)

// segment is an arriving segment, parsed.
type segment struct {
	seq, ack seq.Value
	flags    tcpheader.Flags
	wnd      uint16
	opts     tcpheader.Options
	// m is the packet, owned by the segment until something takes it
	// (NoMbuf then); the payload is n bytes at offset off.
	m      engine.Mbuf
	off, n int
	now    int64
}

func (s *segment) has(f tcpheader.Flags) bool { return s.flags&f != 0 }

// len is SEG.LEN: the payload, the SYN and the FIN.
func (s *segment) len() seq.Size {
	n := seq.Size(s.n)
	if s.has(tcpheader.SYN) {
		n++
	}
	if s.has(tcpheader.FIN) {
		n++
	}
	return n
}

// tsval is the segment's TSval, if it carries timestamps.
func (s *segment) ts() (val, ecr uint32, ok bool) {
	if s.opts.Has(tcpheader.HasTimestamps) {
		return s.opts.TSval, s.opts.TSecr, true
	}
	return 0, 0, false
}

// pawsWindow is how long a TSval stays a valid reference (RFC 7323 5.5:
// 24 days, after which the peer's clock may have wrapped).
const pawsWindow = 24 * 24 * 3600 * int64(1e9)

// input processes a segment for c (tcp_rcv_state_process). Under the lock.
func (c *Conn) input(sg *segment) {
	ctr := c.sh.Counters()
	if c.state == SynSent {
		c.synSentInput(sg)
		return
	}
	now := sg.now
	// A retransmitted SYN in SYN-RECEIVED gets the SYN-ACK again.
	if c.state == SynReceived && sg.has(tcpheader.SYN) && !sg.has(tcpheader.ACK|tcpheader.RST) && sg.seq == c.irs {
		c.sendSynAck()
		return
	}
	// PAWS (RFC 7323 5.3): a segment older than the last one in window.
	if val, _, ok := sg.ts(); ok && c.tsOK && !sg.has(tcpheader.RST) &&
		int32(val-c.tsRecent) < 0 && now-c.tsRecentAt < pawsWindow {
		ctr.PAWSEstab++
		c.dupAck(now)
		return
	}
	// First: is the segment in the window? (tcp_sequence)
	end := sg.seq.Add(sg.len())
	if end.LessThan(c.rcvWup) || c.rcvNxt.Add(seq.Size(c.rcvWindow())).LessThan(sg.seq) ||
		(sg.len() > 0 && end == c.rcvWup && c.rcvNxt != c.rcvWup) {
		if sg.has(tcpheader.SYN) && !sg.has(tcpheader.RST) {
			// RFC 5961 4.2: whatever its sequence number.
			ctr.TCPSYNChallenge++
			c.challengeACK(now)
			return
		}
		if !sg.has(tcpheader.RST) {
			if sg.n > 0 && end.LessEq(c.rcvNxt) {
				c.setDSACK(sg.seq, end) // a full duplicate
			}
			c.dupAck(now)
		}
		return
	}
	// Second: RST (RFC 5961 3.2).
	if sg.has(tcpheader.RST) {
		if sg.seq == c.rcvNxt {
			c.resetByPeer()
		} else {
			c.challengeACK(now)
		}
		return
	}
	// Fourth: a SYN in a synchronized state (RFC 5961 4.2). After a
	// simultaneous open the peer's SYN-ACK acknowledging ours is the
	// handshake's ACK, and goes on (as in Linux's tcp_validate_incoming).
	if sg.has(tcpheader.SYN) && !(c.state == SynReceived && !c.passive && sg.has(tcpheader.ACK) &&
		sg.seq == c.irs && sg.ack == c.sndNxt) {
		ctr.TCPSYNChallenge++
		c.challengeACK(now)
		return
	}
	// Fifth: the ACK.
	if !sg.has(tcpheader.ACK) {
		return
	}
	// In window, no RST or SYN: the peer is alive, as far as keepalive
	// can tell (a blind segment outside the window is not).
	c.lastRecv = now
	if c.state == SynReceived {
		if !(c.sndUna.LessThan(sg.ack) && sg.ack.LessEq(c.sndNxt)) {
			c.sendReset(sg.ack, 0, false)
			return
		}
		if c.parent != nil && c.parent.full() {
			// No room to queue it: the ACK is dropped and the connection
			// stays half-open; a retransmission may find room (tcp_check_req
			// with tcp_abort_on_overflow off).
			ctr.ListenOverflows++
			ctr.ListenDrops++
			return
		}
		c.established(sg)
		if c.state != Established {
			return
		}
	}
	// RFC 5961 5.2: acknowledgements of what we never sent, or of what
	// lies further back than the largest window, are challenged.
	if c.sndNxt.LessThan(sg.ack) {
		c.challengeACK(now)
		return
	}
	if sg.ack.LessThan(back(c.sndUna, seq.Size(c.maxSndWnd))) {
		c.challengeACK(now)
		return
	}
	// Only an acceptable ACK's timestamp is kept (RFC 7323 4.3), as in
	// Linux's tcp_ack: a blind segment must not make PAWS drop the peer's.
	if val, _, ok := sg.ts(); ok && c.tsOK && sg.seq.LessEq(c.rcvWup) {
		c.tsRecent, c.tsRecentAt = val, now
	}
	c.processAck(sg)
	if c.state == Closed || c.state == TimeWait {
		return
	}
	// Seventh: the data.
	if sg.n > 0 {
		switch c.state {
		case Established, FinWait1, FinWait2:
			if c.orphan {
				// Nobody will read it: Linux resets (TCPAbortOnData).
				ctr.TCPAbortOnData++
				c.sendReset(c.sndNxt, 0, false)
				c.abort(ErrReset)
				return
			}
			c.receiveData(sg)
		}
	}
	// Eighth: the FIN, when it is next in order.
	if sg.has(tcpheader.FIN) && sg.seq.Add(seq.Size(sg.n)) == c.rcvNxt && !c.rcvFin {
		c.receiveFin(now)
	}
	c.output(now)
	c.sendAckIfDue(now)
}

// rcvWindow is the receive window still open beyond RCV.NXT as last
// advertised (tcp_receive_window).
func (c *Conn) rcvWindow() uint32 {
	w := int64(c.rcvWup.Add(seq.Size(c.rcvWnd)).Sub(c.rcvNxt))
	if int32(w) < 0 {
		return 0
	}
	return uint32(w)
}

// synSentInput is the SYN-SENT part of RFC 9293 3.10.7.3.
func (c *Conn) synSentInput(sg *segment) {
	ctr := c.sh.Counters()
	if sg.has(tcpheader.ACK) && (sg.ack.LessEq(c.iss) || c.sndNxt.LessThan(sg.ack)) {
		if !sg.has(tcpheader.RST) {
			c.sendReset(sg.ack, 0, false)
		}
		return
	}
	if sg.has(tcpheader.RST) {
		if sg.has(tcpheader.ACK) {
			ctr.AttemptFails++
			c.abort(ErrRefused)
		}
		return
	}
	if !sg.has(tcpheader.SYN) {
		return
	}
	c.irs = sg.seq
	c.rcvNxt = sg.seq.Add(1)
	c.rcvWup = c.rcvNxt
	c.applySynOptions(sg)
	if sg.has(tcpheader.ACK) {
		c.sndUna = sg.ack
		c.sndWnd = uint32(sg.wnd) << c.sndWscale
		c.maxSndWnd = c.sndWnd
		c.sndWl1, c.sndWl2 = sg.seq, sg.ack
		if !c.rttTiming || c.backoffs == 0 {
			c.est.Sample(sg.now - c.rttAt)
		}
		c.toEstablished(sg.now)
		c.ackNow = true
		c.output(sg.now)
		c.sendAckIfDue(sg.now)
		return
	}
	// Simultaneous open: answer with our SYN and an ACK of theirs.
	c.state = SynReceived
	c.sndWnd = uint32(sg.wnd) // unscaled on a SYN
	c.sndWl1, c.sndWl2 = sg.seq, c.sndUna
	c.sendSynAck()
}

// applySynOptions takes the options of the peer's SYN (or SYN-ACK).
func (c *Conn) applySynOptions(sg *segment) {
	o := &sg.opts
	c.peerMSS = sack.DefaultMSS
	if o.Has(tcpheader.HasMSS) && o.MSS > 0 {
		c.peerMSS = int(o.MSS)
	}
	if o.Has(tcpheader.HasWScale) {
		c.wsOK, c.sndWscale = true, min(o.WScale, 14)
	} else {
		c.wsOK, c.sndWscale, c.rcvWscale = false, 0, 0
	}
	if o.Has(tcpheader.HasTimestamps) && !c.t.cfg.NoTimestamps {
		c.tsOK = true
		c.tsRecent, c.tsRecentAt = o.TSval, sg.now
	} else {
		c.tsOK = false
	}
	c.sackOK = o.Has(tcpheader.HasSACKPermitted) && !c.t.cfg.NoSACK
}

// established completes a passive open on the handshake's final ACK.
func (c *Conn) established(sg *segment) {
	c.sndWnd = sndWindow(sg, c.sndWscale)
	c.maxSndWnd = c.sndWnd
	c.sndWl1, c.sndWl2 = sg.seq, sg.ack
	if c.backoffs == 0 {
		c.est.Sample(sg.now - c.rttAt)
	}
	c.sndUna = sg.ack
	c.toEstablished(sg.now)
	if c.parent != nil {
		c.parent.enqueue(c)
	}
}

// toEstablished sets up the data path once both SYNs are acknowledged.
func (c *Conn) toEstablished(now int64) {
	c.state = Established
	c.countedEstab = true
	c.backoffs = 0
	c.cancelRTX()
	c.smss = c.mssFor()
	c.rcvMss = 0
	c.rcvMss = c.rcvMSS()
	c.cc.Init(c.smss)
	c.sb.Init(c.smss, c.iss.Add(1))
	c.lastRecv, c.lastSend = now, now
	c.rcvSpaceAt, c.rcvSpace = now, min(c.rcvBuf, 10*c.smss)
	c.updateSndBuf()
	c.armKeepalive(now)
	c.setStatus(stEstablished)
	c.wake(socket.Writable)
}

// mssFor is the sender's MSS: the peer's, bounded by our path, less the
// options every segment carries.
func (c *Conn) mssFor() int {
	m := min(c.peerMSS, c.pathMSS())
	if c.tsOK {
		m -= tsOptLen
	}
	return max(m, 64)
}

// pathMSS is the MSS our route allows.
func (c *Conn) pathMSS() int {
	_, mtu, ok := c.t.host.Route(c.tuple.Remote)
	if !ok {
		mtu = 576
	}
	return min(mtu, 65535) - 40
}

// processAck is the fifth step's ACK processing for a synchronized
// connection (tcp_ack).
func (c *Conn) processAck(sg *segment) {
	ctr := c.sh.Counters()
	now := sg.now
	ack := sg.ack
	c.probes = 0 // any acceptable ACK shows the peer alive (tcp_ack)
	// The window (RFC 9293 3.10.7.4, SND.WL1 and SND.WL2).
	if c.sndWl1.LessThan(sg.seq) || (c.sndWl1 == sg.seq && c.sndWl2.LessEq(ack)) {
		w := sndWindow(sg, c.sndWscale)
		if w > 0 && c.sndWnd == 0 && c.rtxWhat == rtxPersist {
			c.cancelRTX()
			c.backoffs = 0
		}
		c.sndWnd = w
		c.maxSndWnd = max(c.maxSndWnd, w)
		c.sndWl1, c.sndWl2 = sg.seq, ack
	}
	if c.sndUna.LessThan(ack) {
		acked := int(ack.Sub(c.sndUna))
		c.rttSampleOnAck(sg, ack)
		c.sndUna = ack
		dataEnd := c.sndq.Nxt()
		if dataEnd.LessThan(ack) {
			c.sndq.Ack(dataEnd)
		} else {
			c.sndq.Ack(ack)
		}
		res := c.sb.Ack(ack, now)
		if res.ExitedRecovery {
			c.cc.OnRecoveryExit()
		}
		if res.Reneging {
			ctr.TCPSACKReneging++
		}
		if !c.sb.InRecovery() {
			c.cc.OnAck(acked, c.est.SRTT(), now)
		}
		c.backoffs, c.probes = 0, 0
		if c.finSent && ack == c.sndNxt {
			c.finAcked = true
		}
		c.updateSndBuf()
		c.publishSpace()
		c.armRTXAfterAck(now)
	}
	if c.sackOK && sg.opts.NumSACK > 0 {
		var blocks [sack.MaxBlocks]sack.Block
		nb := int(min(sg.opts.NumSACK, sack.MaxBlocks))
		for i := range nb {
			blocks[i] = sack.Block{Start: seq.Value(sg.opts.SACK[i].Left), End: seq.Value(sg.opts.SACK[i].Right)}
		}
		if _, dsack := c.sb.SACK(blocks[:nb], now); dsack {
			ctr.TCPDSACKRecv++
		}
	}
	if c.sb.Segments() > 0 {
		_, wait := c.sb.DetectLoss(now, c.minRTT, c.est.SRTT())
		if c.sb.ShouldEnterRecovery() {
			c.sb.EnterRecovery()
			c.cc.OnLoss(int(c.sndNxt.Sub(c.sndUna)))
			if c.sackOK {
				ctr.TCPSackRecovery++
			} else {
				ctr.TCPRenoRecovery++
			}
		}
		if wait > 0 && c.rtxWhat != rtxRTO {
			c.armRTX(rtxRACK, now+wait)
		}
	}
	// FIN acknowledged: the closing states move on.
	if c.finAcked {
		switch c.state {
		case FinWait1:
			c.state = FinWait2
			c.cancelRTX()
			if c.orphan {
				c.armFinWait2(now)
			}
		case Closing:
			c.enterTimeWait(now)
		case LastAck:
			c.finish()
		}
	}
}

// sndWindow is the peer's window a segment offers: a SYN's is never
// scaled (RFC 7323 2.2).
func sndWindow(sg *segment, shift uint8) uint32 {
	if sg.has(tcpheader.SYN) {
		return uint32(sg.wnd)
	}
	return uint32(sg.wnd) << shift
}

// rttSampleOnAck measures the RTT from an ACK that advanced SND.UNA:
// from its echoed timestamp, or from the one segment timed (Karn's
// algorithm: never a retransmitted one).
func (c *Conn) rttSampleOnAck(sg *segment, ack seq.Value) {
	var r int64
	if _, ecr, ok := sg.ts(); ok && c.tsOK && ecr != 0 {
		d := int64(c.tsNow(sg.now) - ecr)
		if d >= 0 && d < 1<<20 {
			r = max(d*int64(tsTick), 1)
		}
	} else if c.rttTiming && c.rttSeq.LessThan(ack) {
		r = sg.now - c.rttAt
		c.rttTiming = false
	}
	if r > 0 && c.backoffs == 0 {
		c.est.Sample(r)
		if c.minRTT == 0 || r < c.minRTT {
			c.minRTT = r
		}
	}
}

// receiveData queues a segment's payload (tcp_data_queue).
func (c *Conn) receiveData(sg *segment) {
	ctr := c.sh.Counters()
	s, off, n := sg.seq, sg.off, sg.n
	if sg.has(tcpheader.SYN) {
		s = s.Add(1)
	}
	if s.LessThan(c.rcvNxt) {
		d := int(c.rcvNxt.Sub(s))
		if d >= n {
			c.setDSACK(s, s.Add(seq.Size(n)))
			c.ackNow = true
			return
		}
		c.setDSACK(s, c.rcvNxt)
		off, n, s = off+d, n-d, c.rcvNxt
	}
	right := c.rcvNxt.Add(seq.Size(c.rcvWindow()))
	if right.LessEq(s) {
		ctr.TCPZeroWindowDrop++
		c.ackNow = true
		return
	}
	if right.LessThan(s.Add(seq.Size(n))) {
		n = int(right.Sub(s))
		sg.flags &^= tcpheader.FIN
	}
	if c.lastData != 0 && sg.now-c.lastData > max(c.est.RTO(), c.ato) {
		// The peer was idle: it is probably in slow start again, so ACK
		// every segment for a while (tcp_event_data_recv's quick-ack).
		c.quickAcks = quickAckSegments
	}
	c.lastData = sg.now
	if s != c.rcvNxt {
		// Out of order: held, and SACKed at once.
		if !c.t.mem.charge(segsOf(sg.m)) {
			ctr.TCPOFODrop++
			c.ackNow = true
			return
		}
		c.t.mem.uncharge(segsOf(sg.m)) // the queue accounts its own
		if err := c.ofo.Insert(s, sg.m, off, n); err != nil {
			if err == ofo.ErrDuplicate {
				c.takeDSACK()
			} else {
				ctr.TCPOFODrop++
			}
		} else {
			ctr.TCPOFOQueue++
		}
		sg.m = engine.NoMbuf
		c.ackNow = true
		return
	}
	segs := segsOf(sg.m)
	if c.rcvMbufs+segs > c.rcvMbufLimit() || !c.t.mem.charge(segs) {
		// Tiny segments pin more buffers than their bytes show: the
		// queue is full of overhead (tcp_prune_queue gives up).
		ctr.TCPRcvQDrop++
		c.ackNow, c.rcvNoMem = true, true
		return
	}
	c.queueRecv(ofo.Entry{Seq: s, Len: uint32(n), Off: uint32(off), Mbuf: sg.m}, segs)
	sg.m = engine.NoMbuf
	if !c.ofo.Empty() {
		var buf [16]ofo.Entry
		for {
			got, nxt := c.ofo.Take(c.rcvNxt, buf[:0])
			for _, e := range got {
				segs := segsOf(e.Mbuf)
				c.t.mem.charge(segs) // already bounded by the ofo queue: never refused here
				c.queueRecv(e, segs)
			}
			c.rcvNxt = nxt
			if len(got) < len(buf) {
				break
			}
		}
		c.ackNow = true // a hole filled: tell the sender now
	}
	c.ackPending++
	c.wake(socket.Readable)
}

// rcvMbufLimit bounds the mbufs the receive queue pins: twice the buffer,
// as Linux lets truesize reach twice the data, and a few for tiny segments.
func (c *Conn) rcvMbufLimit() int { return 2*c.rcvBuf/engine.BufSize + 8 }

// queueRecv appends an in-order entry to the receive queue.
func (c *Conn) queueRecv(e ofo.Entry, segs int) {
	c.rcvQ = append(c.rcvQ, e)
	c.rcvQueued += int(e.Len)
	c.rcvMbufs += segs
	c.rcvNxt = e.Seq.Add(seq.Size(e.Len))
	c.avail.Add(int64(e.Len))
}

// rcvMSS is the payload of a full segment from the peer, as far as we can
// tell (icsk_ack.rcv_mss): worked out once the connection is established,
// not by a route lookup per segment.
func (c *Conn) rcvMSS() int {
	if c.rcvMss > 0 {
		return c.rcvMss
	}
	m := c.pathMSS()
	if c.tsOK {
		m -= tsOptLen
	}
	return m
}

// segsOf is the number of mbufs a packet pins.
func segsOf(m engine.Mbuf) int { return max(m.Segs(), 1) }

// setDSACK records a duplicate range to report in the next ACK (RFC 2883).
func (c *Conn) setDSACK(s, e seq.Value) {
	if c.sackOK {
		c.dsack, c.hasDSACK = ofo.Block{Left: uint32(s), Right: uint32(e)}, true
	}
}

// takeDSACK takes the queue's pending D-SACK.
func (c *Conn) takeDSACK() {
	if b, ok := c.ofo.DSACK(); ok && c.sackOK {
		c.dsack, c.hasDSACK = b, true
	}
}

// receiveFin takes the peer's FIN (tcp_fin).
func (c *Conn) receiveFin(now int64) {
	c.rcvNxt = c.rcvNxt.Add(1)
	c.rcvFin = true
	c.ackNow = true
	c.setStatus(stEOF)
	c.wake(socket.Readable | socket.ReadHangup)
	switch c.state {
	case SynReceived, Established:
		c.state = CloseWait
	case FinWait1:
		if c.finAcked {
			c.enterTimeWait(now)
		} else {
			c.state = Closing
		}
	case FinWait2:
		c.enterTimeWait(now)
	}
}

// resetByPeer takes an acceptable RST.
func (c *Conn) resetByPeer() {
	ctr := c.sh.Counters()
	switch c.state {
	case SynReceived:
		if !c.passive {
			ctr.AttemptFails++
			c.abort(ErrRefused)
			return
		}
		ctr.AttemptFails++
	case Established, CloseWait:
		ctr.EstabResets++
	}
	if c.state == CloseWait || c.state == Closing || c.state == LastAck {
		c.abort(ErrPipe)
		return
	}
	c.abort(ErrReset)
}

// challengeACK answers a suspicious RST, SYN or ACK with an ACK that tells
// a real peer where we are (RFC 5961), within the limits.
func (c *Conn) challengeACK(now int64) {
	ctr := c.sh.Counters()
	var cc challenge.Counters
	if !challenge.Allow(&c.chal, &c.t.challenge, &cc, now) {
		ctr.TCPACKSkippedChallenge += cc.ACKSkippedChallenge
		return
	}
	ctr.TCPChallengeACK++
	c.sendAck(now)
}

// dupAck answers an unacceptable segment with an ACK, at most twice a
// second (tcp_invalid_ratelimit), so two hosts cannot ping-pong ACKs.
func (c *Conn) dupAck(now int64) {
	if now-c.lastInvalidAck < challenge.InvalidRateLimit && c.lastInvalidAck != 0 {
		c.sh.Counters().TCPACKSkippedSeq++
		return
	}
	c.lastInvalidAck = now
	c.sendAck(now)
}
