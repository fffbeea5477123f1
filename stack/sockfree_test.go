package stack

import (
	"net/netip"
	"testing"

	"github.com/pollnet/pollnet/pmd/wire"
)

// TestUDPSocketsDoNotHoardReceiveBuffers: a socket that has read datagrams
// keeps no private stock of the receive pool's buffers, so a handful of
// sockets that each read a few hundred datagrams cannot drain the pool.
func TestUDPSocketsDoNotHoardReceiveBuffers(t *testing.T) {
	const pool = 2048
	r := newRig(t, wire.Config{PoolSize: pool}, Config{})
	buf := make([]byte, 64)
	for i := 0; i < 5; i++ {
		port := uint16(9000 + i)
		c, err := r.s.ListenUDP(netip.AddrPortFrom(addrB.Addr(), port))
		if err != nil {
			t.Fatal(err)
		}
		for k := 0; k < 511; k++ {
			r.send(udpFrame(4000, port, []byte("datagram")))
			if _, _, ok := c.TryRead(buf); !ok {
				t.Fatalf("socket %d: datagram %d did not arrive (%d receive buffers in use, %d dropped for no buffer)",
					i, k, r.rxPoolInUse(), r.rxNoMbuf())
			}
		}
	}
}
