package udp

import (
	"net/netip"
	"syscall"

	"github.com/pollnet/pollnet/stack/siphash"
)

// Lookup finds the socket for a datagram from src to dst that arrived on
// shard, with the port's flow hash (0 for none), or nil. It prefers the
// most specific binding: connected to the sender, then bound to the
// address, then to any address (the scoring of udp4_lib_lookup). In a
// reuseport group it prefers the members bound to shard, and picks among
// them, or else among all members, by hash, so that a flow sticks to one
// socket (reuseport_select_sock). It takes no lock and allocates nothing.
func (t *Table) Lookup(src, dst netip.AddrPort, shard int, hash uint32) *Conn {
	if !src.Addr().Is4() || !dst.Addr().Is4() {
		return nil
	}
	e := t.entry(dst.Port())
	if e == nil {
		return nil
	}
	d, s, sport := addr4(dst.Addr()), addr4(src.Addr()), src.Port()
	var best *binding
	bestScore := -1
	for _, g := range e.binds {
		score := 0
		if !g.lany {
			if g.laddr != d {
				continue
			}
			score += 2
		}
		if g.connected {
			if g.raddr != s || g.rport != sport {
				continue
			}
			score += 4
		}
		if score > bestScore {
			best, bestScore = g, score
		}
	}
	if best == nil {
		return nil
	}
	ms := best.members
	if len(ms) == 1 {
		return ms[0]
	}
	if shard >= 0 && shard < len(best.byShard) && len(best.byShard[shard]) > 0 {
		if ms = best.byShard[shard]; len(ms) == 1 {
			return ms[0]
		}
	}
	if hash == 0 {
		hash = uint32(t.key.Hash3(uint64(s)<<32|uint64(d), uint64(sport)<<16|uint64(dst.Port()), siphash.TagReusePort))
	}
	// The high bits of the hash, scaled (reciprocal_scale): a port's RSS
	// spreads flows over queues by the low bits, so flows that share a
	// queue still spread over the group.
	return ms[uint64(hash)*uint64(len(ms))>>32]
}

// Err tells the socket that owns a flow of an ICMP error about a datagram
// it sent from local to remote (__udp4_lib_err). Only a connected socket
// whose peer is remote is told, and only of a hard error, as Linux does
// for a socket without IP_RECVERR: an unconnected socket could not tell
// which of its peers the error is about. It returns the socket told (the
// caller notifies it once its lock is released), and whether any socket
// owns the flow: a caller counts an error about none in ICMPInErrors.
func (t *Table) Err(local, remote netip.AddrPort, errno syscall.Errno, hard bool) (told *Conn, owned bool) {
	c := t.Lookup(remote, local, AnyShard, 0)
	if c == nil {
		return nil, false
	}
	if !hard || c.raddr != remote {
		return nil, true
	}
	c.sockErr.Store(uint32(errno))
	return c, true
}
