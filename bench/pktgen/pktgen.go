// Package pktgen is the byte-level half of a packet generator and sink, in
// the spirit of Linux pktgen and DPDK's pktgen: it builds Ethernet II / IPv4 /
// UDP test frames carrying a sequence number and a send timestamp, parses them
// back on the receive side, accounts for loss, duplicates and reordering, and
// records one-way latency in an allocation-free histogram.
//
// It knows nothing of mbufs or ports. Everything works on []byte frames so the
// caller can place them in whatever packet memory it has. The per-packet
// functions (Template.Fill, Template.Stamp, Parse, Sink.Observe,
// Sink.ObserveFrame, Histogram.Record, Pacer.Allow) allocate nothing.
//
// # Frame sizes
//
// A frame size here is the length of the Ethernet frame as placed in a
// buffer, without the 4-byte FCS that the NIC appends on the wire. The
// "64-byte frames" of benchmark speech (RFC 2544) are therefore FrameSize 60:
// 60 bytes in the buffer plus 4 bytes of FCS. Sizes 60..9000 are accepted.
//
// # Frame layout
//
//	offset  len  field
//	0       6    destination MAC
//	6       6    source MAC
//	12      2    EtherType 0x0800 (IPv4, no VLAN tag)
//	14      20   IPv4 header: IHL 5, DF clear, TTL 64, protocol 17, ID = uint16(seq)
//	34      8    UDP header: source port = SrcPort + seq%Flows
//	42      8    sequence number, little-endian
//	50      8    send timestamp in nanoseconds, little-endian
//	58      ...  payload filler (byte i holds i&0xff)
//
// The stamp is little-endian because it is private to generator and sink and
// that is the native order of the machines this runs on (amd64, arm64): one
// plain store and one plain load, no byte swap. Header fields are in network
// byte order as the protocols require.
package pktgen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

// Frame geometry. See the package comment for the layout.
const (
	// MinFrameSize is the shortest frame, without FCS: the 64-byte Ethernet
	// minimum on the wire less the 4-byte FCS.
	MinFrameSize = 60
	// MaxFrameSize is the longest frame, without FCS: a 9000-byte jumbo frame.
	MaxFrameSize = 9000
	// FCSLen is the Ethernet frame check sequence the NIC adds on the wire;
	// wire size = frame size + FCSLen.
	FCSLen = 4
	// HeaderLen is the length of the Ethernet, IPv4 and UDP headers together.
	HeaderLen = ethLen + ipv4Len + udpLen
	// StampOffset is where the sequence number starts; the timestamp follows
	// it at StampOffset+8.
	StampOffset = HeaderLen
	// StampLen is the length of the stamp: sequence number and timestamp.
	StampLen = 16
	// MaxFlows is the largest number of flows: one per UDP source port.
	MaxFlows = 65535
)

const (
	ethLen  = 14
	ipv4Len = 20
	udpLen  = 8

	offEtherType = 12
	offIP        = ethLen
	offIPLen     = offIP + 2
	offIPID      = offIP + 4
	offIPFrag    = offIP + 6
	offIPProto   = offIP + 9
	offIPCsum    = offIP + 10
	offIPSrc     = offIP + 12
	offIPDst     = offIP + 16
	offUDP       = offIP + ipv4Len
	offUDPSrc    = offUDP
	offUDPDst    = offUDP + 2
	offUDPLen    = offUDP + 4
	offUDPCsum   = offUDP + 6
	offSeq       = StampOffset
	offTS        = StampOffset + 8
	stampEnd     = StampOffset + StampLen

	etherTypeIPv4 = 0x0800
	protoUDP      = 17
	ttl           = 64
)

// FlowConfig describes the frames a Template builds. IPv4 only.
type FlowConfig struct {
	SrcMAC, DstMAC   [6]byte
	SrcIP, DstIP     [4]byte
	SrcPort, DstPort uint16
	// FrameSize is the frame length in bytes without FCS, 60..9000.
	FrameSize int
	// Flows > 1 spreads frames over that many UDP source ports, SrcPort up
	// to SrcPort+Flows-1, chosen by seq % Flows, so that RSS hashing spreads
	// them over receive queues. 0 means 1.
	Flows int
	// UDPChecksum fills in the UDP checksum. Off, the field is 0, which IPv4
	// allows and which costs nothing. On, Fill and Stamp compute it for
	// every frame by adding the source port and stamp to a sum precomputed
	// over the rest of the template: a constant 1-2 ns per frame whatever the
	// frame size, rather than a pass over the payload.
	UDPChecksum bool
}

// DefaultFlowConfig returns a single-flow configuration of the given frame
// size between addresses of the 198.18.0.0/15 benchmarking range (RFC 2544)
// and locally administered MACs, to the discard port.
func DefaultFlowConfig(frameSize int) FlowConfig {
	return FlowConfig{
		SrcMAC:    [6]byte{0x02, 0, 0, 0, 0, 0x01},
		DstMAC:    [6]byte{0x02, 0, 0, 0, 0, 0x02},
		SrcIP:     [4]byte{198, 18, 0, 1},
		DstIP:     [4]byte{198, 19, 0, 1},
		SrcPort:   1024,
		DstPort:   9,
		FrameSize: frameSize,
		Flows:     1,
	}
}

