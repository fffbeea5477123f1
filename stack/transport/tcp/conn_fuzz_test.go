package tcp

import (
	"encoding/binary"
	"testing"
	"time"

	tcpheader "github.com/pollnet/pollnet/stack/header/tcp"
	"github.com/pollnet/pollnet/stack/transport/tcp/seq"
)

// fuzzInput hands out the fuzz input's bytes, zeros once it runs out.
type fuzzInput struct{ b []byte }

func (f *fuzzInput) u8() byte {
	if len(f.b) == 0 {
		return 0
	}
	v := f.b[0]
	f.b = f.b[1:]
	return v
}
func (f *fuzzInput) u16() uint16 { return uint16(f.u8())<<8 | uint16(f.u8()) }
func (f *fuzzInput) u32() uint32 { return uint32(f.u16())<<16 | uint32(f.u16()) }

// near is a sequence number around base: mostly close to it, so that the
// connection accepts the segment, sometimes anywhere.
func (f *fuzzInput) near(base uint32) uint32 {
	switch m := f.u8(); m % 4 {
	case 0:
		return base
	case 1:
		return base + uint32(int32(int8(f.u8())))
	case 2:
		return base + uint32(int32(int16(f.u16())))
	default:
		return f.u32()
	}
}

// FuzzConnectionSegments feeds an established connection and a listener
// arbitrary segments, timer advances and application calls decoded from the
// input: nothing may panic, the connection's invariants hold after every
// step, and once everything is closed every mbuf is back in the pool.
func FuzzConnectionSegments(f *testing.F) {
	f.Add([]byte{})
	// In-order data, a FIN, time passing.
	f.Add([]byte{0, 0x18, 0, 0, 0x02, 0, 0, 0, 10, 1, 0x11, 0, 0, 0x02, 0, 0, 0, 0, 5, 12})
	// A RST in the window, a SYN, an ACK of unsent data.
	f.Add([]byte{0, 0x04, 1, 5, 0, 0x02, 0, 0, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 2, 0, 0x7f, 0x02, 0, 0, 0})
	// A write, a zero window, the persist timer, a read, close.
	f.Add([]byte{6, 200, 0, 0x10, 0, 0, 0, 0, 0, 0, 5, 10, 5, 11, 7, 0, 7, 2, 5, 15})
	// A SYN to the listener, then its ACK.
	f.Add([]byte{4, 1, 0x02, 0, 0, 0xff, 0xff, 0x0f, 0, 4, 1, 0x10, 0, 1, 0x02, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		r, e, p, c := newEstablished(t, Config{TimeWait: 5 * time.Second}, Options{RecvBuffer: 16384})
		l := e.lns[0]
		fi := &fuzzInput{b: in}
		buf := make([]byte, 64<<10)
		for step := 0; len(fi.b) > 0 && step < 64; step++ {
			switch op := fi.u8(); op % 8 {
			case 0, 1, 2, 3:
				e.inject(fuzzSeg(fi, p, c, p.port))
			case 4:
				// Another peer port: a listener's SYN queue, SYN cookies, RSTs.
				port := 34000 + uint16(fi.u8()%4)
				e.inject(fuzzSeg(fi, p, c, port))
			case 5:
				r.advance(time.Millisecond << (fi.u8() % 17))
			case 6:
				n := int(fi.u8()) * 16
				if c.space.Load() >= int64(n) && c.status.Load()&(stWriteShut|stError) == 0 {
					c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
					c.Write(pattern(n, step))
				}
			case 7:
				switch fi.u8() % 4 {
				case 0, 1:
					if c.avail.Load() > 0 {
						c.Read(buf)
					}
				case 2:
					c.CloseWrite()
				case 3:
					c.Close()
				}
			}
			// The peer hears what we said to it.
			var ours []seg
			for _, s := range e.sent() {
				if s.dport == p.port {
					ours = append(ours, s)
				}
			}
			p.saw(ours)
			for l.ready() {
				e.accept(l)
			}
			for _, x := range e.conns {
				checkInvariants(t, x)
			}
		}
	})
}

