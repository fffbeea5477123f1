package afxdp

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// socket is one AF_XDP socket with a UMEM of its own, bound to one queue of
// one interface in copy (XDP_COPY) or zero-copy (XDP_ZEROCOPY) mode, with
// XDP_USE_NEED_WAKEUP.
//
// The UMEM is cut in two: frames [0, n) receive, and cycle fill -> kernel ->
// rx -> us -> fill; frames [n, 2n) transmit, and cycle free -> tx -> kernel
// -> completion -> free. Each ring has n slots, so the fill ring always has
// room for the frames the rx ring hands back, and the tx ring for every free
// transmit frame.
type socket struct {
	fd        int
	umem      []byte // mapped; the kernel pins it at XDP_UMEM_REG
	frameSize uint64
	frames    uint32 // n: receive frames, and transmit frames
	fill      ring[uint64]
	comp      ring[uint64]
	rx        ring[unix.XDPDesc]
	tx        ring[unix.XDPDesc]
	maps      [4][]byte // the rings' mappings: fill, completion, rx, tx
	zeroCopy  bool      // bound in zero-copy mode, as the kernel says (XDP_OPTIONS)

	// failTx, set only by tests before the port is driven, stands in for
	// sendto's answer to a transmit kick, so a test can make the kernel
	// refuse (EBUSY) at will; it returns 0 to let the real sendto run.
	failTx func() unix.Errno
}

func sockopt(fd, name int, p unsafe.Pointer, size uintptr) error {
	_, _, errno := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(name), uintptr(p), size, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

func getsockopt(fd, name int, p unsafe.Pointer, size uintptr) error {
	l := uint32(size)
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(name), uintptr(p), uintptr(unsafe.Pointer(&l)), 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// umemName names the UMEM's memfd, so /proc/PID/maps shows each UMEM.
const umemName = "pollnet-afxdp-umem"

// bindError is the kernel's refusal of the bind itself, after the socket,
// UMEM and rings were set up.
type bindError struct {
	flags uint16
	err   error
}

func (e *bindError) Error() string { return e.err.Error() }
func (e *bindError) Unwrap() error { return e.err }

// openSocket makes the socket, registers and maps its UMEM and rings, puts
// every receive frame on the fill ring and binds it to (ifindex, queue)
// with flags (XDP_COPY or XDP_ZEROCOPY). frames is a power of two, the size
// of every ring. On any error everything it made is released.
func openSocket(ifindex, queue int, frameSize, frames uint32, flags uint16) (s *socket, err error) {
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EAFNOSUPPORT) {
			return nil, fmt.Errorf("afxdp: socket(AF_XDP): %w: the kernel lacks CONFIG_XDP_SOCKETS", err)
		}
		return nil, fmt.Errorf("afxdp: socket(AF_XDP): %w", err)
	}
	s = &socket{fd: fd, frameSize: uint64(frameSize), frames: frames}
	made := s // the error returns below set s to nil before this runs
	defer func() {
		if err != nil {
			made.close()
		}
	}()

	size := 2 * int(frames) * int(frameSize)
	if s.umem, err = mapUmem(size); err != nil {
		return nil, err
	}
	reg := unix.XDPUmemReg{Addr: uint64(uintptr(unsafe.Pointer(&s.umem[0]))), Len: uint64(size), Size: frameSize}
	if err := sockopt(fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg)); err != nil {
		return nil, fmt.Errorf("afxdp: register UMEM (XDP_UMEM_REG, %d frames of %d): %w", 2*frames, frameSize, err)
	}
	for _, opt := range []int{unix.XDP_UMEM_FILL_RING, unix.XDP_UMEM_COMPLETION_RING, unix.XDP_RX_RING, unix.XDP_TX_RING} {
		n := int32(frames)
		if err := sockopt(fd, opt, unsafe.Pointer(&n), 4); err != nil {
			return nil, fmt.Errorf("afxdp: size ring %d to %d: %w", opt, frames, err)
		}
	}
	var off unix.XDPMmapOffsets
	if err := getsockopt(fd, unix.XDP_MMAP_OFFSETS, unsafe.Pointer(&off), unsafe.Sizeof(off)); err != nil {
		return nil, fmt.Errorf("afxdp: read ring offsets (XDP_MMAP_OFFSETS): %w", err)
	}
	if s.fill, s.maps[0], err = mapRing[uint64](fd, unix.XDP_UMEM_PGOFF_FILL_RING, off.Fr, frames, true); err != nil {
		return nil, err
	}
	if s.comp, s.maps[1], err = mapRing[uint64](fd, unix.XDP_UMEM_PGOFF_COMPLETION_RING, off.Cr, frames, false); err != nil {
		return nil, err
	}
	if s.rx, s.maps[2], err = mapRing[unix.XDPDesc](fd, unix.XDP_PGOFF_RX_RING, off.Rx, frames, false); err != nil {
		return nil, err
	}
	if s.tx, s.maps[3], err = mapRing[unix.XDPDesc](fd, unix.XDP_PGOFF_TX_RING, off.Tx, frames, true); err != nil {
		return nil, err
	}

	// Fill before bind, so the first frames find buffers.
	n := s.fill.free(frames)
	for i := uint32(0); i < n; i++ {
		*s.fill.slot(i) = uint64(i) * s.frameSize
	}
	s.fill.submit(n)

	sa := &unix.SockaddrXDP{Flags: flags | unix.XDP_USE_NEED_WAKEUP, Ifindex: uint32(ifindex), QueueID: uint32(queue)}
	if err := unix.Bind(fd, sa); err != nil {
		if errors.Is(err, unix.EBUSY) {
			err = fmt.Errorf("afxdp: bind to ifindex %d queue %d: %w: another socket holds the queue, or one just closed (wait a few seconds)", ifindex, queue, err)
		} else {
			err = fmt.Errorf("afxdp: bind to ifindex %d queue %d: %w", ifindex, queue, err)
		}
		return nil, &bindError{flags: flags, err: err}
	}
	s.zeroCopy = flags&unix.XDP_ZEROCOPY != 0
	var opt uint32
	if err := getsockopt(fd, unix.XDP_OPTIONS, unsafe.Pointer(&opt), 4); err == nil {
		s.zeroCopy = opt&unix.XDP_OPTIONS_ZEROCOPY != 0
	} // before Linux 5.3 there is no XDP_OPTIONS: the flags say, as the bind forced the mode
	return s, nil
}

