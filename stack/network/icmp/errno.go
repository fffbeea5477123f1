package icmp

import (
	"syscall"

	header "github.com/pollnet/pollnet/stack/header/icmp"
)

// Errno is what a socket reports for an ICMP error, and whether the error
// is hard: the peer or a router says the flow cannot work, rather than a
// condition that may pass (RFC 1122 4.1.3.3). The mapping is Linux's
// icmp_err_convert; ok is false for messages no socket is told of.
func Errno(typ, code uint8) (errno syscall.Errno, hard, ok bool) {
	switch typ {
	case header.TypeDestUnreachable:
		if int(code) >= len(unreachErrnos) {
			return 0, false, false
		}
		u := unreachErrnos[code]
		return u.errno, u.hard, true
	case header.TypeTimeExceeded:
		return syscall.EHOSTUNREACH, false, true
	case header.TypeParameterProblem:
		return syscall.EPROTO, true, true
	}
	// Source quench is deprecated (RFC 6633); redirects change routes,
	// which we do not take from the wire; the rest are unknown.
	return 0, false, false
}

// unreachErrnos maps destination unreachable codes 0..15.
var unreachErrnos = [...]struct {
	errno syscall.Errno
	hard  bool
}{
	{syscall.ENETUNREACH, false},  // 0 net unreachable
	{syscall.EHOSTUNREACH, false}, // 1 host unreachable
	{syscall.ENOPROTOOPT, true},   // 2 protocol unreachable
	{syscall.ECONNREFUSED, true},  // 3 port unreachable
	{syscall.EMSGSIZE, false},     // 4 fragmentation needed: a path MTU, not a failure
	{syscall.EOPNOTSUPP, false},   // 5 source route failed
	{syscall.ENETUNREACH, true},   // 6 network unknown
	{syscall.EHOSTDOWN, true},     // 7 host unknown
	{syscall.ENONET, true},        // 8 source host isolated
	{syscall.ENETUNREACH, true},   // 9 network administratively prohibited
	{syscall.EHOSTUNREACH, true},  // 10 host administratively prohibited
	{syscall.ENETUNREACH, false},  // 11 network unreachable for TOS
	{syscall.EHOSTUNREACH, false}, // 12 host unreachable for TOS
	{syscall.EHOSTUNREACH, true},  // 13 communication administratively prohibited
	{syscall.EHOSTUNREACH, true},  // 14 host precedence violation
	{syscall.EHOSTUNREACH, true},  // 15 precedence cutoff in effect
}
