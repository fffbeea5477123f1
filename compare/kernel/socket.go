package kernel

import (
	"errors"
	"fmt"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The kernel peer talks to sockets with raw system calls, not package net:
// blocking calls with SO_RCVTIMEO/SO_SNDTIMEO, no epoll registration and no
// Go netpoller in between, so the figures are the kernel's stack as a C
// program would see it, plus the Go runtime's syscall entry and exit.

// socket opens an IPv4 socket of type typ inside network namespace ns ("" is
// our own) and prepares it with setup (options, bind, connect, listen).
func socket(ns string, typ int, setup func(fd int) error) (int, error) {
	fd := -1
	err := inNetns(ns, func() error {
		s, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("socket: %w", err)
		}
		if setup != nil {
			if err := setup(s); err != nil {
				unix.Close(s)
				return err
			}
		}
		fd = s
		return nil
	})
	return fd, err
}

// setTimeout bounds every blocking receive (SO_RCVTIMEO, also accept) or
// send (SO_SNDTIMEO, also connect) so a load loop can notice it should stop.
func setTimeout(fd, opt int, d time.Duration) error {
	tv := unix.NsecToTimeval(d.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, opt, &tv); err != nil {
		return fmt.Errorf("setsockopt timeout: %w", err)
	}
	return nil
}

// setBuffer asks for a socket buffer of size bytes, past the rmem_max and
// wmem_max caps when root (the *FORCE options), so the kernel baseline is not
// held back by a default sysctl. It returns the size the kernel granted.
func setBuffer(fd, forceOpt, opt, size int) int {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, forceOpt, size); err != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt, size)
	}
	got, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, opt)
	if err != nil {
		return 0
	}
	return got
}

// setCongestion names the TCP congestion control of one socket. Both ends
// get it: this machine's default is bbr, and cubic more than doubles the
// loopback figure, so an unnamed algorithm makes numbers incomparable.
func setCongestion(fd int, cc string) error {
	if err := unix.SetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION, cc); err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EPERM) {
			return skipf("TCP congestion control %q not available here (%v): see /proc/sys/net/ipv4/tcp_allowed_congestion_control", cc, err)
		}
		return fmt.Errorf("setsockopt TCP_CONGESTION %s: %w", cc, err)
	}
	return nil
}

// congestion reads back the congestion control a socket really uses.
func congestion(fd int) (string, error) {
	return unix.GetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION)
}

// acceptListener opens a TCP listener with SO_REUSEADDR on a port the kernel
// picks at the topology's receive address, in its namespace, for an accept
// loop that polls: reads time out after every. A cc other than "" names the
// congestion control, which accepted sockets inherit. It returns the socket
// and the address to connect to; on error nothing is left open.
func acceptListener(topo *topology, cc string, every time.Duration, backlog int) (int, *unix.SockaddrInet4, error) {
	ln, err := socket(topo.rxNS, unix.SOCK_STREAM, func(fd int) error {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return err
		}
		if cc != "" {
			if err := setCongestion(fd, cc); err != nil {
				return err
			}
		}
		if err := setTimeout(fd, unix.SO_RCVTIMEO, every); err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: topo.rxAddr}); err != nil {
			return fmt.Errorf("bind: %w", err)
		}
		return unix.Listen(fd, backlog)
	})
	if err != nil {
		return -1, nil, fmt.Errorf("listener: %w", err)
	}
	port, err := boundPort(ln)
	if err != nil {
		unix.Close(ln)
		return -1, nil, err
	}
	return ln, &unix.SockaddrInet4{Addr: topo.rxAddr, Port: port}, nil
}

// boundPort is the port the kernel picked for a socket bound to port 0.
func boundPort(fd int) (int, error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return 0, fmt.Errorf("getsockname: %w", err)
	}
	in, ok := sa.(*unix.SockaddrInet4)
	if !ok {
		return 0, fmt.Errorf("getsockname: not IPv4: %T", sa)
	}
	return in.Port, nil
}

// mmsghdr is struct mmsghdr from sendmmsg(2): a msghdr and the byte count
// the kernel fills in. Go pads it like C does, to the msghdr's alignment.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// sendBatch is a reusable sendmmsg vector: batch messages that all point at
// one payload, for a connected socket (no address per message).
func sendBatch(payload []byte, batch int) []mmsghdr {
	msgs := make([]mmsghdr, batch)
	iov := make([]unix.Iovec, batch)
	for i := range msgs {
		iov[i].Base = &payload[0]
		iov[i].SetLen(len(payload))
		msgs[i].hdr.Iov = &iov[i]
		msgs[i].hdr.SetIovlen(1)
	}
	return msgs
}

// recvBatch is a reusable recvmmsg vector of batch buffers of size bytes.
// The messages point at the iovecs and buffers, which keeps them alive.
func recvBatch(size, batch int) []mmsghdr {
	bufs := make([]byte, size*batch)
	msgs := make([]mmsghdr, batch)
	iov := make([]unix.Iovec, batch)
	for i := range msgs {
		iov[i].Base = &bufs[i*size]
		iov[i].SetLen(size)
		msgs[i].hdr.Iov = &iov[i]
		msgs[i].hdr.SetIovlen(1)
	}
	return msgs
}

// sendmmsg sends up to len(msgs) datagrams in one system call; x/sys/unix
// has no wrapper for it.
func sendmmsg(fd int, msgs []mmsghdr) (int, error) {
	n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// recvmmsg receives up to len(msgs) datagrams in one system call. With
// MSG_WAITFORONE it blocks (up to SO_RCVTIMEO) for the first only.
func recvmmsg(fd int, msgs []mmsghdr, flags int) (int, error) {
	n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), uintptr(flags), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// transient reports errors a load loop waits out rather than fails on: a
// timeout that lets it look at its stop flag, a signal, a full device queue,
// or the ICMP "port unreachable" a UDP sender hears before its receiver
// binds or after it closes.
func transient(err error) bool {
	return errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) ||
		errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.ECONNREFUSED)
}
