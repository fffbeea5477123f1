package tcp

import (
	"github.com/pollnet/pollnet/engine"
	tcpheader "github.com/pollnet/pollnet/stack/header/tcp"
	"github.com/pollnet/pollnet/stack/network/route"
	"github.com/pollnet/pollnet/stack/transport/tcp/ofo"
	"github.com/pollnet/pollnet/stack/transport/tcp/sack"
	"github.com/pollnet/pollnet/stack/transport/tcp/seq"
)

// tsTick is the timestamp clock's period: 1 ms, as Linux's TCP_TS_HZ.
const tsTick = 1_000_000

// tsNow is our TSval at now.
func (c *Conn) tsNow(now int64) uint32 { return uint32(now/tsTick) + c.tsOffset }

// control is what a segment without a connection needs: the tuple, the
// route cache, the timestamps to echo.
type control struct {
	tu           Tuple
	rc           *route.Cache
	seq, ack     seq.Value
	flags        tcpheader.Flags
	wnd          uint16
	ts           bool
	tsval, tsecr uint32
}

// sendControl sends a segment without payload that no connection owns:
// a RST, or an ACK from TIME-WAIT or for a SYN cookie.
func (ts *tableShard) sendControl(k control) {
	m, err := ts.host.Caches().Alloc(ts.host.Pool())
	if err != nil {
		return
	}
	var o tcpheader.Options
	if k.ts {
		o.Present |= tcpheader.HasTimestamps
		o.TSval, o.TSecr = k.tsval, k.tsecr
	}
	ts.finish(m, k.tu, k.rc, ts.ctlID(k.tu), k.seq, k.ack, k.flags, k.wnd, &o)
}

// finish puts the header on m (whose data is the payload, headroom in
// front) and sends it with IPv4 ID id; the stack fills the checksum, or
// has the port fill it.
func (ts *tableShard) finish(m engine.Mbuf, tu Tuple, rc *route.Cache, id uint16, s, a seq.Value,
	flags tcpheader.Flags, wnd uint16, o *tcpheader.Options) {
	var ob [tcpheader.MaxOptionsLen]byte
	on, _ := o.Put(ob[:])
	hl := tcpheader.HeaderLen + on
	b, err := m.Prepend(hl)
	if err != nil {
		ts.host.Caches().Free(m)
		return
	}
	h := tcpheader.Header{SrcPort: tu.LocalPort, DstPort: tu.RemotePort, Seq: uint32(s), Ack: uint32(a),
		DataOff: uint8(hl), Flags: flags, Window: wnd}
	if flags&tcpheader.ACK == 0 {
		h.Ack = 0
	}
	h.Put(b, ob[:on])
	ctr := ts.host.Counters()
	ctr.OutSegs++
	if flags&tcpheader.RST != 0 {
		ctr.OutRsts++
	}
	ts.host.Output(rc, tu.Local, tu.Remote, id, m)
}

// ctlID is the IPv4 ID of a segment no connection sends: a RST, an ACK
// from TIME-WAIT. Like every segment, it leaves with Don't Fragment, so the
// ID only has to differ from its neighbours' (RFC 6864 4.1).
func (ts *tableShard) ctlID(tu Tuple) uint16 {
	ts.ids++
	return uint16(ts.t.key.Hash2(uint64(be32(tu.Remote))<<16|uint64(tu.RemotePort), uint64(ts.ids)))
}

// emit sends m from c with the options and window of the moment; every
// segment but a RST acknowledges, and so cancels a pending delayed ACK.
func (c *Conn) emit(m engine.Mbuf, s seq.Value, flags tcpheader.Flags, now int64) {
	var o tcpheader.Options
	syn := flags&tcpheader.SYN != 0
	if syn {
		o.Present |= tcpheader.HasMSS
		o.MSS = uint16(c.pathMSS())
		if c.state == SynSent || c.wsOK {
			o.Present |= tcpheader.HasWScale
			o.WScale = c.rcvWscale
		}
		if (c.state == SynSent && !c.t.cfg.NoSACK) || c.sackOK {
			o.Present |= tcpheader.HasSACKPermitted
		}
	}
	if (syn && c.state == SynSent && !c.t.cfg.NoTimestamps) || c.tsOK {
		o.Present |= tcpheader.HasTimestamps
		o.TSval = c.tsNow(now)
		if c.state != SynSent {
			o.TSecr = c.tsRecent
		}
	}
	if c.sackOK && !syn && (c.hasDSACK || !c.ofo.Empty()) {
		room := sack.MaxBlocks
		if c.tsOK {
			room = 3
		}
		var blocks [sack.MaxBlocks]ofo.Block
		k := 0
		if c.hasDSACK {
			blocks[0], k = c.dsack, 1
			c.hasDSACK = false
		}
		bs := blocks[:k+len(c.ofo.SACKBlocks(blocks[k:k:room], c.rcvNxt))]
		for i, b := range bs {
			o.SACK[i] = b
		}
		if len(bs) > 0 {
			o.NumSACK = uint8(len(bs))
		}
	}
	var wnd uint16
	if syn {
		wnd = uint16(min(c.rcvBuf, 65535))
		c.rcvWnd, c.rcvWup = uint32(wnd), c.rcvNxt
	} else {
		wnd = c.selectWindow()
	}
	if flags&tcpheader.ACK != 0 {
		c.ackNow, c.ackPending = false, 0
		if c.dack.Armed() {
			c.sh.Wheel().Cancel(&c.dack)
			c.sh.Moved()
		}
	}
	c.ipID++
	c.t.shard(c.sh.ID()).finish(m, c.tuple, &c.rc, c.ipID, s, c.rcvNxt, flags, wnd, &o)
}

