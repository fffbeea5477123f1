// Package udp is UDP sockets (RFC 768): the table of bound sockets and its
// lookup, the receive queue a shard delivers into, and the send path that
// builds datagrams and hands them to the stack. The wire format lives in
// stack/header/udp; the stack instance that drives the sockets implements
// Stack.
//
// Read first: RFC 768 (the whole of it is two pages), RFC 1122 section
// 4.1.3 (what a host must do), RFC 6056 (ephemeral ports, in package
// ephemeral), and Linux's net/ipv4/udp.c, whose udp4_lib_lookup,
// __udp4_lib_err and udp_sendmsg are modelled here.
//
// The stack is sharded: several shards deliver datagrams concurrently, and
// applications send from their own goroutines. So nothing here takes a lock
// that two shards share on the per-packet path. Lookups read an immutable
// snapshot of the table that binds and closes replace (Table); a socket's
// receive queue has a small lock of its own; its send side has another,
// under which the payload is copied into buffers from the socket's own
// caches, never under a stack or shard lock.
//
// Not here yet: IPv6, multicast, SO_BROADCAST (broadcasts are sent like
// any datagram), IP_RECVERR (only a connected socket learns of ICMP errors,
// and only of hard ones), corking (UDP_CORK, MSG_MORE), GSO, and the
// per-socket send buffer limit (SO_SNDBUF): a socket sends as long as the
// pool has buffers.
package udp

import (
	"syscall"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/header/ipv4"
	udpheader "github.com/pollnet/pollnet/stack/header/udp"
	"github.com/pollnet/pollnet/stack/network/route"
	"github.com/pollnet/pollnet/stack/socket"
)

// MaxPayload is the largest datagram a socket sends.
const MaxPayload = ipv4.MaxTotalLen - ipv4.HeaderLen - udpheader.HeaderLen

// AnyShard in Options.Shard leaves a socket unbound to any shard.
const AnyShard = -1

// Errors of sockets. Each is the errno a Linux socket returns for the same
// failure, so errors.Is matches either, and returning one allocates nothing.
var (
	ErrAddrInUse    error = syscall.EADDRINUSE    // the port is taken (bind)
	ErrAddrNotAvail error = syscall.EADDRNOTAVAIL // not one of our addresses (bind)
	ErrNotConnected error = syscall.ENOTCONN      // Write on a socket with no peer
	ErrTooBig       error = syscall.EMSGSIZE      // a datagram beyond MaxPayload
	ErrNoRoute      error = syscall.EHOSTUNREACH  // no route to the destination
	ErrNoBuffers    error = syscall.ENOBUFS       // the pool is empty
	ErrBadShard     error = syscall.EINVAL        // Options.Shard names no shard
)

// Stack is what a socket needs from its stack instance; the root package
// stack implements it. Every method is safe to call from any goroutine.
type Stack interface {
	// Pool is where a socket's send buffers come from. The socket keeps
	// its own engine.Caches of it, guarded by its send mutex.
	Pool() *engine.Pool
	// Routes are the stack's routing tables, read as lock-free snapshots.
	Routes() *route.Routes
	// Source is the source address of a datagram to dst along r
	// (fib_result_prefsrc): dst itself on a local route, else the route's
	// preferred source, else its device's address.
	Source(r route.Result, dst [4]byte) [4]byte
	// Output sends finished UDP datagrams from src to dst, IP protocol
	// UDP, through shard (see ShardOf). Each mbuf holds the UDP header
	// and the payload, with headroom in front for IPv4 and Ethernet; its
	// checksum field holds the pseudo-header sum, with
	// engine.FlagTxL4Csum: Output finishes the checksum, or leaves it to a
	// device that can fill it. rc is the socket's route cache, nil for a send that is
	// not to a connected socket's peer. Output takes every mbuf whatever
	// happens: it returns how many it accepted, the first of them in
	// order, and the error that stopped it (no route, no buffers), or
	// net.ErrClosed once the stack is closing.
	Output(shard int, rc *route.Cache, src, dst [4]byte, ms []engine.Mbuf) (int, error)
	// Shards is the number of shards, fixed for the stack's life.
	Shards() int
	// ShardOf is the shard on which a datagram from src:sport to dst:dport
	// is received (the RSS prediction). A socket sends a flow through the
	// shard its replies land on, or through the shard it is bound to.
	ShardOf(src, dst [4]byte, sport, dport uint16) int
	// BusyPoll is how a new socket's blocking reads wait: spinning (true,
	// the default in poll mode) or parking.
	BusyPoll() bool
	// Counters count the parks, wake-ups and spins of the stack's sockets.
	Counters() *socket.Counters
	// FreeRead frees a received packet once a reader is done with it.
	FreeRead(m engine.Mbuf)
}

// Options are a socket's settings at open.
type Options struct {
	// ReusePort lets several sockets share a local address and port
	// (SO_REUSEPORT): every socket on it must set it. Datagrams are spread
	// over the group by flow hash, each flow to one socket.
	ReusePort bool
	// Shard binds the socket to a shard (SO_INCOMING_CPU): in a reuseport
	// group it is preferred for the datagrams that shard receives, and it
	// sends through that shard. AnyShard (-1) binds it to none. Note that
	// the zero value is shard 0.
	Shard int
	// RecvBuffer is how many bytes the receive queue may hold, counted as
	// whole buffers (SO_RCVBUF); 0 takes the table's default.
	RecvBuffer int
}