// Template is a prebuilt frame that Fill copies and stamps. It is read-only
// after NewTemplate, so one Template may be shared by several goroutines.
type Template struct {
	frame    []byte
	srcPort  uint16
	flows    uint64
	flowMask uint64 // flows-1 when flows is a power of two, else 0
	udpCsum  bool
	// udpBase is the ones' complement sum, folded to 16 bits, of the UDP
	// pseudo-header, header and payload with the source port, checksum and
	// stamp taken as zero: the part of the checksum no frame changes.
	udpBase uint32
	ipCsum  uint16 // the template's IPv4 header checksum, for ID 0
}

// NewTemplate validates cfg and builds the frame it describes.
func NewTemplate(cfg FlowConfig) (*Template, error) {
	if cfg.FrameSize < MinFrameSize || cfg.FrameSize > MaxFrameSize {
		return nil, fmt.Errorf("pktgen: frame size %d outside %d..%d (bytes without FCS; a 64-byte wire frame is %d)",
			cfg.FrameSize, MinFrameSize, MaxFrameSize, MinFrameSize)
	}
	flows := cfg.Flows
	if flows == 0 {
		flows = 1
	}
	if flows < 1 || flows > MaxFlows {
		return nil, fmt.Errorf("pktgen: flows %d outside 1..%d", cfg.Flows, MaxFlows)
	}
	if int(cfg.SrcPort)+flows-1 > 0xffff {
		return nil, fmt.Errorf("pktgen: source ports %d..%d of %d flows exceed 65535",
			cfg.SrcPort, int(cfg.SrcPort)+flows-1, flows)
	}
	// HeaderLen+StampLen = 58 <= MinFrameSize, so every accepted size holds
	// the stamp; keep the check so a change to the constants cannot break it.
	if cfg.FrameSize < stampEnd {
		return nil, errors.New("pktgen: frame too short for the stamp")
	}

	n := cfg.FrameSize
	f := make([]byte, n)
	copy(f[0:6], cfg.DstMAC[:])
	copy(f[6:12], cfg.SrcMAC[:])
	binary.BigEndian.PutUint16(f[offEtherType:], etherTypeIPv4)

	f[offIP] = 0x45 // version 4, IHL 5
	f[offIP+1] = 0  // DSCP/ECN
	binary.BigEndian.PutUint16(f[offIPLen:], uint16(n-ethLen))
	// ID 0; flags and fragment offset 0: DF clear, not a fragment.
	f[offIP+8] = ttl
	f[offIPProto] = protoUDP
	copy(f[offIPSrc:offIPSrc+4], cfg.SrcIP[:])
	copy(f[offIPDst:offIPDst+4], cfg.DstIP[:])
	ipCsum := ^fold(sum(0, f[offIP:offIP+ipv4Len]))
	binary.BigEndian.PutUint16(f[offIPCsum:], ipCsum)

	binary.BigEndian.PutUint16(f[offUDPSrc:], cfg.SrcPort)
	binary.BigEndian.PutUint16(f[offUDPDst:], cfg.DstPort)
	binary.BigEndian.PutUint16(f[offUDPLen:], uint16(n-offUDP))
	for i := stampEnd; i < n; i++ {
		f[i] = byte(i)
	}

	t := &Template{
		frame:   f,
		srcPort: cfg.SrcPort,
		flows:   uint64(flows),
		udpCsum: cfg.UDPChecksum,
		ipCsum:  ipCsum,
	}
	if flows&(flows-1) == 0 {
		t.flowMask = uint64(flows - 1)
	}
	if t.udpCsum {
		// Pseudo-header (source, destination, zero+protocol, UDP length),
		// then the UDP header and payload, leaving out the source port, the
		// checksum and the stamp, which stamp adds per frame.
		var s uint64
		s = sum(s, f[offIPSrc:offIPDst+4])
		s += protoUDP + uint64(n-offUDP)
		s = sum(s, f[offUDPDst:offUDPLen+2]) // destination port, length
		s = sum(s, f[stampEnd:])
		t.udpBase = uint32(fold(s))
	}
	t.Stamp(f, 0, 0)
	return t, nil
}

// Len returns the length of the frames the template builds: the FrameSize
// it was made with.
func (t *Template) Len() int { return len(t.frame) }

// Fill copies the template into buf, stamps it with seq and tsNanos as
// Stamp does, and returns the frame length. It returns 0 and leaves buf
// alone when buf is shorter than the frame.
func (t *Template) Fill(buf []byte, seq uint64, tsNanos int64) int {
	n := len(t.frame)
	if len(buf) < n || n < stampEnd {
		return 0
	}
	copy(buf[:n], t.frame)
	// The ID and checksum just copied are the template's: patch from the
	// cached values rather than load them back from the bytes just stored.
	t.stamp(buf[:stampEnd], seq, tsNanos, 0, t.ipCsum)
	return n
}

