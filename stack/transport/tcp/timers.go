package tcp

import (
	"github.com/pollnet/pollnet/stack/socket"
	"github.com/pollnet/pollnet/stack/transport/tcp/sack"
	"github.com/pollnet/pollnet/stack/transport/tcp/seq"
)

// maxProbeInterval bounds the backed-off zero-window probe interval
// (TCP_RTO_MAX).
const maxProbeInterval = int64(120e9)

// probeSlack is added to the tail-loss-probe timeout, as Linux's
// tcp_schedule_loss_probe adds TCP_TIMEOUT_MIN (2 jiffies).
const probeSlack = int64(2e6)

func (c *Conn) armRTX(k rtxKind, when int64) {
	c.rtxWhat = k
	c.sh.Wheel().Arm(&c.rtx, when)
	c.sh.Moved()
}

func (c *Conn) cancelRTX() {
	c.rtxWhat = rtxNone
	if c.rtx.Armed() {
		c.sh.Wheel().Cancel(&c.rtx)
		c.sh.Moved()
	}
}

// armRTXAfterAck restarts the retransmission timer on an ACK that
// advanced SND.UNA (RFC 6298 5.3), or stops it with nothing outstanding.
func (c *Conn) armRTXAfterAck(now int64) {
	if c.sndUna == c.sndNxt {
		c.cancelRTX()
		return
	}
	c.armProbeOrRTO(now)
}

// armRTXAfterSend arms the timer when a send leaves it unarmed (RFC 6298
// 5.1), preferring a tail loss probe while not in recovery.
func (c *Conn) armRTXAfterSend(now int64) {
	if c.sndUna == c.sndNxt || (c.rtx.Armed() && c.rtxWhat != rtxPersist) {
		return
	}
	c.armProbeOrRTO(now)
}

func (c *Conn) armProbeOrRTO(now int64) {
	rto := c.est.RTO()
	if c.sackOK && !c.sb.InRecovery() && c.backoffs == 0 && c.est.HasSample() {
		flight := int(c.sndNxt.Sub(c.sndUna))
		// Plus probeSlack: on a link of a few microseconds 2*SRTT is shorter
		// than a busy receiver takes to answer.
		pto := sack.ProbeTimeout(c.est.SRTT(), flight, c.smss, rto) + probeSlack
		if pto < rto {
			c.armRTX(rtxTLP, now+pto)
			return
		}
	}
	c.armRTX(rtxRTO, now+rto)
}

// maybePersist arms the zero-window probe when data waits and nothing is
// in flight to bring a window update (tcp_check_probe_timer): on a window of
// zero, or one too small for silly-window avoidance to send into.
func (c *Conn) maybePersist(now int64) {
	if c.sndUna != c.sndNxt || c.rtx.Armed() {
		return
	}
	if c.sndq.Nxt() == c.sndNxt && !(c.finQueued && !c.finSent) {
		return
	}
	c.armRTX(rtxPersist, now+min(c.est.RTO()<<min(c.backoffs, 20), maxProbeInterval))
}

