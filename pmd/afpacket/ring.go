package afpacket

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/pollnet/pollnet/engine"
)

// The kernel's ring layouts (linux/if_packet.h), as offsets.
//
// A receive block starts with struct tpacket_block_desc: version, private
// offset, then struct tpacket_hdr_v1, whose block_status, num_pkts and
// offset_to_first_pkt the port reads. Each frame in it starts with struct
// tpacket3_hdr: the offset of the next frame, a time stamp, the captured and
// the original length, the frame's status, the offsets of the MAC and
// network headers, then the flow hash and VLAN tag.
//
// A transmit slot starts with a struct tpacket3_hdr too, of which the kernel
// reads tp_next_offset (must be 0), tp_len and tp_status; without
// PACKET_TX_HAS_OFF the frame itself starts right after the header,
// TPACKET3_HDRLEN less a struct sockaddr_ll into the slot.
const (
	blkStatus     = 8
	blkNumPkts    = 12
	blkFirstFrame = 16
	blkHeaderLen  = 48 // BLK_PLUS_PRIV(0): the descriptor, 8-byte aligned

	hdrNextOffset = 0
	hdrSnaplen    = 12
	hdrLen        = 16
	hdrStatus     = 20
	hdrMac        = 24
	hdrVLANTCI    = 32
	hdrVLANTPID   = 36
	hdrSize       = unix.SizeofTpacket3Hdr // 48, already TPACKET_ALIGNed

	txData = hdrSize // TPACKET3_HDRLEN - sizeof(struct sockaddr_ll)

	// frameOverhead is what a slot holds beside a frame, with room to
	// spare: on transmit the header (48 bytes); on receive the block's
	// descriptor (48) and the frame's header, sockaddr_ll and alignment
	// in front of the MAC header (82, tpacket_rcv's macoff).
	frameOverhead = 160
)

// rxQueue is one socket's receive side and the socket itself. The ring and
// the cursor into it (cur, pos, left) belong to the goroutine that receives
// from the queue.
type rxQueue struct {
	_         [64]byte
	fd        int
	mem       []byte // the whole mapping: receive ring, then transmit ring
	ring      []byte // the receive ring
	blockSize int
	blocks    int
	cur       int // the block the port reads next, or is reading
	pos       int // offset in the current block of the next frame
	left      int // frames left in the current block; 0: not opened yet
	pool      *engine.Pool
	caches    engine.Caches
	cache     *engine.Cache
	vlan      [4]byte // a tag put back into a frame, built here to stay off the heap
	_         [64]byte
	ctr       engine.QueueCounters
	_         [64]byte
}

// txQueue is one socket's transmit side. The ring and head belong to the
// goroutine that transmits on the queue; its caches, or the caller's
// (SetTxCaches), take back the frames it has copied into the ring.
type txQueue struct {
	_         [64]byte
	fd        int
	ring      []byte
	blockSize int
	frameSize int
	perBlock  int // slots per block
	slots     int
	head      int // the next slot to fill, where the kernel's walk also is
	maxFrame  int
	caches    engine.Caches
	done      *engine.Caches // &caches, or the caller's
	ctr       engine.QueueCounters
	_         [64]byte
}

