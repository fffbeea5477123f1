package stack

import (
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/pmd/wire"
	"github.com/pollnet/pollnet/stack/header/eth"
	"github.com/pollnet/pollnet/stack/header/icmp"
	"github.com/pollnet/pollnet/stack/header/ipv4"
	icmpnet "github.com/pollnet/pollnet/stack/network/icmp"
)

// TestEchoRequestsToABroadcastAreIgnoredAndCounted follows Linux's default
// icmp_echo_ignore_broadcasts=1: no answer to the subnet broadcast, the
// limited broadcast or a multicast group, each counted as an input error;
// a unicast echo is answered from our unicast address.
func TestEchoRequestsToABroadcastAreIgnoredAndCounted(t *testing.T) {
	l := newRawLink(t, addrB, wire.Config{}, nil)
	peer := rawAddr("198.18.0.1")
	bcast := [][]byte{
		l.echoTo(peer, rawAddr("198.18.0.255"), 1),
		ipFrame(eth.Broadcast, l.mac, ipv4.Header{Protocol: ipv4.ProtoICMP, Src: peer, Dst: rawAddr("198.18.0.255")}, rawEcho(2, nil)),
		ipFrame(eth.Broadcast, l.mac, ipv4.Header{Protocol: ipv4.ProtoICMP, Src: peer, Dst: rawAddr("255.255.255.255")}, rawEcho(3, nil)),
	}
	for _, f := range bcast {
		l.send(f)
	}
	st := l.settle()
	if st.ICMPOutEchoReps != 0 || st.ICMPInErrors != uint64(len(bcast)) {
		t.Fatalf("broadcast echo: %d replies, %d input errors", st.ICMPOutEchoReps, st.ICMPInErrors)
	}
	l.quiet("echo to a broadcast")
	l.send(l.echoTo(peer, l.ours(), 4))
	got := l.recv(1, 5*time.Second)
	if len(got) != 1 {
		t.Fatalf("unicast echo: %d replies", len(got))
	}
	if h, m := parseSentICMP(t, got[0]); m.Type != icmp.TypeEchoReply || h.Src != l.ours() || h.Dst != peer {
		t.Fatalf("reply type %d from %v to %v", m.Type, h.Src, h.Dst)
	}
}

// TestNoICMPErrorAnswersABroadcast checks RFC 1122 3.2.2: no error about a
// datagram sent to an IP broadcast, or as a link-layer broadcast, or from a
// source that names no single host. A unicast datagram to a closed port
// still earns its port unreachable, from our own unicast address.
func TestNoICMPErrorAnswersABroadcast(t *testing.T) {
	l := newRawLink(t, addrB, wire.Config{}, nil)
	peer := rawAddr("198.18.0.1")
	udpFrame := func(dstMAC eth.MAC, src, dst [4]byte) []byte {
		return ipFrame(dstMAC, l.mac, ipv4.Header{Protocol: ipv4.ProtoUDP, Src: src, Dst: dst}, rawUDP(src, dst, 1, 9, []byte("x")))
	}
	unknownProto := func(dstMAC eth.MAC, dst [4]byte) []byte {
		return ipFrame(dstMAC, l.mac, ipv4.Header{Protocol: 200, Src: peer, Dst: dst}, []byte("12345678"))
	}
	frames := [][]byte{
		udpFrame(eth.Broadcast, peer, l.ours()),                          // link broadcast, unicast IP
		udpFrame(l.stackMAC, peer, rawAddr("198.18.0.255")),              // subnet broadcast
		udpFrame(eth.Broadcast, peer, rawAddr("255.255.255.255")),        // limited broadcast
		udpFrame(l.stackMAC, rawAddr("198.18.0.255"), l.ours()),          // broadcast source
		udpFrame(l.stackMAC, rawAddr("0.0.0.0"), l.ours()),               // no source
		unknownProto(l.stackMAC, rawAddr("198.18.0.255")),                // protocol unreachable, to a broadcast
		unknownProto(eth.Broadcast, l.ours()),                            // and as a link broadcast
		udpFrame(l.stackMAC, rawAddr("255.255.255.255"), l.ours()),       // limited broadcast source
		udpFrame(l.stackMAC, rawAddr("224.0.0.251"), l.ours()),           // multicast source
		udpFrame(l.stackMAC, rawAddr("127.0.0.1"), rawAddr("127.0.0.1")), // loopback
	}
	for _, f := range frames {
		l.send(f)
	}
	if st := l.settle(); st.ICMPOutDestUnreachs != 0 || st.ICMPOutMsgs != 0 {
		t.Fatalf("%d destination unreachables, %d ICMP messages sent", st.ICMPOutDestUnreachs, st.ICMPOutMsgs)
	}
	l.quiet("errors about broadcasts")

	l.send(udpFrame(l.stackMAC, peer, l.ours()))
	got := l.recv(1, 5*time.Second)
	if len(got) != 1 {
		t.Fatalf("unicast to a closed port: %d answers", len(got))
	}
	h, m := parseSentICMP(t, got[0])
	if m.Type != icmp.TypeDestUnreachable || m.Code != icmp.CodePortUnreachable || h.Src != l.ours() || h.Dst != peer {
		t.Fatalf("answer: type %d code %d from %v to %v", m.Type, m.Code, h.Src, h.Dst)
	}
}