// rtxFire is the retransmission timer (tcp_retransmit_timer and friends).
func (c *Conn) rtxFire(now int64) {
	k := c.rtxWhat
	c.rtxWhat = rtxNone
	c.sh.Moved()
	ctr := c.sh.Counters()
	switch k {
	case rtxRTO:
		c.retransmitTimeout(now)
	case rtxTLP:
		if c.sndUna == c.sndNxt {
			return
		}
		ctr.TCPLossProbes++
		// Probe with new data if there is any the window admits, else
		// with the last segment sent (RFC 8985 7.3).
		dataEnd := c.sndq.Nxt()
		wndEnd := c.sndUna.Add(seq.Size(c.sndWnd))
		sent := false
		if !c.finSent && c.sndNxt.LessThan(dataEnd) && c.sndNxt.LessThan(wndEnd) {
			n := min(int(dataEnd.Sub(c.sndNxt)), c.smss, int(wndEnd.Sub(c.sndNxt)))
			sent = c.transmit(c.sndNxt, c.sndNxt.Add(seq.Size(n)), false, now)
		}
		if !sent {
			start := c.lastSeg
			if start.LessThan(c.sndUna) {
				start = c.sndUna
			}
			c.transmit(start, c.sndNxt, true, now)
		}
		c.armRTX(rtxRTO, now+c.est.RTO())
	case rtxRACK:
		if c.sb.Segments() > 0 {
			_, wait := c.sb.DetectLoss(now, c.minRTT, c.est.SRTT())
			if c.sb.ShouldEnterRecovery() {
				c.sb.EnterRecovery()
				c.cc.OnLoss(int(c.sndNxt.Sub(c.sndUna)))
				ctr.TCPSackRecovery++
			}
			c.output(now)
			if wait > 0 {
				c.armRTX(rtxRACK, now+wait)
			} else if c.sndUna != c.sndNxt && !c.rtx.Armed() {
				c.armRTX(rtxRTO, now+c.est.RTO())
			}
		}
	case rtxPersist:
		if c.sndWnd != 0 {
			// Send what the small window takes (tcp_write_wakeup).
			room := int(int32(c.sndUna.Add(seq.Size(c.sndWnd)).Sub(c.sndNxt)))
			if n := min(int(c.sndq.Nxt().Sub(c.sndNxt)), c.smss, room); n > 0 && !c.finSent {
				c.transmit(c.sndNxt, c.sndNxt.Add(seq.Size(n)), false, now)
			}
			c.output(now)
			return
		}
		c.backoffs++
		c.sendProbe(now)
		c.armRTX(rtxPersist, now+min(c.est.RTO()<<min(c.backoffs, 20), maxProbeInterval))
	}
	c.sendAckIfDue(now)
}

// retransmitTimeout handles an RTO: the SYN or SYN-ACK again, or every
// unacknowledged segment deemed lost and the window back to one segment.
func (c *Conn) retransmitTimeout(now int64) {
	ctr := c.sh.Counters()
	switch c.state {
	case SynSent:
		if c.backoffs >= c.t.cfg.SynRetries {
			ctr.AttemptFails++
			c.abort(ErrTimedOut)
			return
		}
		c.backoffs++
		c.est.Backoff()
		c.sendSyn(now)
		ctr.RetransSegs++
		c.armRTX(rtxRTO, now+c.est.RTO())
		return
	case SynReceived:
		if c.backoffs >= c.t.cfg.SynackRetries {
			ctr.AttemptFails++
			c.abort(ErrTimedOut)
			return
		}
		c.backoffs++
		c.est.Backoff()
		ctr.RetransSegs++
		c.armRTX(rtxRTO, now+c.est.RTO())
		c.sendSynAck()
		return
	}
	if c.sndUna == c.sndNxt {
		return
	}
	if c.backoffs >= c.t.cfg.Retries2 {
		ctr.TCPAbortOnTimeout++
		c.sendReset(c.sndNxt, 0, false)
		c.abort(ErrTimedOut)
		return
	}
	ctr.TCPTimeouts++
	c.backoffs++
	c.est.Backoff()
	if c.backoffs == 1 {
		c.est.AfterSYNTimeout()
	}
	c.cc.OnTimeout(int(c.sndNxt.Sub(c.sndUna)))
	// A SACKed head that is still unacknowledged means the peer reneged:
	// keeping its mark would resend everything but the hole the peer
	// waits for, at every timeout (RFC 2018 section 8).
	c.sb.Timeout(c.sb.Reneging())
	c.rttTiming = false
	c.armRTX(rtxRTO, now+c.est.RTO())
	c.output(now)
}

// dackFire sends the delayed ACK (tcp_delack_timer).
func (c *Conn) dackFire(now int64) {
	c.sh.Moved()
	if c.ackPending > 0 || c.ackNow {
		c.sh.Counters().DelayedACKs++
		c.sendAck(now)
	}
}

// armKeepalive (re)arms the keepalive timer from the last segment heard.
func (c *Conn) armKeepalive(now int64) {
	if !c.kaOn || !(c.state == Established || c.state == CloseWait) {
		return
	}
	c.sh.Wheel().Arm(&c.keepalive, max(c.lastRecv+c.kaIdle, now+1))
	c.sh.Moved()
}

