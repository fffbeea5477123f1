package udp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/header/ipv4"
	udpheader "github.com/pollnet/pollnet/stack/header/udp"
	"github.com/pollnet/pollnet/stack/network/route"
	"github.com/pollnet/pollnet/stack/socket"
)

// header is what a socket's datagrams share, worked out once at open: its
// port and, once connected, the whole path to its peer, down to the
// checksum over the pseudo-header and both ports.
type header struct {
	sport uint16
	path  path // valid when connected
}

// path is where a send goes: addresses, destination port, the checksum's
// start (the pseudo-header without its length, folded), the
// shard to send through, and the route cache to use (a connected socket's
// own, for its peer; else none).
type path struct {
	src, dst [4]byte
	dport    uint16
	sum      uint32
	shard    int
	rc       *route.Cache
}

// template works out the header at open.
func (c *Conn) template() header {
	h := header{sport: c.laddr.Port()}
	if c.raddr.IsValid() {
		h.path = c.pathFrom(c.laddr.Addr().As4(), c.raddr.Addr().As4(), c.raddr.Port())
		h.path.rc = &c.rc
	}
	return h
}

// pathFrom is the path of a send from src to dst:dport.
func (c *Conn) pathFrom(src, dst [4]byte, dport uint16) path {
	sport := c.laddr.Port()
	shard := c.shard
	if shard < 0 {
		shard = 0
		if c.shards > 1 {
			shard = c.st.ShardOf(dst, src, dport, sport) // where the replies land
		}
	}
	sum := ipv4.PseudoSum(src, dst, ipv4.ProtoUDP, 0)
	return path{src: src, dst: dst, dport: dport, sum: sum, shard: shard}
}

// pathTo is the path of a send to addr: the connected path when addr is
// the peer, else one worked out now, with the source address of the route
// when the socket is bound to every address (the route lookup of
// udp_sendmsg).
func (c *Conn) pathTo(addr netip.AddrPort) (path, error) {
	if c.raddr.IsValid() && addr == c.raddr {
		return c.tmpl.path, nil
	}
	dst := addr.Addr().As4()
	src := c.laddr.Addr().As4()
	if src == ([4]byte{}) {
		r, ok := c.st.Routes().Lookup4(dst)
		if !ok {
			c.t.noRoutes.Add(1)
			return path{}, ErrNoRoute
		}
		src = c.st.Source(r, dst)
	}
	return c.pathFrom(src, dst, addr.Port()), nil
}

// checkSend runs the checks of a send that need no lock.
func (c *Conn) checkSend(addr netip.AddrPort) error {
	if c.closed.Load() {
		return c.opError("write", net.UDPAddrFromAddrPort(addr), net.ErrClosed)
	}
	if d := c.wdeadline.Load(); d != 0 && time.Now().UnixNano() >= d {
		return c.opError("write", net.UDPAddrFromAddrPort(addr), socket.ErrTimeout)
	}
	if !addr.Addr().Is4() || addr.Port() == 0 {
		return fmt.Errorf("udp: cannot send to %v: need an IPv4 address and a port", addr)
	}
	return nil
}

// sendState is the socket's send state, made on first use; nil once the
// socket is released. Under sendMu.
func (c *Conn) sendState() *sender {
	if c.tx == nil && !c.closed.Load() {
		c.tx = &sender{pool: c.st.Pool()}
	}
	if c.tx != nil && !c.tx.held {
		c.tx.held = true // it is about to take buffers: list it for trims
		c.t.hold(c)
	}
	return c.tx
}

// WriteToUDPAddrPort sends b as one datagram to addr (udp_sendmsg): a
// batch of one. The payload is copied into buffers of the socket's own and
// handed to the stack in one Output call; it allocates nothing.
func (c *Conn) WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	one := [1][]byte{b}
	if _, err := c.WriteBatchTo(one[:], addr); err != nil {
		return 0, err
	}
	return len(b), nil
}

