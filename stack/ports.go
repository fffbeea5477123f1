package stack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"

	"github.com/pollnet/pollnet/stack/siphash"
)

// PortRange is the inclusive range from which ephemeral ports are picked
// (net.ipv4.ip_local_port_range).
type PortRange struct{ Low, High uint16 }

// defaultPortRange is Linux's default ip_local_port_range.
var defaultPortRange = PortRange{Low: 32768, High: 60999}

// unprivilegedPortStart is the lowest port a range may start at, as Linux
// refuses a range reaching below ip_unprivileged_port_start.
const unprivilegedPortStart = 1024

func (r PortRange) String() string { return fmt.Sprintf("%d-%d", r.Low, r.High) }

func (r PortRange) validate() error {
	if r.Low < unprivilegedPortStart || r.High < r.Low {
		return fmt.Errorf("local port range %v: want %d <= low <= high <= 65535", r, unprivilegedPortStart)
	}
	return nil
}

// errNoEphemeral says the whole range was searched and every port is taken.
var errNoEphemeral = errors.New("no free port in the local port range")

// ephemeralPorts picks local ports for sockets bound to port 0 by RFC 6056
// algorithm 3 (the simple hash-based selection), as Linux's
// __inet_hash_connect does with inet_sk_port_offset: each flow starts its
// search at a secret offset of its own, moved on by a counter, and searches
// the whole range, wrapping. Guarded by the stack lock.
type ephemeralPorts struct {
	rng     PortRange
	key     siphash.Key // the stack's secret
	perturb uint32      // next_ephemeral of the RFC (Linux's table_perturb)
}

// pick returns a port of the range for which free is true, or
// errNoEphemeral. raddr is the zero AddrPort for an unconnected socket, whose
// offset then depends on the local address alone.
func (e *ephemeralPorts) pick(laddr netip.Addr, raddr netip.AddrPort, free func(uint16) bool) (uint16, error) {
	n := uint32(e.rng.High) - uint32(e.rng.Low) + 1
	var l, r uint64
	if laddr.Is4() {
		b := laddr.As4()
		l = uint64(binary.BigEndian.Uint32(b[:]))
	}
	if raddr.Addr().Is4() {
		b := raddr.Addr().As4()
		r = uint64(binary.BigEndian.Uint32(b[:]))
	}
	// Reduce before adding i: a sum wrapping at 2^32 would skip ports.
	start := (uint32(e.key.Hash3(l, r, uint64(raddr.Port())|siphash.TagPort<<16)) + e.perturb) % n
	for i := uint32(0); i < n; i++ {
		p := e.rng.Low + uint16((start+i)%n)
		if !free(p) {
			continue
		}
		// Move the counter on by the ports tried, and by a small random
		// step when that is less: the next flow to the same peer cannot
		// be told from this one (Linux added this after port offsets
		// were used to track devices).
		e.perturb += max(i, rand.Uint32N(8)) + 1
		return p, nil
	}
	return 0, errNoEphemeral
}
