package stack

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/engine/csum"
	"github.com/pollnet/pollnet/stack/header/eth"
	"github.com/pollnet/pollnet/stack/header/ipv4"
	tcpheader "github.com/pollnet/pollnet/stack/header/tcp"
	"github.com/pollnet/pollnet/stack/link"
	"github.com/pollnet/pollnet/stack/network/route"
	"github.com/pollnet/pollnet/stack/socket"
	"github.com/pollnet/pollnet/stack/timer"
	"github.com/pollnet/pollnet/stack/transport/tcp"
	"github.com/pollnet/pollnet/stack/transport/tcp/ofo"
)

// The stack's TCP lives in package transport/tcp; these names keep the
// stack's API whole for its callers.
type (
	// TCPConn is a TCP connection: a net.Conn with CloseWrite, SetNoDelay,
	// SetKeepAlive, SetLinger and SetCongestion.
	TCPConn = tcp.Conn
	// TCPListener is a listening TCP socket: a net.Listener.
	TCPListener = tcp.Listener
	// TCPOptions are a TCP socket's settings at open.
	TCPOptions = tcp.Options
	// TCPConfig holds the stack-wide TCP settings (tcp_rmem, tcp_wmem,
	// TIME-WAIT, SYN backlog, cookies, keepalive...).
	TCPConfig = tcp.Config
	// TCPCounters are TCP's counters, named as Linux's.
	TCPCounters = tcp.Counters
	// TCPInfo is a connection's state (TCP_INFO).
	TCPInfo = tcp.Info
)

// ListenTCP opens a TCP listener on laddr (an unspecified address listens
// on every address of ours; port 0 picks one).
func (s *Stack) ListenTCP(laddr netip.AddrPort) (*TCPListener, error) {
	return s.ListenTCPWith(laddr, TCPOptions{})
}

// ListenTCPWith is ListenTCP with socket options, which the accepted
// connections inherit.
func (s *Stack) ListenTCPWith(laddr netip.AddrPort, o TCPOptions) (*TCPListener, error) {
	l, err := s.tcp.Listen(laddr, o)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: "tcp", Addr: net.TCPAddrFromAddrPort(laddr), Err: err}
	}
	return l, nil
}

// DialTCP connects to raddr and waits for the handshake until ctx ends. A
// zero laddr picks our address and an ephemeral port.
func (s *Stack) DialTCP(ctx context.Context, laddr, raddr netip.AddrPort) (*TCPConn, error) {
	return s.DialTCPWith(ctx, laddr, raddr, TCPOptions{})
}

// DialTCPWith is DialTCP with socket options.
func (s *Stack) DialTCPWith(ctx context.Context, laddr, raddr netip.AddrPort, o TCPOptions) (*TCPConn, error) {
	c, err := s.tcp.Dial(ctx, laddr, raddr, o)
	if err != nil {
		if _, ok := err.(*net.OpError); !ok {
			err = &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(raddr), Err: err}
		}
		return nil, err
	}
	return c, nil
}

// DialContext connects to address, an IPv4 address and port ("198.18.0.2:80";
// no name lookup), for network "tcp" or "tcp4": the dialer net/http's
// Transport takes, so an HTTP client runs over the stack unchanged.
func (s *Stack) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if network != "tcp" && network != "tcp4" {
		return nil, &net.OpError{Op: "dial", Net: network, Err: net.UnknownNetworkError(network)}
	}
	raddr, err := netip.ParseAddrPort(address)
	if err != nil || !raddr.Addr().Is4() {
		return nil, &net.OpError{Op: "dial", Net: network,
			Err: fmt.Errorf("address %q: give an IPv4 address and a port (no names are looked up)", address)}
	}
	c, err := s.DialTCP(ctx, netip.AddrPort{}, raddr)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// TCPConns is the number of TCP connections the stack holds, and of them
// in TIME-WAIT entries.
func (s *Stack) TCPConns() (conns, timeWait int) { return s.tcp.Conns() }

// TCPHeldMbufs is the number of mbufs TCP's receive queues hold (tcp_mem's
// count).
func (s *Stack) TCPHeldMbufs() int64 { return s.tcp.Held() }

// newTCPTable makes the stack's TCP, once its shards exist.
func (s *Stack) newTCPTable(cfg Config) (*tcp.Table, error) {
	tc := cfg.TCP
	if tc.Mem == ([3]int{}) {
		// tcp_mem is sized from memory; here the receive pools are the
		// memory: in-order data may hold up to half of the smallest.
		limit := s.heldLimit() * 4 * engine.BufSize
		tc.Mem = [3]int{limit / 2, limit * 3 / 4, limit}
	}
	return tcp.NewTable(tc, cfg.LocalPortRange, s.secret, (*tcpHost)(s))
}

// tcpInput hands a segment to TCP (tcp_v4_rcv). m starts at the IPv4
// header h. Under the shard lock.
func (sh *shard) tcpInput(dev *link.Device, m engine.Mbuf, h ipv4.Header) {
	if h.Dst == [4]byte{255, 255, 255, 255} || h.Dst == broadcastOf(dev) {
		sh.tcpStats.InErrs++ // TCP is unicast only
		sh.cs.Free(m)
		return
	}
	sh.s.tcp.Input(sh.id, m, int(h.HeaderLen), h.Src, h.Dst, m.Flags()&engine.FlagRxL4CsumGood != 0)
}

