package stack

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/header/ipv4"
	udpheader "github.com/pollnet/pollnet/stack/header/udp"
	"github.com/pollnet/pollnet/stack/link"
	"github.com/pollnet/pollnet/stack/network/route"
	"github.com/pollnet/pollnet/stack/siphash"
	"github.com/pollnet/pollnet/stack/socket"
	"github.com/pollnet/pollnet/stack/transport/ephemeral"
	"github.com/pollnet/pollnet/stack/transport/udp"
)

// The stack's UDP sockets live in package transport/udp; these names keep
// the stack's API whole for its callers.
type (
	// UDPConn is a UDP socket.
	UDPConn = udp.Conn
	// UDPOptions are a UDP socket's settings at open (SO_REUSEPORT,
	// SO_INCOMING_CPU, SO_RCVBUF).
	UDPOptions = udp.Options
	// PortRange is the inclusive range from which ephemeral ports are
	// picked (net.ipv4.ip_local_port_range).
	PortRange = ephemeral.Range
)

// MaxUDPPayload is the largest datagram a UDP socket sends.
const MaxUDPPayload = udp.MaxPayload

// Errors of UDP sockets.
var (
	ErrAddrInUse    = udp.ErrAddrInUse
	ErrNotConnected = udp.ErrNotConnected
	ErrAddrNotAvail = udp.ErrAddrNotAvail
)

var defaultPortRange = ephemeral.DefaultRange

// newUDPTable makes the stack's table of UDP sockets.
func newUDPTable(cfg Config, secret siphash.Key) (*udp.Table, error) {
	return udp.NewTable(udp.Config{Ports: cfg.LocalPortRange, Key: secret, RecvBuffer: cfg.UDPRecvBuffer})
}

// ListenUDP opens a UDP socket bound to laddr (an unspecified address binds
// every address; port 0 picks an ephemeral port).
func (s *Stack) ListenUDP(laddr netip.AddrPort) (*UDPConn, error) {
	return s.udp.Open((*udpStack)(s), laddr, netip.AddrPort{}, UDPOptions{Shard: udp.AnyShard})
}

// ListenUDPWith is ListenUDP with socket options: a port shared by a
// reuseport group, a socket bound to a shard, a receive buffer of its own.
func (s *Stack) ListenUDPWith(laddr netip.AddrPort, o UDPOptions) (*UDPConn, error) {
	return s.udp.Open((*udpStack)(s), laddr, netip.AddrPort{}, o)
}

// DialUDP opens a UDP socket connected to raddr: it sends there by default
// and receives only from there. A zero laddr picks an address and port.
func (s *Stack) DialUDP(laddr, raddr netip.AddrPort) (*UDPConn, error) {
	if !raddr.IsValid() || !raddr.Addr().Is4() || raddr.Port() == 0 {
		return nil, fmt.Errorf("dial udp %v: need an IPv4 address and a port", raddr)
	}
	return s.udp.Open((*udpStack)(s), laddr, raddr, UDPOptions{Shard: udp.AnyShard})
}

