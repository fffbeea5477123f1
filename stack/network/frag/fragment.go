package frag

import (
	"encoding/binary"
	"errors"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/stack/header/ipv4"
)

// Fragmentation errors.
var (
	ErrDontFragment = errors.New("ipv4: datagram larger than the MTU has DF set")
	ErrMTU          = errors.New("ipv4: MTU below the 68-byte minimum")
	ErrL4Offload    = errors.New("ipv4: cannot fragment a datagram whose transport checksum is left to the port")
	ErrFragOffset   = errors.New("ipv4: fragment would end beyond 65535 bytes")
)

// Fragment splits the IPv4 datagram m (possibly chained, its header whole in
// the first segment, as the transmit path builds it) into
// fragments that fit mtu and appends them to dst, as ip_fragment does. Each
// fragment is a new packet from p with its own header: the first keeps every
// option, the others keep only options with the copy flag (the rest are
// overwritten with NOPs, as ip_options_fragment does, so all headers have the
// same length); each has its total length, MF flag, offset in 8-byte units
// and checksum set. Every fragment but the last carries a multiple of 8
// payload bytes. A datagram that is itself a fragment is cut again with its
// offsets and its MF flag carried over. A datagram that already fits comes
// back as one copy.
//
// The payload is copied, not cloned. A fragment's payload is a byte range
// that can start and end anywhere inside the chain's segments, and mbufs can
// only be cut at the front of the first segment or the back of the last, so
// clones would need a split operation the engine does not have; a copy also
// leaves each fragment writable, headroom for the link header in front, and
// independent of m. Fragmentation is a slow path (datagrams over the MTU),
// where one copy per byte is an acceptable cost.
//
// Fragment never frees m: on ErrDontFragment the caller still has it to
// quote in an ICMP fragmentation-needed message. On any error, fragments
// already made are freed and dst is returned unchanged. The transport
// checksum must be final (a port cannot checksum fragments); a datagram
// flagged engine.FlagTxL4Csum returns ErrL4Offload. dst is appended to, so a
// caller that passes a slice with spare capacity allocates nothing.
func Fragment(dst []engine.Mbuf, cs *engine.Caches, p *engine.Pool, m engine.Mbuf, mtu int) ([]engine.Mbuf, error) {
	first := m.Data()
	h, err := ipv4.ParseOffloaded(first, m.PktLen())
	if err != nil {
		return dst, err
	}
	if mtu < ipv4.MinMTU {
		return dst, ErrMTU
	}
	if m.Flags()&engine.FlagTxL4Csum != 0 {
		return dst, ErrL4Offload
	}
	hl := int(h.HeaderLen)
	data := int(h.TotalLen) - hl
	if int(h.TotalLen) > mtu && h.DF() {
		return dst, ErrDontFragment
	}
	if int(h.FragOff)+data+hl > ipv4.MaxTotalLen {
		return dst, ErrFragOffset
	}
	// Header templates: the first fragment's, and the later ones'.
	var firstHdr, laterHdr [ipv4.MaxHeaderLen]byte
	copy(firstHdr[:hl], first[:hl])
	copy(laterHdr[:hl], first[:hl])
	if err := dropUncopiedOptions(laterHdr[ipv4.HeaderLen:hl]); err != nil {
		return dst, err
	}
	per := (mtu - hl) &^ 7 // at least 8: mtu >= 68 and hl <= 60
	keep := len(dst)
	for off := 0; off == 0 || off < data; off += per {
		n := min(per, data-off)
		last := off+n == data
		tmpl := laterHdr[:hl]
		if off == 0 {
			tmpl = firstHdr[:hl]
		}
		flags := uint16(h.Flags&^ipv4.FlagMF) << 13
		if !last || h.MF() {
			flags |= ipv4.FlagMF << 13
		}
		f, err := fragmentOne(cs, p, m, tmpl, hl+off, n, flags|uint16((int(h.FragOff)+off)>>3))
		if err != nil {
			for _, g := range dst[keep:] {
				cs.Free(g)
			}
			clear(dst[keep:])
			return dst[:keep], err
		}
		dst = append(dst, f)
	}
	return dst, nil
}

// fragmentOne builds one fragment: the header template with its length,
// flags-and-offset word and checksum patched, then n payload bytes copied
// from m at src.
func fragmentOne(cs *engine.Caches, p *engine.Pool, m engine.Mbuf, tmpl []byte, src, n int, flagsOff uint16) (engine.Mbuf, error) {
	f, err := cs.Alloc(p)
	if err != nil {
		return engine.NoMbuf, err
	}
	hl := len(tmpl)
	hdr, err := f.Append(hl)
	if err != nil {
		cs.Free(f)
		return engine.NoMbuf, err
	}
	copy(hdr, tmpl)
	binary.BigEndian.PutUint16(hdr[2:4], uint16(hl+n))
	binary.BigEndian.PutUint16(hdr[6:8], flagsOff)
	hdr[10], hdr[11] = 0, 0
	binary.BigEndian.PutUint16(hdr[10:12], ipv4.Checksum(hdr, 0))
	seg := f
	for n > 0 {
		k := min(seg.Tailroom(), n)
		if k == 0 {
			s, err := cs.Alloc(p)
			if err == nil {
				err = f.Chain(s)
			}
			if err != nil {
				cs.Free(f)
				return engine.NoMbuf, err
			}
			seg = s
			continue
		}
		b, err := f.Append(k)
		if err != nil {
			cs.Free(f)
			return engine.NoMbuf, err
		}
		m.CopyOut(b, src)
		src += k
		n -= k
	}
	f.SetHeaderLens(0, hl, 0)
	return f, nil
}

// dropUncopiedOptions overwrites with NOPs every option whose copy flag is
// clear, so later fragments carry only the options RFC 791 says to repeat.
func dropUncopiedOptions(opts []byte) error {
	for i := 0; i < len(opts); {
		switch t := opts[i]; t {
		case optEnd:
			return nil
		case optNOP:
			i++
		default:
			if i+1 >= len(opts) {
				return ipv4.ErrOptions
			}
			l := int(opts[i+1])
			if l < 2 || i+l > len(opts) {
				return ipv4.ErrOptions
			}
			if t&optCopied == 0 {
				for j := i; j < i+l; j++ {
					opts[j] = optNOP
				}
			}
			i += l
		}
	}
	return nil
}

// Option types that matter to fragmentation.
const (
	optEnd    = 0
	optNOP    = 1
	optCopied = 0x80
)