// tcpErr is TCP's ICMP error handler (tcp_v4_err): an unreachable
// destination ends a connection still in its handshake. Under the lock of
// the shard the message arrived on, which acts only on its own flows.
func (sh *shard) tcpErr(e icmpErrInfo) {
	if len(e.transport) < 8 {
		return
	}
	tu := tcp.Tuple{Local: e.quoted.Src, Remote: e.quoted.Dst,
		LocalPort: binary.BigEndian.Uint16(e.transport[0:]), RemotePort: binary.BigEndian.Uint16(e.transport[2:])}
	if sh.s.ShardOf(ipv4.ProtoTCP, tu.Remote, tu.Local, tu.RemotePort, tu.LocalPort) != sh.id {
		return
	}
	if !sh.s.tcp.Err(sh.id, tu, binary.BigEndian.Uint32(e.transport[4:]), e.errno, e.hard) {
		sh.stats.ICMPInErrors++
	}
}

// tcpHost is the stack as TCP sees it (tcp.Host), a type of its own so
// that these methods stay off the stack's API.
type tcpHost Stack

var _ tcp.Host = (*tcpHost)(nil)

func (h *tcpHost) Shards() []tcp.Shard {
	out := make([]tcp.Shard, len(h.shards))
	for i, sh := range h.shards {
		out[i] = (*tcpShard)(sh)
	}
	return out
}

func (h *tcpHost) ShardOf(src, dst [4]byte, sport, dport uint16) int {
	return (*Stack)(h).ShardOf(ipv4.ProtoTCP, src, dst, sport, dport)
}

func (h *tcpHost) Route(dst [4]byte) ([4]byte, int, bool) {
	r, ok := h.routes.Lookup4(dst)
	if !ok {
		return [4]byte{}, 0, false
	}
	s := (*Stack)(h)
	return s.sourceOf(r, dst), s.outDevice(r).MTU, true
}

func (h *tcpHost) Local(a [4]byte) bool {
	r, ok := h.routes.Lookup4(a)
	return ok && r.Kind == route.KindLocal
}

func (h *tcpHost) SocketCounters() *socket.Counters { return &h.counters }
func (h *tcpHost) FreeRead(m engine.Mbuf)           { h.sockFree.free(m) }
func (h *tcpHost) Held() ofo.Accountant             { return &h.held }

// tcpShard is a shard as TCP sees it (tcp.Shard).
type tcpShard shard

func (t *tcpShard) sh() *shard { return (*shard)(t) }

func (t *tcpShard) ID() int                 { return t.id }
func (t *tcpShard) Lock()                   { t.mu.Lock() }
func (t *tcpShard) Unlock()                 { t.sh().notify(t.sh().unlock()) }
func (t *tcpShard) Now() int64              { return t.s.clock() }
func (t *tcpShard) Wheel() *timer.Wheel     { return &t.wheel }
func (t *tcpShard) Moved()                  { t.timersMoved = true }
func (t *tcpShard) Caches() *engine.Caches  { return &t.cs }
func (t *tcpShard) Pool() *engine.Pool      { return t.s.pool }
func (t *tcpShard) Counters() *tcp.Counters { return &t.tcpStats }
func (t *tcpShard) MarkReady(c *tcp.Conn)   { t.ready = append(t.ready, c) }

// Output puts the IPv4 header on a segment and sends it (ip_queue_xmit),
// with the route from the connection's cache. Under the lock.
func (t *tcpShard) Output(rc *route.Cache, src, dst [4]byte, id uint16, m engine.Mbuf) error {
	s := t.s
	r, ok := s.lookupRoute(rc, dst)
	if !ok {
		t.stats.IPOutNoRoutes++
		t.cs.Free(m)
		return ErrNoRoute
	}
	if m.PktLen()+ipv4.HeaderLen > ipv4.MaxTotalLen {
		t.cs.Free(m)
		return ErrTooBig
	}
	dev := s.outDevice(r)
	if err := t.sh().l4Checksum(dev, m, src, dst); err != nil {
		t.cs.Free(m)
		return err
	}
	hdr, err := m.Prepend(ipv4.HeaderLen)
	if err != nil {
		t.stats.NoMbuf++
		t.cs.Free(m)
		return ErrNoBuffers
	}
	ipv4.Header{TotalLen: uint16(m.PktLen()), ID: id, TTL: ipv4.DefaultTTL,
		Flags: ipv4.FlagDF, Protocol: ipv4.ProtoTCP, Src: src, Dst: dst}.Put(hdr, nil)
	t.stats.IPOutRequests++
	return t.sh().routeOutput(dev, r, dst, m, false)
}

// l4Checksum fills the checksum of segment m, TCP header first, from src to
// dst, or leaves it to dev when its port can (Features.TxChecksum) and the
// segment will not be fragmented: the pseudo-header sum in the field,
// engine.FlagTxL4Csum and the header lengths set, as tcp_v4_send_check does
// for CHECKSUM_PARTIAL. Software summing is most of a bulk sender's work
// otherwise.
func (sh *shard) l4Checksum(dev *link.Device, m engine.Mbuf, src, dst [4]byte) error {
	n := m.PktLen()
	if !dev.TxChecksum || n+ipv4.HeaderLen > dev.MTU {
		if tcpheader.SetChecksumMbuf(m, 0, n, src, dst) != nil {
			return ErrNoBuffers
		}
		return nil
	}
	var doff [1]byte
	if n < tcpheader.HeaderLen || m.CopyOut(doff[:], 12) != 1 ||
		csum.Put16(m, 16, uint16(ipv4.PseudoSum(src, dst, ipv4.ProtoTCP, uint16(n)))) != nil {
		return ErrNoBuffers
	}
	m.SetFlags(m.Flags() | engine.FlagTxL4Csum)
	m.SetHeaderLens(eth.HeaderLen, ipv4.HeaderLen, int(doff[0]>>4)*4)
	return nil
}