// selectWindow is the window to advertise now (tcp_select_window): the free
// receive buffer, never moving the right edge left, in the scaled unit,
// and not growing by less than an MSS (receiver silly-window avoidance).
func (c *Conn) selectWindow() uint16 {
	if c.rcvNoMem {
		// Data in the window was dropped for want of buffers: say so
		// with a zero window, shrinking it (ICSK_ACK_NOMEM).
		c.rcvNoMem = false
		c.rcvWnd, c.rcvWup = 0, c.rcvNxt
		c.sh.Counters().TCPWantZeroWindowAdv++
		return 0
	}
	cur := c.rcvWindow()
	free := max(c.rcvBuf-c.rcvQueued, 0)
	if c.t.mem.overLimit() || c.rcvMbufs >= c.rcvMbufLimit() {
		free = 0 // the buffers are full, whatever the bytes
	}
	w := uint32(free)
	if w < cur {
		w = cur // never shrink what was offered
	} else if w-cur < uint32(min(c.rcvMSS(), c.rcvBuf/2)) && cur > 0 {
		w = cur
	}
	w = min(w, 65535<<c.rcvWscale)
	w = w >> c.rcvWscale << c.rcvWscale
	if w < cur {
		w += 1 << c.rcvWscale // rounding must not shrink it either
	}
	c.rcvWnd, c.rcvWup = w, c.rcvNxt
	if w == 0 {
		c.sh.Counters().TCPWantZeroWindowAdv++
	}
	return uint16(w >> c.rcvWscale)
}

// curMSS is the payload a segment may carry now: the MSS less the room
// SACK blocks take while we report any (tcp_current_mss), so that no
// segment outgrows the path.
func (c *Conn) curMSS() int {
	if !c.sackOK || (!c.hasDSACK && c.ofo.Empty()) {
		return c.smss
	}
	if c.tsOK {
		return c.smss - (4 + 3*8)
	}
	return c.smss - (4 + 4*8)
}

// alloc takes an empty mbuf for a segment without payload.
func (c *Conn) alloc() (engine.Mbuf, bool) {
	m, err := c.sh.Caches().Alloc(c.sh.Pool())
	return m, err == nil
}

// sendAck sends a bare ACK now.
func (c *Conn) sendAck(now int64) {
	if m, ok := c.alloc(); ok {
		c.emit(m, c.sndNxt, tcpheader.ACK, now)
	}
}

// sendProbe sends an ACK with an old sequence number, which the peer must
// answer with an ACK: a keepalive or a zero-window probe (tcp_xmit_probe_skb).
func (c *Conn) sendProbe(now int64) {
	if m, ok := c.alloc(); ok {
		c.emit(m, back(c.sndUna, 1), tcpheader.ACK, now)
	}
}

// sendSyn sends (or resends) our SYN.
func (c *Conn) sendSyn(now int64) {
	if m, ok := c.alloc(); ok {
		c.rttAt = now
		c.emit(m, c.iss, tcpheader.SYN, now)
	}
	c.sndNxt = c.iss.Add(1)
}

// sendSynAck sends (or resends) our SYN-ACK.
func (c *Conn) sendSynAck() {
	now := c.sh.Now()
	if m, ok := c.alloc(); ok {
		c.rttAt = now
		c.emit(m, c.iss, tcpheader.SYN|tcpheader.ACK, now)
	}
	c.sndNxt = c.iss.Add(1)
	if !c.rtx.Armed() {
		c.armRTX(rtxRTO, now+c.est.RTO())
	}
}

// sendReset sends a RST from c's tuple with sequence number s (and, with
// withAck, acknowledging a).
func (c *Conn) sendReset(s, a seq.Value, withAck bool) {
	k := control{tu: c.tuple, rc: &c.rc, seq: s, ack: a, flags: tcpheader.RST}
	if withAck {
		k.flags |= tcpheader.ACK
	}
	c.t.shard(c.sh.ID()).sendControl(k)
}

