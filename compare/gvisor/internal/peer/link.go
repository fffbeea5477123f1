package peer

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// Link parameters: a transmit queue of this many packets per direction
// (the MTU is the run's, pollnet's wire MTU by default). The link carries
// bare IPv4 packets (no link-layer header), so no ARP runs.
const (
	linkQueue = 1024
	nicID     = tcpip.NICID(1)
	linkKind  = "channel pair, no link-layer header (no ARP)"
)

var (
	addrA = tcpip.AddrFrom4([4]byte{198, 18, 2, 1})
	addrB = tcpip.AddrFrom4([4]byte{198, 18, 2, 2})
)

// pair is two gVisor stacks, A (198.18.2.1/24) and B (198.18.2.2/24), each
// with one NIC on a channel endpoint, joined back to back in memory: one
// goroutine per direction takes what a stack transmitted and injects it
// into the other stack as received.
type pair struct {
	a, b   *stack.Stack
	la, lb *queueLink

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// newPair builds both stacks with links of the given MTU and starts the
// link. cc names the TCP congestion control both stacks use.
func newPair(cc string, mtu int) (*pair, error) {
	p := &pair{
		la: &queueLink{Endpoint: channel.New(linkQueue, uint32(mtu), "")},
		lb: &queueLink{Endpoint: channel.New(linkQueue, uint32(mtu), "")},
	}
	var err error
	if p.a, err = newStack(p.la, addrA, cc); err != nil {
		return nil, fmt.Errorf("stack A: %w", err)
	}
	if p.b, err = newStack(p.lb, addrB, cc); err != nil {
		p.a.Close()
		p.a.Wait()
		return nil, fmt.Errorf("stack B: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.wg.Add(2)
	go p.carry(ctx, p.la, p.lb)
	go p.carry(ctx, p.lb, p.la)
	return p, nil
}

func newStack(ep stack.LinkEndpoint, addr tcpip.Address, cc string) (*stack.Stack, error) {
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{udp.NewProtocol, tcp.NewProtocol},
	})
	fail := func(what string, e tcpip.Error) (*stack.Stack, error) {
		s.Close()
		s.Wait()
		return nil, fmt.Errorf("%s: %s", what, e)
	}
	// SACK and receive-buffer moderation on, as runsc runs its netstack.
	sack := tcpip.TCPSACKEnabled(true)
	if e := s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack); e != nil {
		return fail("tcp sack", e)
	}
	moderate := tcpip.TCPModerateReceiveBufferOption(true)
	if e := s.SetTransportProtocolOption(tcp.ProtocolNumber, &moderate); e != nil {
		return fail("tcp receive buffer moderation", e)
	}
	ccOpt := tcpip.CongestionControlOption(cc)
	if e := s.SetTransportProtocolOption(tcp.ProtocolNumber, &ccOpt); e != nil {
		return fail("tcp congestion control "+cc, e)
	}
	if e := s.CreateNIC(nicID, ep); e != nil {
		return fail("create NIC", e)
	}
	pa := tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: addr, PrefixLen: 24},
	}
	if e := s.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); e != nil {
		return fail("add address", e)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: pa.AddressWithPrefix.Subnet(), NIC: nicID}})
	return s, nil
}

// queueLink is a channel endpoint that counts what it drops: the channel
// endpoint reports a full transmit queue only by accepting fewer packets
// than it was given, and the stack does not count those.
type queueLink struct {
	*channel.Endpoint
	dropped atomic.Uint64
}

// WritePackets implements stack.LinkEndpoint.
func (l *queueLink) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	n, err := l.Endpoint.WritePackets(pkts)
	if err == nil && n < pkts.Len() {
		l.dropped.Add(uint64(pkts.Len() - n))
	}
	return n, err
}

// carry moves packets from one endpoint's transmit queue into the other's
// receive path until ctx ends, taking whatever is queued after each wake-up
// in one go. Each packet is rebuilt as a fresh inbound buffer over the same
// payload (no copy), as a wire would hand it over.
func (p *pair) carry(ctx context.Context, from, to *queueLink) {
	defer p.wg.Done()
	for {
		pkt := from.ReadContext(ctx)
		if pkt == nil {
			return
		}
		for ; pkt != nil; pkt = from.Read() {
			in := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: pkt.ToBuffer()})
			to.InjectInbound(pkt.NetworkProtocolNumber, in)
			in.DecRef()
			pkt.DecRef()
		}
	}
}

// linkDrops is the packets either direction's transmit queue dropped.
func (p *pair) linkDrops() uint64 {
	return p.la.dropped.Load() + p.lb.dropped.Load()
}

// close stops the link and both stacks.
func (p *pair) close() {
	p.cancel()
	p.wg.Wait()
	for _, s := range []*stack.Stack{p.a, p.b} {
		s.Close()
		s.Wait()
	}
	p.la.Close()
	p.lb.Close()
}