// WriteBatchTo sends each of bufs as a datagram to addr, as sendmmsg does:
// one lock, one route decision, and one Output call per engine.Burst
// datagrams. It returns how many it sent; the error is the first one met,
// which stops the batch.
func (c *Conn) WriteBatchTo(bufs [][]byte, addr netip.AddrPort) (int, error) {
	if err := c.checkSend(addr); err != nil {
		return 0, err
	}
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	tx := c.sendState()
	if tx == nil {
		return 0, c.opError("write", net.UDPAddrFromAddrPort(addr), net.ErrClosed)
	}
	p, err := c.pathTo(addr)
	if err != nil {
		return 0, err
	}
	sent := 0
	for sent < len(bufs) {
		k := 0
		var berr error
		for _, b := range bufs[sent:min(len(bufs), sent+engine.Burst)] {
			if len(b) > MaxPayload {
				berr = ErrTooBig
				break
			}
			if tx.ms[k], berr = c.build(tx, b, &p); berr != nil {
				break
			}
			k++
		}
		if k > 0 {
			n, err := c.output(tx, &p, k, addr)
			sent += n
			if err != nil {
				return sent, err
			}
		}
		if berr != nil {
			return sent, berr
		}
	}
	return sent, nil
}

// build makes one datagram of payload b along p: a buffer (or a chain, for
// a datagram larger than one) from the socket's caches, the payload copied
// in after the headroom, the header in front. The checksum is left to the
// device, as Linux's CHECKSUM_PARTIAL: the field holds the pseudo-header
// sum and the datagram carries engine.FlagTxL4Csum; the stack's Output
// finishes it in software for a device that cannot (see Stack.Output).
// Under sendMu.
func (c *Conn) build(tx *sender, b []byte, p *path) (engine.Mbuf, error) {
	m, err := tx.cs.Alloc(tx.pool)
	if err != nil && c.t.trim(c) {
		m, err = tx.cs.Alloc(tx.pool) // other sockets' spare buffers are back
	}
	if err == nil && len(b) > 0 {
		if err = tx.cs.AppendBytes(m, tx.pool, b); err != nil {
			tx.cs.Free(m)
		}
	}
	if err != nil {
		c.t.noBuffers.Add(1)
		c.starve()
		return engine.NoMbuf, ErrNoBuffers
	}
	hdr, err := m.Prepend(udpheader.HeaderLen) // a fresh buffer has the headroom
	if err != nil {
		tx.cs.Free(m)
		return engine.NoMbuf, err
	}
	length := uint16(udpheader.HeaderLen + len(b))
	binary.BigEndian.PutUint16(hdr[0:], c.tmpl.sport)
	binary.BigEndian.PutUint16(hdr[2:], p.dport)
	binary.BigEndian.PutUint16(hdr[4:], length)
	binary.BigEndian.PutUint16(hdr[6:], uint16(ipv4.Sum(nil, p.sum+uint32(length))))
	m.SetFlags(m.Flags() | engine.FlagTxL4Csum)
	return m, nil
}

// output hands the first k built datagrams to the stack. Under sendMu.
func (c *Conn) output(tx *sender, p *path, k int, addr netip.AddrPort) (int, error) {
	n, err := c.st.Output(p.shard, p.rc, p.src, p.dst, tx.ms[:k])
	clear(tx.ms[:k]) // the stack owns them now
	if err != nil {
		if errors.Is(err, net.ErrClosed) {
			err = c.opError("write", net.UDPAddrFromAddrPort(addr), net.ErrClosed)
		}
		return n, err
	}
	if c.noBufs.Load() {
		c.noBufs.Store(false) // the table's next retry tells the pollers
	}
	return n, nil
}

// WriteTo implements net.PacketConn.
func (c *Conn) WriteTo(b []byte, addr net.Addr) (int, error) {
	var ap netip.AddrPort
	switch a := addr.(type) {
	case *net.UDPAddr:
		ap = a.AddrPort()
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	default:
		p, err := netip.ParseAddrPort(addr.String())
		if err != nil {
			return 0, fmt.Errorf("udp: cannot send to %v: %w", addr, err)
		}
		ap = p
	}
	return c.WriteToUDPAddrPort(b, ap)
}

// Write implements net.Conn for a connected socket.
func (c *Conn) Write(b []byte) (int, error) {
	if !c.raddr.IsValid() {
		return 0, ErrNotConnected
	}
	return c.WriteToUDPAddrPort(b, c.raddr)
}