// udpInput delivers a datagram to its socket (udp_rcv), or answers port
// unreachable. m starts at the IPv4 header h. Under the shard lock.
func (sh *shard) udpInput(dev *link.Device, m engine.Mbuf, h ipv4.Header) {
	hl := int(h.HeaderLen)
	n := m.PktLen() - hl
	var uh udpheader.Header
	var err error
	if first := m.Data(); m.Next() == engine.NoMbuf {
		uh, err = udpheader.Parse(first[hl:])
	} else if len(first) >= hl+udpheader.HeaderLen && n >= udpheader.HeaderLen {
		// A reassembled datagram spans segments: the header is in the first.
		b := first[hl:]
		uh = udpheader.Header{SrcPort: binary.BigEndian.Uint16(b[0:]), DstPort: binary.BigEndian.Uint16(b[2:]),
			Length: binary.BigEndian.Uint16(b[4:]), Checksum: binary.BigEndian.Uint16(b[6:])}
		if uh.Length < udpheader.HeaderLen || int(uh.Length) > n {
			err = udpheader.ErrLength
		}
	} else {
		err = udpheader.ErrTruncated
	}
	if err != nil {
		sh.stats.UDPInErrors++
		sh.cs.Free(m)
		return
	}
	if m.Flags()&engine.FlagRxL4CsumGood == 0 && !udpheader.VerifyMbuf(m, hl, int(uh.Length), h.Src, h.Dst) {
		sh.stats.UDPInCsumErrors++
		sh.stats.UDPInErrors++
		sh.cs.Free(m)
		return
	}
	src := netip.AddrPortFrom(netip.AddrFrom4(h.Src), uh.SrcPort)
	dst := netip.AddrPortFrom(netip.AddrFrom4(h.Dst), uh.DstPort)
	var hash uint32
	if m.Flags()&engine.FlagRSSHash != 0 {
		hash = m.Hash()
	}
	c := sh.s.udp.Lookup(src, dst, sh.id, hash)
	if c == nil {
		sh.stats.UDPNoPorts++
		bcast := h.Dst == [4]byte{255, 255, 255, 255} || h.Dst == broadcastOf(dev)
		if bcast {
			sh.cs.Free(m)
			return
		}
		sh.icmpError(m, h, icmpDestUnreach, icmpPortUnreach, 0)
		return
	}
	if !c.Deliver(m, hl+udpheader.HeaderLen, int(uh.Length)-udpheader.HeaderLen, src) {
		sh.stats.UDPRcvbufErrors++
		sh.cs.Free(m)
		return
	}
	sh.stats.UDPInDatagrams++
	sh.markReady(c)
}

// udpErr is UDP's ICMP error handler: the quoted datagram is one we sent,
// its source our end, its destination the peer (see udp.Table.Err). Under
// the shard lock.
func (sh *shard) udpErr(e icmpErrInfo) {
	if len(e.transport) < udpheader.HeaderLen {
		return
	}
	local := netip.AddrPortFrom(netip.AddrFrom4(e.quoted.Src), binary.BigEndian.Uint16(e.transport[0:]))
	remote := netip.AddrPortFrom(netip.AddrFrom4(e.quoted.Dst), binary.BigEndian.Uint16(e.transport[2:]))
	told, owned := sh.s.udp.Err(local, remote, e.errno, e.hard)
	if !owned {
		sh.stats.ICMPInErrors++ // about no socket of ours, as __udp4_lib_err counts it
		return
	}
	if told != nil {
		sh.markReady(told) // wake its readers (sk_error_report)
	}
}

// addUDPStats adds the UDP sockets' own counts of send failures to st.
func (s *Stack) addUDPStats(st *Stats) {
	c := s.udp.Counters()
	st.IPOutNoRoutes += c.OutNoRoutes
	st.NoMbuf += c.OutNoBuffers
}

// udpStack is the stack as its UDP sockets see it (udp.Stack), a type of
// its own so that these methods stay off the stack's API.
type udpStack Stack

var _ udp.Stack = (*udpStack)(nil)

func (u *udpStack) Pool() *engine.Pool         { return u.pool }
func (u *udpStack) Routes() *route.Routes      { return u.routes }
func (u *udpStack) Shards() int                { return len(u.shards) }
func (u *udpStack) BusyPoll() bool             { return (*Stack)(u).Mode() == ModePMD }
func (u *udpStack) Counters() *socket.Counters { return &u.counters }
func (u *udpStack) FreeRead(m engine.Mbuf)     { u.sockFree.free(m) }

func (u *udpStack) ShardOf(src, dst [4]byte, sport, dport uint16) int {
	return (*Stack)(u).ShardOf(ipv4.ProtoUDP, src, dst, sport, dport)
}

func (u *udpStack) Source(r route.Result, dst [4]byte) [4]byte { return (*Stack)(u).sourceOf(r, dst) }

// Output hands a socket's datagrams to a shard (see output): the payload was
// copied already, outside any shard's lock.
func (u *udpStack) Output(shard int, rc *route.Cache, src, dst [4]byte, ms []engine.Mbuf) (int, error) {
	return (*Stack)(u).output(shard, rc, src, dst, ipv4.ProtoUDP, ms)
}
