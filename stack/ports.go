package stack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"net/netip"
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

// portSecret is the stack's key for the hash that spreads ephemeral ports.
//
// It is hash/maphash under a seed drawn at random per stack, a stand-in for
// SipHash: the seed is secret and the output for an unknown seed is not
// predictable, which is what RFC 6056 section 3.3.3 asks of F, and the hash
// allocates nothing. But maphash is built against hash flooding, not as a
// pseudorandom function: nothing promises that the seed cannot be learned
// from many observed outputs. The stack/siphash package (SipHash-2-4, a
// PRF) replaces it: only hash3's body changes.
type portSecret struct{ seed maphash.Seed }

func newPortSecret() portSecret { return portSecret{seed: maphash.MakeSeed()} }

// hash3 is the keyed hash of three words.
func (k *portSecret) hash3(a, b, c uint64) uint64 {
	var buf [24]byte
	binary.LittleEndian.PutUint64(buf[0:], a)
	binary.LittleEndian.PutUint64(buf[8:], b)
	binary.LittleEndian.PutUint64(buf[16:], c)
	return maphash.Bytes(k.seed, buf[:])
}

// ephemeralPorts picks local ports for sockets bound to port 0 by RFC 6056
// algorithm 3 (the simple hash-based selection), as Linux's
// __inet_hash_connect does with inet_sk_port_offset: each flow starts its
// search at a secret offset of its own, moved on by a counter, and searches
// the whole range, wrapping. Guarded by the stack lock.
type ephemeralPorts struct {
	rng     PortRange
	secret  portSecret
	perturb uint32 // next_ephemeral of the RFC (Linux's table_perturb)
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
	start := (uint32(e.secret.hash3(l, r, uint64(raddr.Port()))) + e.perturb) % n
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