// TestICMPErrorsAreRateLimitedPerHostAndGlobally: one host gets a burst of
// six errors and then one a second (inet_peer_xrlim_allow); many hosts
// together get at most the global burst (icmp_msgs_burst); echo replies are
// not limited (icmp_ratemask).
func TestICMPErrorsAreRateLimitedPerHostAndGlobally(t *testing.T) {
	l := newRawLink(t, addrB, wire.Config{}, nil)
	// Time stands still for the limiter: no bucket refills mid-test.
	frozen := engine.Nanotime()
	l.s.icmpRL.SetClock(func() int64 { return frozen })
	peer := rawAddr("198.18.0.1")
	const perHost = 10
	var fs [][]byte
	for i := 0; i < perHost; i++ {
		fs = append(fs, l.udpTo(peer, l.ours(), 1, 9, []byte("closed")))
	}
	l.send(fs...)
	st := l.settle()
	if st.ICMPOutDestUnreachs != icmpnet.HostBurst || st.ICMPOutRateLimitHost != perHost-icmpnet.HostBurst {
		t.Fatalf("one host: %d errors sent, %d limited per host (want %d and %d)",
			st.ICMPOutDestUnreachs, st.ICMPOutRateLimitHost, icmpnet.HostBurst, perHost-icmpnet.HostBurst)
	}
	if got := l.recv(icmpnet.HostBurst, 5*time.Second); len(got) != icmpnet.HostBurst {
		t.Fatalf("the host received %d errors", len(got))
	}
	l.quiet("after the host's burst")

	// Echo replies to the same host are not limited.
	fs = fs[:0]
	for i := 0; i < 20; i++ {
		fs = append(fs, l.echoTo(peer, l.ours(), uint16(i)))
	}
	l.send(fs...)
	if got := l.recv(20, 5*time.Second); len(got) != 20 {
		t.Fatalf("%d echo replies to 20 requests", len(got))
	}

	// 200 spoofed hosts, one datagram each: the global bucket of 50 runs
	// dry after about 50 errors (each costs 0, 1 or 2 tokens at random).
	const hosts = 200
	fs = fs[:0]
	for i := 0; i < hosts; i++ {
		src := [4]byte{198, 18, 1 + byte(i/250), 1 + byte(i%250)}
		fs = append(fs, l.udpTo(src, l.ours(), 1, 9, []byte("spoofed")))
	}
	l.send(fs...)
	st2 := l.settle()
	sent := st2.ICMPOutDestUnreachs - st.ICMPOutDestUnreachs
	if sent+st2.ICMPOutRateLimitGlobal != hosts || sent < 10 || sent > 100 || st2.ICMPOutRateLimitHost != perHost-icmpnet.HostBurst {
		t.Fatalf("%d hosts: %d errors sent, %d limited globally", hosts, sent, st2.ICMPOutRateLimitGlobal)
	}
}

// TestIPIDsArePerDestinationAndUnpredictable: the IDs of datagrams to one
// host increase, and tell nothing about those to another (ip_idents), so an
// off-path host cannot count what we send to a third party.
func TestIPIDsArePerDestinationAndUnpredictable(t *testing.T) {
	l := newRawLink(t, addrB, wire.Config{}, nil)
	a, b := rawAddr("198.18.0.1"), rawAddr("198.18.0.3")
	const n = 8
	var ids [2][n]uint16
	for i := 0; i < n; i++ {
		for j, src := range [][4]byte{a, b} {
			l.send(l.echoTo(src, l.ours(), uint16(i)))
			got := l.recv(1, 5*time.Second)
			if len(got) != 1 {
				t.Fatalf("echo %d from %v: %d replies", i, src, len(got))
			}
			h, _ := parseSentICMP(t, got[0])
			if h.Dst != src {
				t.Fatalf("reply to %v, want %v", h.Dst, src)
			}
			ids[j][i] = h.ID
		}
	}
	consecutive := 0
	for i := 0; i < n; i++ {
		if i > 0 {
			for j := range ids {
				if d := int16(ids[j][i] - ids[j][i-1]); d <= 0 {
					t.Fatalf("IDs to one host do not increase: %v", ids[j])
				}
			}
		}
		if ids[1][i] == ids[0][i]+1 {
			consecutive++
		}
		if i > 0 && ids[0][i] == ids[1][i-1]+1 {
			consecutive++
		}
	}
	if consecutive > 2 {
		t.Fatalf("IDs to two hosts come from one counter: %v and %v", ids[0], ids[1])
	}
}