// Stamp writes everything in a frame that depends on the sequence number
// and the time: the stamp, the IPv4 ID (uint16(seq)), the flow's UDP source
// port and the checksums. buf must hold a frame filled from this template;
// it is how a generator re-stamps frames it built ahead of time just before
// sending them. A buf shorter than the template's frame is left untouched.
//
// The IPv4 header checksum is patched for the new ID by the incremental
// update of RFC 1624 (eqn. 3) from the ID and checksum already in buf,
// rather than summed again over the header.
func (t *Template) Stamp(buf []byte, seq uint64, tsNanos int64) {
	if len(buf) < len(t.frame) || len(buf) < stampEnd {
		return
	}
	b := buf[:stampEnd]
	t.stamp(b, seq, tsNanos, binary.BigEndian.Uint16(b[offIPID:]), binary.BigEndian.Uint16(b[offIPCsum:]))
}

// stamp does Stamp's work on the first stampEnd bytes of a frame whose IPv4
// ID is oldID and header checksum hc.
func (t *Template) stamp(b []byte, seq uint64, tsNanos int64, oldID, hc uint16) {
	b = b[:stampEnd]
	binary.LittleEndian.PutUint64(b[offSeq:], seq)
	binary.LittleEndian.PutUint64(b[offTS:], uint64(tsNanos))

	newID := uint16(seq)
	binary.BigEndian.PutUint16(b[offIPID:], newID)
	binary.BigEndian.PutUint16(b[offIPCsum:], csumReplace16(hc, oldID, newID))

	sport := t.srcPort
	if t.flows > 1 {
		if t.flowMask != 0 {
			sport += uint16(seq & t.flowMask)
		} else {
			sport += uint16(seq % t.flows)
		}
	}
	binary.BigEndian.PutUint16(b[offUDPSrc:], sport)

	if t.udpCsum {
		// Add the source port and the 16 stamp bytes, read as two
		// big-endian 64-bit words, to the precomputed sum: a ones'
		// complement sum may be taken over any word width (RFC 1071).
		s, carry := bits.Add64(bits.ReverseBytes64(seq), bits.ReverseBytes64(uint64(tsNanos)), 0)
		s, carry = bits.Add64(s, uint64(t.udpBase)+uint64(sport), carry)
		s += carry // cannot carry again: s <= 2^64-2 after a carry out
		cs := ^fold(s)
		if cs == 0 {
			cs = 0xffff // 0 means "no checksum" in UDP over IPv4 (RFC 768)
		}
		binary.BigEndian.PutUint16(b[offUDPCsum:], cs)
	}
}

// Parse checks that frame is an Ethernet II / IPv4 / UDP frame, without
// options or fragmentation, whose IPv4 and UDP lengths hold a stamp and fit
// in the frame, and returns the stamp. It never panics. It does not verify
// checksums: that is the port's job (or its offload's), and the sink's job
// is the stream.
func Parse(frame []byte) (seq uint64, ts int64, ok bool) {
	return ParseHead(frame, len(frame))
}

// ParseHead is Parse for a frame held in several buffers: head is the first
// of them, which must hold at least the headers and the stamp, and frameLen
// is the length of the whole frame.
func ParseHead(head []byte, frameLen int) (seq uint64, ts int64, ok bool) {
	frame := head
	if len(frame) < stampEnd || frameLen < len(frame) {
		return 0, 0, false
	}
	b := frame[:stampEnd]
	if binary.BigEndian.Uint16(b[offEtherType:]) != etherTypeIPv4 ||
		b[offIP] != 0x45 ||
		b[offIPProto] != protoUDP ||
		binary.BigEndian.Uint16(b[offIPFrag:])&0x3fff != 0 { // MF or offset
		return 0, 0, false
	}
	ipTotal := int(binary.BigEndian.Uint16(b[offIPLen:]))
	if ipTotal < ipv4Len+udpLen+StampLen || ethLen+ipTotal > frameLen {
		return 0, 0, false
	}
	ul := int(binary.BigEndian.Uint16(b[offUDPLen:]))
	if ul < udpLen+StampLen || ul > ipTotal-ipv4Len {
		return 0, 0, false
	}
	return binary.LittleEndian.Uint64(b[offSeq:]), int64(binary.LittleEndian.Uint64(b[offTS:])), true
}

// sum adds b to s as big-endian 16-bit words, a trailing odd byte padded
// with zero, without folding. s must stay well below 2^64; frames here are
// at most 9000 bytes, far from it.
func sum(s uint64, b []byte) uint64 {
	for len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	return s
}

// fold reduces a ones' complement sum to 16 bits with end-around carries.
func fold(s uint64) uint16 {
	s = s>>32 + s&0xffffffff
	s = s>>32 + s&0xffffffff
	s = s>>16 + s&0xffff
	s = s>>16 + s&0xffff
	return uint16(s)
}

// csumReplace16 updates checksum hc for one 16-bit word changing from old
// to new, by RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), which unlike eqn. 2
// never yields the wrong zero.
func csumReplace16(hc, old, new uint16) uint16 {
	s := uint32(^hc) + uint32(^old) + uint32(new)
	s = s>>16 + s&0xffff
	s = s>>16 + s&0xffff
	return ^uint16(s)
}