// armFinWait2 limits an orphan's wait for the peer's FIN (tcp_fin_timeout).
func (c *Conn) armFinWait2(now int64) {
	c.sh.Wheel().Arm(&c.keepalive, now+int64(c.t.cfg.FinTimeout))
	c.sh.Moved()
}

// keepaliveFire probes an idle peer (tcp_keepalive_timer), or ends an
// orphan's FIN-WAIT-2.
func (c *Conn) keepaliveFire(now int64) {
	c.sh.Moved()
	if c.state == FinWait2 && c.orphan {
		c.finish()
		return
	}
	if !c.kaOn || !(c.state == Established || c.state == CloseWait) {
		return
	}
	idle := now - c.lastRecv
	if idle < c.kaIdle {
		c.probes = 0
		c.armKeepalive(now)
		return
	}
	if c.probes >= c.kaProbes {
		c.sh.Counters().TCPAbortOnTimeout++
		c.sendReset(c.sndNxt, 0, false)
		c.abort(ErrTimedOut)
		return
	}
	c.probes++
	c.sh.Counters().TCPKeepAlive++
	c.sendProbe(now)
	c.sh.Wheel().Arm(&c.keepalive, now+c.kaIntvl)
	c.sh.Moved()
}

// updateSndBuf grows the send buffer with the congestion window
// (tcp_sndbuf_expand), unless the application set it.
func (c *Conn) updateSndBuf() {
	if c.sndBufSet || c.t.mem.pressure() {
		return
	}
	want := clamp(2*max(c.cc.Cwnd(), int(c.sndWnd)), c.t.cfg.WMem[1], c.t.cfg.WMem[2])
	if want > c.sndq.Space()+c.sndq.Len() {
		c.sndq.SetLimit(want)
	}
}

// enterTimeWait moves the connection to TIME-WAIT: its place in the
// table goes to a small entry that answers for the tuple for 2 MSL.
func (c *Conn) enterTimeWait(now int64) {
	ts := c.t.shard(c.sh.ID())
	c.state = TimeWait
	ts.addTimeWait(c, now)
	c.release(false)
	c.setStatus(stDone)
	c.wake(socket.Hangup | socket.Readable | socket.Writable)
}

// finish ends a connection that closed cleanly (LAST-ACK acknowledged,
// an orphan's timeout).
func (c *Conn) finish() {
	c.state = Closed
	c.release(false)
	c.setStatus(stDone | stWriteShut)
	c.wake(socket.Hangup | socket.Readable | socket.Writable)
}

// abort ends the connection with err (tcp_done after tcp_reset, or a
// timeout): readers and writers see err.
func (c *Conn) abort(err error) {
	if c.state == Closed && c.err != nil {
		return
	}
	c.state = Closed
	if c.err == nil {
		c.err = err
		c.errOnce.Store(&err)
	}
	c.release(c.orphan)
	c.setStatus(stDone | stError | stWriteShut)
	c.wake(socket.Hangup | socket.Error | socket.Readable | socket.Writable)
}

// release takes the connection out of the table and frees what the
// protocol holds: timers, queues (the receive queue too when nobody will
// read it), its place in a listener.
func (c *Conn) release(purgeRecv bool) {
	ts := c.t.shard(c.sh.ID())
	if ts.conns[c.tuple] == c {
		delete(ts.conns, c.tuple)
	}
	c.countedEstab = false
	c.cancelRTX()
	w := c.sh.Wheel()
	if c.dack.Armed() {
		w.Cancel(&c.dack)
	}
	if c.keepalive.Armed() {
		w.Cancel(&c.keepalive)
	}
	c.sh.Moved()
	c.sndq.Purge()
	c.ofo.Purge()
	if purgeRecv {
		c.purgeRecv()
	}
	if c.parent != nil {
		c.parent.forget(c)
	}
}

// purgeRecv frees the receive queue.
func (c *Conn) purgeRecv() {
	for _, e := range c.rcvQ[c.rcvHead:] {
		c.t.mem.uncharge(segsOf(e.Mbuf))
		c.sh.Caches().Free(e.Mbuf)
	}
	c.rcvQ, c.rcvHead = c.rcvQ[:0], 0
	c.rcvQueued, c.rcvMbufs = 0, 0
	c.avail.Store(0)
}