// openQueue opens one socket on the interface with both rings mapped. The
// socket is bound last, so it receives nothing before its ring is ready.
func openQueue(name string, ifc iface, g geometry) (rq *rxQueue, tq *txQueue, err error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("afpacket %s: socket(AF_PACKET): %w", name, err)
	}
	rq = &rxQueue{fd: fd, blockSize: g.blockSize, blocks: g.blockCount}
	defer func() {
		if err != nil {
			rq.release()
			err = fmt.Errorf("afpacket %s: %w", name, err)
		}
	}()
	for _, o := range []struct {
		name      string
		opt, val  int
		explained string
	}{
		{"PACKET_VERSION", unix.PACKET_VERSION, unix.TPACKET_V3, ""},
		// A malformed transmit slot is skipped, not left to block the ring.
		{"PACKET_LOSS", unix.PACKET_LOSS, 1, ""},
		{"PACKET_QDISC_BYPASS", unix.PACKET_QDISC_BYPASS, 1, ""},
		{"PACKET_IGNORE_OUTGOING", unix.PACKET_IGNORE_OUTGOING, 1, " (needs Linux 4.20)"},
	} {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, o.opt, o.val); err != nil {
			return nil, nil, fmt.Errorf("setsockopt %s: %w%s", o.name, err, o.explained)
		}
	}
	perBlock := g.blockSize / g.frameSize
	req := unix.TpacketReq3{
		Block_size:     uint32(g.blockSize),
		Block_nr:       uint32(g.blockCount),
		Frame_size:     uint32(g.frameSize),
		Frame_nr:       uint32(g.blockCount * perBlock),
		Retire_blk_tov: uint32(g.retireMs),
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return nil, nil, fmt.Errorf("setsockopt PACKET_RX_RING (%d blocks of %d bytes): %w", g.blockCount, g.blockSize, err)
	}
	req.Retire_blk_tov = 0 // the kernel refuses block options on a transmit ring
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_TX_RING, &req); err != nil {
		return nil, nil, fmt.Errorf("setsockopt PACKET_TX_RING (%d blocks of %d bytes): %w (TPACKET_V3 transmit needs Linux 4.11)", g.blockCount, g.blockSize, err)
	}
	size := g.blockSize * g.blockCount
	mem, err := unix.Mmap(fd, 0, 2*size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap rings (%d bytes): %w", 2*size, err)
	}
	rq.mem, rq.ring = mem, mem[:size:size]
	tq = &txQueue{fd: fd, ring: mem[size:], blockSize: g.blockSize, frameSize: g.frameSize,
		perBlock: perBlock, slots: g.blockCount * perBlock, maxFrame: ifc.mtu + ethHeader}
	tq.done = &tq.caches
	sll := unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifc.index}
	if err := unix.Bind(fd, &sll); err != nil {
		return nil, nil, fmt.Errorf("bind to interface %d: %w", ifc.index, err)
	}
	return rq, tq, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// release unmaps the rings and closes the socket.
func (rq *rxQueue) release() error {
	var errs []error
	if rq.mem != nil {
		if err := unix.Munmap(rq.mem); err != nil {
			errs = append(errs, fmt.Errorf("munmap rings: %w", err))
		}
		rq.mem, rq.ring = nil, nil
	}
	if rq.fd >= 0 {
		if err := unix.Close(rq.fd); err != nil {
			errs = append(errs, fmt.Errorf("close socket: %w", err))
		}
		rq.fd = -1
	}
	return errors.Join(errs...)
}

// readKernelStats adds the kernel's drops since the last read to rx_missed:
// PACKET_STATISTICS resets the kernel's counters as it reads them, so two
// readers each add their own share.
func (rq *rxQueue) readKernelStats() {
	if rq.fd < 0 {
		return
	}
	st, err := unix.GetsockoptTpacketStatsV3(rq.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err == nil && st.Drops > 0 {
		rq.ctr.Drops[engine.DropRingFull].Add(uint64(st.Drops))
	}
}

// word is the 32-bit word at off in b, for atomic access to a status the
// kernel writes concurrently. Offsets are multiples of 4 (the layouts
// above; blocks and frames are 16-byte aligned), so the word is aligned.
func word(b []byte, off int) *uint32 {
	_ = b[off+3]
	return (*uint32)(unsafe.Pointer(&b[off]))
}

// u32 and u16 read fields the kernel wrote before it published the status
// that the port loaded atomically, so plain reads see them.
func u32(b []byte, off int) uint32 { return binary.NativeEndian.Uint32(b[off:]) }
func u16(b []byte, off int) uint16 { return binary.NativeEndian.Uint16(b[off:]) }