// sendAckIfDue sends the ACK the segments received call for, or leaves it
// to the delayed-ACK timer (__tcp_ack_snd_check).
func (c *Conn) sendAckIfDue(now int64) {
	if !c.ackNow && c.ackPending == 0 {
		return
	}
	if c.ackNow || c.ackPending >= 2 || c.quickAcks > 0 || c.hasDSACK {
		if c.quickAcks > 0 && !c.ackNow {
			c.quickAcks--
		}
		c.sendAck(now)
		return
	}
	if !c.dack.Armed() {
		c.sh.Wheel().Arm(&c.dack, now+c.ato)
		c.sh.Moved()
	}
}

// output sends what the windows allow (tcp_write_xmit): retransmissions
// the scoreboard picks first, then new data, then the FIN.
func (c *Conn) output(now int64) {
	switch c.state {
	case Established, CloseWait, FinWait1, Closing, LastAck:
	default:
		return
	}
	sent := false
	for i := 0; i < 1024; i++ {
		cwnd := c.cc.Cwnd()
		pipe := int(c.sb.Pipe())
		if cwnd-pipe < c.smss && !(pipe == 0 && cwnd > 0) {
			break
		}
		dataEnd := c.sndq.Nxt()
		unsent := 0
		if !c.finSent {
			unsent = int(dataEnd.Sub(c.sndNxt))
		}
		wndEnd := c.sndUna.Add(seq.Size(c.sndWnd))
		room := int(int32(wndEnd.Sub(c.sndNxt)))
		haveNew := unsent > 0 && room > 0
		start, end, kind := c.sb.NextSeg(haveNew)
		if kind == sack.Nothing {
			break
		}
		if kind == sack.NewData {
			n := min(unsent, c.smss, room)
			if n < c.smss && n < unsent && room < c.smss && room < int(c.maxSndWnd/2) {
				break // sender silly-window avoidance: wait for a bigger window
			}
			if n < c.smss && n == unsent && !c.nodelay && c.sndNxt != c.sndUna && !c.finQueued {
				break // Nagle: one small segment in flight at a time
			}
			if !c.transmit(c.sndNxt, c.sndNxt.Add(seq.Size(n)), false, now) {
				break
			}
		} else {
			if end.Sub(start) > seq.Size(c.smss) {
				end = start.Add(seq.Size(c.smss))
			}
			if !c.transmit(start, end, true, now) {
				break
			}
			if kind == sack.Rescue || c.sb.InRecovery() {
				c.sh.Counters().TCPFastRetrans++
			}
		}
		sent = true
	}
	// The FIN goes once every byte before it has.
	if c.finQueued && !c.finSent && c.sndNxt == c.sndq.Nxt() {
		if c.transmit(c.sndNxt, c.sndNxt.Add(1), false, now) {
			sent = true
		}
	}
	if sent || c.sndUna != c.sndNxt {
		c.armRTXAfterSend(now)
	}
	c.maybePersist(now)
}

// transmit sends [start, end) of the sequence space, the FIN included if
// end passes the data; retransmit says it was sent before.
func (c *Conn) transmit(start, end seq.Value, retransmit bool, now int64) bool {
	ctr := c.sh.Counters()
	dataEnd := c.sndq.Nxt()
	fin := false
	dEnd := end
	if dataEnd.LessThan(end) {
		dEnd, fin = dataEnd, true
	}
	n := 0
	if start.LessThan(dEnd) {
		n = int(dEnd.Sub(start))
	}
	if cur := c.curMSS(); n > cur {
		n, fin = cur, false
		end = start.Add(seq.Size(n))
	}
	var m engine.Mbuf
	if n > 0 {
		var err error
		var got int
		m, got, err = c.sndq.Segment(start, n, c.sh.Caches())
		if err != nil {
			return false
		}
		if got < n {
			n, fin = got, false
		}
	} else {
		var ok bool
		if m, ok = c.alloc(); !ok {
			return false
		}
	}
	flags := tcpheader.ACK
	if fin {
		flags |= tcpheader.FIN
	}
	if n > 0 && start.Add(seq.Size(n)) == dataEnd {
		flags |= tcpheader.PSH
	}
	segEnd := start.Add(seq.Size(n))
	if fin {
		segEnd = segEnd.Add(1)
	}
	if err := c.sb.Sent(start, segEnd, now, retransmit); err != nil {
		engine.Free(m)
		return false
	}
	if retransmit {
		ctr.RetransSegs++
		if c.rttTiming && start.LessEq(c.rttSeq) {
			c.rttTiming = false // Karn: no sample from a repeated segment
		}
	} else {
		c.lastSeg = start
		c.sndNxt = segEnd
		if n > 0 {
			ctr.TCPOrigDataSent++
		}
		if !c.tsOK && !c.rttTiming {
			c.rttTiming, c.rttSeq, c.rttAt = true, start, now
		}
		if fin {
			c.finSent = true
		}
	}
	c.lastSend = now
	c.emit(m, start, flags, now)
	return true
}
