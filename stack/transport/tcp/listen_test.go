package tcp

import (
	"errors"
	"net/netip"
	"testing"

	tcpheader "github.com/pollnet/pollnet/stack/header/tcp"
)

func TestAListenerOnOurAddressWinsOverTheWildcardOnTheSamePort(t *testing.T) {
	r := newRig(t, Config{})
	e := r.ends[0]
	wild, err := e.tbl.Listen(netip.AddrPortFrom(netip.IPv4Unspecified(), 80), Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.lns = append(e.lns, wild)
	specific := e.listen(80, Options{})
	if _, err := e.tbl.Listen(netip.AddrPortFrom(netip.AddrFrom4(e.host.addr), 80), Options{}); !errors.Is(err, ErrAddrInUse) {
		t.Fatalf("a second listener on the same address and port: %v, want EADDRINUSE", err)
	}
	p := newPeer(e, 33000, 80)
	c := p.connect(specific)
	if c.LocalAddr().String() != "198.18.0.1:80" {
		t.Fatalf("accepted on %v", c.LocalAddr())
	}
	if wild.ready() {
		t.Fatal("the wildcard listener got a connection for our address")
	}
	// Closed, the specific listener leaves its address to the wildcard.
	specific.Close()
	p2 := newPeer(e, 33001, 80)
	syn := p2.seg(tcpheader.SYN, nil)
	p2.synOpts(&syn)
	p2.send(syn)
	if out := e.sent(); len(out) != 1 || out[0].flags != tcpheader.SYN|tcpheader.ACK {
		t.Fatalf("SYN to the wildcard listener answered with %v", out)
	}
}
