// Package ephemeral picks local ports for sockets that bind to port 0, by
// RFC 6056's algorithm 3 (simple hash-based selection), as Linux's
// __inet_hash_connect does with inet_sk_port_offset.
//
// Read first: RFC 6056 sections 2 (why ports must be hard to guess) and
// 3.3.3 (the algorithm).
package ephemeral

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"

	"github.com/pollnet/pollnet/stack/siphash"
)

// Range is the inclusive range from which ephemeral ports are picked
// (net.ipv4.ip_local_port_range).
type Range struct{ Low, High uint16 }

// DefaultRange is Linux's default ip_local_port_range.
var DefaultRange = Range{Low: 32768, High: 60999}

// UnprivilegedPortStart is the lowest port a range may start at, as Linux
// refuses a range reaching below ip_unprivileged_port_start.
const UnprivilegedPortStart = 1024

func (r Range) String() string { return fmt.Sprintf("%d-%d", r.Low, r.High) }

// Validate checks that the range is usable.
func (r Range) Validate() error {
	if r.Low < UnprivilegedPortStart || r.High < r.Low {
		return fmt.Errorf("ephemeral: local port range %v: want %d <= low <= high <= 65535", r, UnprivilegedPortStart)
	}
	return nil
}

// ErrExhausted says the whole range was searched and every port is taken.
var ErrExhausted = errors.New("no free port in the local port range")

// Picker picks ports: each flow starts its search at a secret offset of its
// own, moved on by a counter, and searches the whole range, wrapping. It is
// not safe for concurrent use: its owner (a port table) guards it with the
// lock under which it binds.
type Picker struct {
	rng     Range
	key     siphash.Key // the stack's secret, used with siphash.TagPort
	perturb uint32      // next_ephemeral of the RFC (Linux's table_perturb)
}

// NewPicker returns a picker over r keyed by the stack's secret key.
func NewPicker(r Range, key siphash.Key) (*Picker, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &Picker{rng: r, key: key}, nil
}

// Range is the range the picker picks from.
func (p *Picker) Range() Range { return p.rng }

// Pick returns a port of the range for which free is true, or ErrExhausted.
// raddr is the zero AddrPort for an unconnected socket, whose offset then
// depends on the local address alone.
func (p *Picker) Pick(laddr netip.Addr, raddr netip.AddrPort, free func(uint16) bool) (uint16, error) {
	n := uint32(p.rng.High) - uint32(p.rng.Low) + 1
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
	start := (uint32(p.key.Hash3(l, r, uint64(raddr.Port())|siphash.TagPort<<16)) + p.perturb) % n
	for i := uint32(0); i < n; i++ {
		port := p.rng.Low + uint16((start+i)%n)
		if !free(port) {
			continue
		}
		// Move the counter on by the ports tried, and by a small random
		// step when that is less: the next flow to the same peer cannot
		// be told from this one (Linux added this after port offsets
		// were used to track devices).
		p.perturb += max(i, rand.Uint32N(8)) + 1
		return port, nil
	}
	return 0, ErrExhausted
}