// fuzzSeg decodes a segment from the peer at port: flags, sequence and
// acknowledgement numbers near the connection's, window, options, payload.
func fuzzSeg(fi *fuzzInput, p *peer, c *Conn, port uint16) seg {
	una, nxt, _ := seqs(c)
	s := p.seg(tcpheader.Flags(fi.u8()), nil)
	s.sport = port
	s.seq = fi.near(p.nxt)
	if fi.u8()&1 == 0 {
		s.ack = fi.near(nxt)
	} else {
		s.ack = fi.near(una)
	}
	s.wnd = fi.u16()
	opt := fi.u8()
	if opt&1 != 0 {
		s.opts.Present &^= tcpheader.HasTimestamps
	} else if opt&2 != 0 {
		s.opts.TSval = fi.near(s.opts.TSval)
	}
	if opt&4 != 0 {
		s.opts.Present |= tcpheader.HasMSS
		s.opts.MSS = fi.u16()
	}
	if opt&8 != 0 {
		s.opts.Present |= tcpheader.HasWScale
		s.opts.WScale = fi.u8() % 15
	}
	if opt&16 != 0 {
		s.opts.Present |= tcpheader.HasSACKPermitted
	}
	if nb := (opt >> 5) % 4; nb > 0 && !s.opts.Has(tcpheader.HasMSS|tcpheader.HasWScale) {
		for i := range nb {
			left := fi.near(una)
			s.opts.SACK[i] = tcpheader.SACKBlock{Left: left, Right: left + uint32(fi.u16())}
		}
		s.opts.NumSACK = nb
		if s.opts.Has(tcpheader.HasTimestamps) {
			s.opts.NumSACK = min(nb, 3)
		}
	}
	if s.opts.Len() > tcpheader.MaxOptionsLen {
		s.opts.NumSACK = 0
	}
	if n := int(fi.u8()) * 8; n > 0 {
		s.data = make([]byte, min(n, 1400))
		binary.BigEndian.PutUint32(s.data, s.seq)
	}
	return s
}

// checkInvariants checks what must hold of a connection between segments.
func checkInvariants(t *testing.T, c *Conn) {
	t.Helper()
	c.sh.Lock()
	defer c.sh.Unlock()
	if c.state == Closed || c.state == TimeWait || c.state == SynSent {
		return
	}
	if !c.sndUna.LessEq(c.sndNxt) {
		t.Fatalf("%v: SND.UNA %d after SND.NXT %d", c.state, c.sndUna, c.sndNxt)
	}
	if c.state != SynReceived && !c.sndNxt.LessEq(c.sndq.Nxt().Add(1)) {
		t.Fatalf("%v: SND.NXT %d past the data's end %d and a FIN", c.state, c.sndNxt, c.sndq.Nxt())
	}
	if c.sndq.Len() < 0 || c.sndq.Len() > c.t.cfg.WMem[2] {
		t.Fatalf("%v: %d bytes in the send queue, tcp_wmem max %d", c.state, c.sndq.Len(), c.t.cfg.WMem[2])
	}
	queued := 0
	for _, e := range c.rcvQ[c.rcvHead:] {
		queued += int(e.Len)
	}
	if queued != c.rcvQueued || c.rcvQueued < 0 || c.rcvMbufs < 0 {
		t.Fatalf("%v: receive queue holds %d bytes, counted %d (%d mbufs)", c.state, queued, c.rcvQueued, c.rcvMbufs)
	}
	if lim := max(c.rcvBuf, 65535) + 1<<c.rcvWscale; c.rcvQueued > lim {
		t.Fatalf("%v: %d bytes queued for a receive buffer of %d", c.state, c.rcvQueued, c.rcvBuf)
	}
	if c.rcvNxt.LessThan(c.rcvWup) || c.rcvWup.Add(seq.Size(c.rcvWnd)+1).LessThan(c.rcvNxt) { // +1: a FIN at the edge
		t.Fatalf("%v: RCV.NXT %d outside the advertised window [%d, +%d]", c.state, c.rcvNxt, c.rcvWup, c.rcvWnd)
	}
	if held := c.t.mem.held.Load(); held < 0 {
		t.Fatalf("tcp_mem account at %d", held)
	}
}