// mapUmem maps a UMEM of size bytes, shared, from a memfd named umemName
// rather than anonymous memory, so /proc/PID/maps names each UMEM and its
// inode tells one from another (tests check none outlives its socket).
// The mapping keeps the memory once the memfd is closed.
func mapUmem(size int) ([]byte, error) {
	mfd, err := unix.MemfdCreate(umemName, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("afxdp: memfd for UMEM: %w", err)
	}
	defer unix.Close(mfd)
	if err := unix.Ftruncate(mfd, int64(size)); err != nil {
		return nil, fmt.Errorf("afxdp: size UMEM memfd to %d bytes: %w", size, err)
	}
	m, err := unix.Mmap(mfd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("afxdp: map UMEM of %d bytes: %w", size, err)
	}
	return m, nil
}

// mapRing maps one ring at its page offset and views it with the offsets
// the kernel reported.
func mapRing[T desc](fd int, pgoff int64, off unix.XDPRingOffset, n uint32, produce bool) (ring[T], []byte, error) {
	var zero T
	length := int(off.Desc) + int(n)*int(unsafe.Sizeof(zero))
	m, err := unix.Mmap(fd, pgoff, length, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return ring[T]{}, nil, fmt.Errorf("afxdp: map ring at %#x: %w", pgoff, err)
	}
	r := newRing((*uint32)(unsafe.Pointer(&m[off.Producer])), (*uint32)(unsafe.Pointer(&m[off.Consumer])),
		(*uint32)(unsafe.Pointer(&m[off.Flags])), unsafe.Slice((*T)(unsafe.Pointer(&m[off.Desc])), n), produce)
	return r, m, nil
}

// kickTx asks the kernel to send what the tx ring holds: in copy mode it
// transmits in the sendto itself, a batch at a time (xsk_generic_xmit); in
// zero-copy mode the sendto only wakes the driver, which sends from its
// NAPI poll.
func (s *socket) kickTx() unix.Errno {
	if s.failTx != nil {
		if errno := s.failTx(); errno != 0 {
			return errno
		}
	}
	_, _, errno := unix.Syscall6(unix.SYS_SENDTO, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	return errno
}

// kickRx tells the kernel the fill ring has buffers again.
func (s *socket) kickRx() unix.Errno {
	_, _, errno := unix.Syscall6(unix.SYS_RECVFROM, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	return errno
}

// statistics reads the kernel's counters of the socket (XDP_STATISTICS).
func (s *socket) statistics() (unix.XDPStatistics, error) {
	var st unix.XDPStatistics
	err := getsockopt(s.fd, unix.XDP_STATISTICS, unsafe.Pointer(&st), unsafe.Sizeof(st))
	return st, err
}

// close unmaps the rings, closes the socket (which unbinds it and drops
// the kernel's pin on the UMEM), then unmaps the UMEM.
func (s *socket) close() error {
	var errs []error
	for i, m := range s.maps {
		if m != nil {
			if err := unix.Munmap(m); err != nil {
				errs = append(errs, fmt.Errorf("afxdp: unmap ring: %w", err))
			}
			s.maps[i] = nil
		}
	}
	s.fill, s.comp, s.rx, s.tx = ring[uint64]{}, ring[uint64]{}, ring[unix.XDPDesc]{}, ring[unix.XDPDesc]{}
	if s.fd >= 0 {
		if err := unix.Close(s.fd); err != nil {
			errs = append(errs, fmt.Errorf("afxdp: close socket: %w", err))
		}
		s.fd = -1
	}
	if s.umem != nil {
		if err := unix.Munmap(s.umem); err != nil {
			errs = append(errs, fmt.Errorf("afxdp: unmap UMEM: %w", err))
		}
		s.umem = nil
	}
	return errors.Join(errs...)
}
