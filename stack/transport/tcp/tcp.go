// Package tcp is TCP connections (RFC 9293): the state machine, the send
// and receive paths, their timers, listeners with their SYN and accept
// queues, and the table that finds a segment's connection. The wire format
// lives in stack/header/tcp, and the parts a connection is made of in the
// packages below this one: seq (sequence arithmetic and RFC 6528 initial
// numbers), sndq (the send and retransmission queue of mbuf references),
// ofo (out-of-order data), sack (RFC 6675 recovery and RACK-TLP), rtt
// (RFC 6298), cc (Reno and CUBIC), cookie (SYN cookies) and challenge
// (RFC 5961's challenge-ACK limits).
//
// Read first: RFC 9293 section 3.10 (event processing), RFC 5961 (blind
// in-window attacks), RFC 7323 (window scale, timestamps, PAWS), and Linux's
// net/ipv4/tcp_input.c (tcp_rcv_state_process, tcp_rcv_established),
// tcp_output.c (tcp_write_xmit) and tcp_timer.c.
//
// Concurrency: a connection belongs to one shard of its stack, the one its
// segments arrive on, and all of its protocol state is guarded by that
// shard's lock (Shard.Lock). The shard's loop holds it while it runs a burst
// or its timers; an application goroutine takes it for the short steps of a
// read or a write, never while it copies payload: a write copies into
// buffers of the connection's own before it takes the lock, a read takes
// whole buffers off the receive queue and copies out after letting go.
// Readiness the application waits on is mirrored in atomics so waiters test
// it without the lock.
//
// Not here yet: IPv6, urgent data (the urgent pointer is ignored), TCP Fast
// Open, ECN, MTU probing, GSO/TSO and GRO, sendfile, SO_REUSEPORT for
// listeners, TCP_CORK and MSG_MORE, the TCP_INFO of Linux in full.
package tcp

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/network/route"
	"github.com/pollnet/pollnet/stack/socket"
	"github.com/pollnet/pollnet/stack/timer"
	"github.com/pollnet/pollnet/stack/transport/tcp/ofo"
)

// Errors. Each is the errno a Linux socket returns for the same failure, so
// errors.Is matches either.
var (
	ErrAddrInUse    error = syscall.EADDRINUSE
	ErrAddrNotAvail error = syscall.EADDRNOTAVAIL
	ErrRefused      error = syscall.ECONNREFUSED
	ErrReset        error = syscall.ECONNRESET
	ErrTimedOut     error = syscall.ETIMEDOUT
	ErrNoRoute      error = syscall.EHOSTUNREACH
	ErrNotConnected error = syscall.ENOTCONN
	ErrPipe         error = syscall.EPIPE
	ErrNoBuffers    error = syscall.ENOBUFS
	ErrInvalid      error = syscall.EINVAL
)

// errAborted is a connection closed by Close of its stack.
var errAborted = fmt.Errorf("tcp: the stack was closed: %w", net.ErrClosed)

// Config holds the stack-wide TCP settings, named after Linux's sysctls.
// A zero field takes its default.
type Config struct {
	// RMem and WMem are tcp_rmem and tcp_wmem: the least, the initial and
	// the largest receive and send buffer in bytes. Buffers start at the
	// middle value and auto-tune up to the last.
	RMem, WMem [3]int
	// Mem is tcp_mem in bytes: above Mem[1] the stack is under memory
	// pressure (buffers stop growing, out-of-order data is pruned); above
	// Mem[2] new receive data is dropped.
	Mem [3]int
	// TimeWait is how long a closed connection stays in TIME-WAIT (2 MSL;
	// Linux's TCP_TIMEWAIT_LEN, 60 s).
	TimeWait time.Duration
	// MaxTimeWait bounds the TIME-WAIT entries (tcp_max_tw_buckets); past
	// it a closing connection skips TIME-WAIT and it is counted.
	MaxTimeWait int
	// FinTimeout is how long an orphaned connection waits in FIN-WAIT-2
	// for the peer's FIN (tcp_fin_timeout).
	FinTimeout time.Duration
	// SynBacklog bounds the half-open connections of a listener
	// (tcp_max_syn_backlog); past it SYN cookies answer, if enabled.
	SynBacklog int
	// SomaxConn bounds a listener's accept queue (somaxconn).
	SomaxConn int
	// NoSyncookies turns SYN cookies off (tcp_syncookies=0): a full SYN
	// queue then drops SYNs.
	NoSyncookies bool
	// SynRetries and SynackRetries are tcp_syn_retries and
	// tcp_synack_retries; Retries2 is tcp_retries2, the RTOs after which an
	// established connection is given up.
	SynRetries, SynackRetries, Retries2 int
	// Keepalive time, interval and probes (tcp_keepalive_time,
	// tcp_keepalive_intvl, tcp_keepalive_probes) for sockets with
	// SO_KEEPALIVE.
	KeepaliveTime, KeepaliveIntvl time.Duration
	KeepaliveProbes               int
	// Congestion is the default congestion control (tcp_congestion_control).
	Congestion string
	// ChallengeACKLimit is tcp_challenge_ack_limit, challenge ACKs per
	// second across the stack.
	ChallengeACKLimit int
	// NoTimestamps and NoSACK turn the options off (tcp_timestamps=0,
	// tcp_sack=0).
	NoTimestamps, NoSACK bool
	// DelAckMin and DelAckMax bound the delayed-ACK timer (TCP_DELACK_MIN,
	// TCP_DELACK_MAX).
	DelAckMin, DelAckMax time.Duration
}

// Defaults, Linux's.
const (
	DefaultTimeWait    = 60 * time.Second
	DefaultFinTimeout  = 60 * time.Second
	DefaultSynBacklog  = 1024
	DefaultSomaxConn   = 4096
	DefaultMaxTimeWait = 262144
)

func (c *Config) setDefaults() {
	def3 := func(v *[3]int, d [3]int) {
		if *v == ([3]int{}) {
			*v = d
		}
	}
	def3(&c.RMem, [3]int{4096, 131072, 6 << 20})
	def3(&c.WMem, [3]int{4096, 16384, 4 << 20})
	def3(&c.Mem, [3]int{64 << 20, 96 << 20, 128 << 20})
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	defd(&c.TimeWait, DefaultTimeWait)
	defd(&c.FinTimeout, DefaultFinTimeout)
	defd(&c.KeepaliveTime, 2*time.Hour)
	defd(&c.KeepaliveIntvl, 75*time.Second)
	defd(&c.DelAckMin, 40*time.Millisecond)
	defd(&c.DelAckMax, 200*time.Millisecond)
	defi := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defi(&c.MaxTimeWait, DefaultMaxTimeWait)
	defi(&c.SynBacklog, DefaultSynBacklog)
	defi(&c.SomaxConn, DefaultSomaxConn)
	defi(&c.SynRetries, 6)
	defi(&c.SynackRetries, 5)
	defi(&c.Retries2, 15)
	defi(&c.KeepaliveProbes, 9)
	defi(&c.ChallengeACKLimit, 1000)
	if c.Congestion == "" {
		c.Congestion = "cubic"
	}
}

// Check reports a configuration no stack could run with.
func (c Config) Check() error {
	for _, v := range [][3]int{c.RMem, c.WMem} {
		if v != ([3]int{}) && (v[0] <= 0 || v[0] > v[1] || v[1] > v[2]) {
			return errors.New("tcp: buffer sizes must be min <= default <= max, all positive")
		}
	}
	if c.Mem != ([3]int{}) && (c.Mem[0] <= 0 || c.Mem[0] > c.Mem[1] || c.Mem[1] > c.Mem[2]) {
		return errors.New("tcp: tcp_mem must be low <= pressure <= high, all positive")
	}
	if c.TimeWait < 0 || c.FinTimeout < 0 {
		return errors.New("tcp: TIME-WAIT and FIN timeout must not be negative")
	}
	return nil
}

// Counters are TCP's counters, named as Linux's /proc/net/snmp (Tcp) and
// /proc/net/netstat (TcpExt) name them. Each shard keeps its own, under its
// lock; the stack sums them.
type Counters struct {
	ActiveOpens, PassiveOpens, AttemptFails, EstabResets uint64
	InSegs, OutSegs, RetransSegs, InErrs, OutRsts        uint64
	InCsumErrors                                         uint64

	ListenOverflows, ListenDrops                                           uint64
	SyncookiesSent, SyncookiesRecv, SyncookiesFailed                       uint64
	TCPSackRecovery, TCPRenoRecovery, TCPLossProbes                        uint64
	TCPLostRetransmit, TCPTimeouts, TCPFastRetrans                         uint64
	TCPChallengeACK, TCPSYNChallenge                                       uint64
	TCPAbortOnData, TCPAbortOnClose, TCPAbortOnTimeout, TCPAbortOnLinger   uint64
	TCPAbortFailed                                                         uint64
	DelayedACKs, TCPOFOQueue, TCPOFODrop, TCPOFOMerge, TCPRcvQDrop         uint64
	PAWSEstab, TCPACKSkippedSeq, TCPACKSkippedChallenge                    uint64
	TCPDSACKRecv, TCPSACKReneging, TCPZeroWindowDrop, TCPWantZeroWindowAdv uint64
	TCPTimeWaitOverflow, TW, TCPKeepAlive, TCPSpuriousRTOs                 uint64
	TCPMemoryPressures, TCPRcvPruned, TCPOrigDataSent, TCPHPHits           uint64
}

// Shard is a shard of the stack as its TCP connections see it. Every method
// but Lock, Unlock and ID is called with the shard's lock held.
type Shard interface {
	// ID is the shard's number.
	ID() int
	// Lock takes the shard's lock, for an application goroutine.
	Lock()
	// Unlock sends what was queued under the lock, lets go, and tells
	// the connections marked ready (Conn.Notify).
	Unlock()
	// Now is the shard's clock, nanoseconds, monotonic.
	Now() int64
	// Wheel is the shard's timer wheel; Moved says a timer was armed or
	// cancelled on it.
	Wheel() *timer.Wheel
	Moved()
	// Caches are the shard's mbuf caches, Pool the stack's packet pool.
	Caches() *engine.Caches
	Pool() *engine.Pool
	// Output sends a segment (the TCP header written but for its
	// checksum, headroom for IPv4 and Ethernet) from src to dst with IPv4
	// ID id and Don't Fragment, looking the route up in rc; it fills the
	// checksum or has the port fill it. It takes m.
	Output(rc *route.Cache, src, dst [4]byte, id uint16, m engine.Mbuf) error
	// Counters are the shard's TCP counters.
	Counters() *Counters
	// MarkReady queues c to be told of its events after the lock is let go.
	MarkReady(c *Conn)
}

// Host is the stack instance as TCP sees it. Its methods are safe to call
// from any goroutine.
type Host interface {
	// Shards are the stack's shards, fixed for its life.
	Shards() []Shard
	// ShardOf is the shard on which a segment from src:sport to dst:dport
	// is received (the RSS prediction, or the software steering).
	ShardOf(src, dst [4]byte, sport, dport uint16) int
	// Route is the source address and MTU of the path to dst, or false
	// when there is no route.
	Route(dst [4]byte) (src [4]byte, mtu int, ok bool)
	// Local reports an address of ours (a listener may bind to it).
	Local(a [4]byte) bool
	// Counters count the parks and wake-ups of waiting goroutines.
	SocketCounters() *socket.Counters
	// FreeRead frees a received packet a reader is done with.
	FreeRead(m engine.Mbuf)
	// Held is the stack-wide bound on held receive buffers.
	Held() ofo.Accountant
}
