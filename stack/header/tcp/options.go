package tcp

import (
	"encoding/binary"
	"errors"
)

// Option kinds and their fixed lengths (RFC 9293 3.2, RFC 7323, RFC 2018).
const (
	OptEOL           = 0
	OptNOP           = 1
	OptMSS           = 2
	OptWScale        = 3
	OptSACKPermitted = 4
	OptSACK          = 5
	OptTimestamps    = 8

	LenMSS           = 4
	LenWScale        = 3
	LenSACKPermitted = 2
	LenTimestamps    = 10

	// MaxWScale is the largest window shift (RFC 7323 2.3).
	MaxWScale = 14
	// MaxSACKBlocks is the most SACK blocks an option can hold: 2+8*4 = 34
	// bytes of the 40 (RFC 2018 3).
	MaxSACKBlocks = 4
)

// Option errors, one per malformation. RFC 9293 3.2 asks a receiver to be
// prepared for any option and for "an illegal option length"; these let the
// caller drop the segment and count why.
var (
	ErrOptionLen           = errors.New("tcp: option length below 2")
	ErrOptionTruncated     = errors.New("tcp: option runs past the end of the options")
	ErrOptionMSS           = errors.New("tcp: MSS option length not 4")
	ErrOptionWScale        = errors.New("tcp: window scale option length not 3")
	ErrOptionSACKPermitted = errors.New("tcp: SACK-permitted option length not 2")
	ErrOptionSACK          = errors.New("tcp: SACK option length not 2+8n, n in 1..4")
	ErrOptionTimestamps    = errors.New("tcp: timestamps option length not 10")
)

// Present says which options a segment carried.
type Present uint8

const (
	HasMSS Present = 1 << iota
	HasWScale
	HasSACKPermitted
	HasTimestamps
	// WScaleCapped marks a window scale above 14 that was read as 14, as
	// RFC 7323 2.3 says: "the TCP SHOULD log the error but MUST use 14".
	WScaleCapped
)

// SACKBlock is one block of a SACK option: the sequence numbers of the first
// byte received and of the byte after the last (RFC 2018 3).
type SACKBlock struct{ Left, Right uint32 }

// Options are the options of one segment. A zero value carries none.
type Options struct {
	Present      Present
	MSS          uint16
	WScale       uint8 // shift count, at most 14
	TSval, TSecr uint32
	NumSACK      uint8 // blocks used in SACK, 0..4
	SACK         [MaxSACKBlocks]SACKBlock
}

// Has reports whether all of p were present.
func (o *Options) Has(p Present) bool { return o.Present&p == p }

// ParseOptions reads the options area b (the bytes between the fixed header
// and the data offset). It walks kinds up to an end-of-list, skipping NOPs
// and, by their length, kinds it does not know; a length below 2, an option
// running past b, or a known kind with the wrong length is an error. A kind
// seen twice keeps its last value.
func ParseOptions(b []byte) (Options, error) {
	var o Options
	for i := 0; i < len(b); {
		kind := b[i]
		if kind == OptEOL {
			break
		}
		if kind == OptNOP {
			i++
			continue
		}
		if i+1 >= len(b) {
			return Options{}, ErrOptionTruncated
		}
		l := int(b[i+1])
		if l < 2 {
			return Options{}, ErrOptionLen
		}
		if i+l > len(b) {
			return Options{}, ErrOptionTruncated
		}
		v := b[i+2 : i+l]
		switch kind {
		case OptMSS:
			if l != LenMSS {
				return Options{}, ErrOptionMSS
			}
			o.MSS = binary.BigEndian.Uint16(v)
			o.Present |= HasMSS
		case OptWScale:
			if l != LenWScale {
				return Options{}, ErrOptionWScale
			}
			o.WScale = v[0]
			o.Present |= HasWScale
			o.Present &^= WScaleCapped
			if o.WScale > MaxWScale {
				o.WScale = MaxWScale
				o.Present |= WScaleCapped
			}
		case OptSACKPermitted:
			if l != LenSACKPermitted {
				return Options{}, ErrOptionSACKPermitted
			}
			o.Present |= HasSACKPermitted
		case OptTimestamps:
			if l != LenTimestamps {
				return Options{}, ErrOptionTimestamps
			}
			o.TSval = binary.BigEndian.Uint32(v[0:4])
			o.TSecr = binary.BigEndian.Uint32(v[4:8])
			o.Present |= HasTimestamps
		case OptSACK:
			n := (l - 2) / 8
			if (l-2)%8 != 0 || n < 1 || n > MaxSACKBlocks {
				return Options{}, ErrOptionSACK
			}
			for j := 0; j < n; j++ {
				o.SACK[j] = SACKBlock{binary.BigEndian.Uint32(v[8*j:]), binary.BigEndian.Uint32(v[8*j+4:])}
			}
			o.NumSACK = uint8(n)
		}
		i += l
	}
	return o, nil
}

// Lengths of the aligned groups Put writes.
const (
	lenMSSAligned    = 4  // kind, len, value
	lenTSAligned     = 12 // NOP NOP TS, or SACK_PERM TS
	lenSACKPAligned  = 4  // NOP NOP SACK_PERM
	lenWScaleAligned = 4  // NOP WSCALE
	lenSACKBase      = 4  // NOP NOP kind len, before the blocks
	lenSACKBlock     = 8
)

// sackBlocks is the number of SACK blocks Put writes: those asked for, as
// many as fit in the 40 bytes after the other options.
func (o *Options) sackBlocks(rest int) int {
	n := min(int(o.NumSACK), MaxSACKBlocks)
	if n == 0 || rest < lenSACKBase+lenSACKBlock {
		return 0
	}
	return min(n, (rest-lenSACKBase)/lenSACKBlock)
}

// Len is the number of bytes Put writes for o, a multiple of 4, at most 40.
func (o *Options) Len() int {
	n := 0
	if o.Present&HasMSS != 0 {
		n += lenMSSAligned
	}
	if o.Present&HasTimestamps != 0 {
		n += lenTSAligned
	} else if o.Present&HasSACKPermitted != 0 {
		n += lenSACKPAligned
	}
	if o.Present&HasWScale != 0 {
		n += lenWScaleAligned
	}
	if k := o.sackBlocks(MaxOptionsLen - n); k > 0 {
		n += lenSACKBase + k*lenSACKBlock
	}
	return n
}

// Put writes the options in o.Present (and o.NumSACK blocks) into b, padded
// to a multiple of 4 with NOPs, and returns the length, for Header.Put. The
// order and alignment are Linux's tcp_options_write: MSS, SACK-permitted
// folded into the timestamps' padding, NOP and window scale, then NOP NOP
// and the SACK blocks. A SYN sets MSS, WScale, SACK-permitted and
// timestamps (20 bytes); a data segment sets timestamps and SACK blocks. As
// in tcp_established_options, SACK blocks beyond the 40 bytes are left out
// (three fit beside timestamps), keeping the first, which RFC 2018 4 says is
// the most recent. A window scale above 14 is written as 14.
func (o *Options) Put(b []byte) (int, error) {
	n := o.Len()
	if len(b) < n {
		return 0, ErrShortBuffer
	}
	i := 0
	if o.Present&HasMSS != 0 {
		b[0], b[1] = OptMSS, LenMSS
		binary.BigEndian.PutUint16(b[2:4], o.MSS)
		i = lenMSSAligned
	}
	switch {
	case o.Present&HasTimestamps != 0:
		if o.Present&HasSACKPermitted != 0 {
			b[i], b[i+1] = OptSACKPermitted, LenSACKPermitted
		} else {
			b[i], b[i+1] = OptNOP, OptNOP
		}
		b[i+2], b[i+3] = OptTimestamps, LenTimestamps
		binary.BigEndian.PutUint32(b[i+4:], o.TSval)
		binary.BigEndian.PutUint32(b[i+8:], o.TSecr)
		i += lenTSAligned
	case o.Present&HasSACKPermitted != 0:
		b[i], b[i+1], b[i+2], b[i+3] = OptNOP, OptNOP, OptSACKPermitted, LenSACKPermitted
		i += lenSACKPAligned
	}
	if o.Present&HasWScale != 0 {
		b[i], b[i+1], b[i+2], b[i+3] = OptNOP, OptWScale, LenWScale, min(o.WScale, MaxWScale)
		i += lenWScaleAligned
	}
	if k := o.sackBlocks(MaxOptionsLen - i); k > 0 {
		b[i], b[i+1], b[i+2], b[i+3] = OptNOP, OptNOP, OptSACK, uint8(2+k*lenSACKBlock)
		i += lenSACKBase
		for _, s := range o.SACK[:k] {
			binary.BigEndian.PutUint32(b[i:], s.Left)
			binary.BigEndian.PutUint32(b[i+4:], s.Right)
			i += lenSACKBlock
		}
	}
	return i, nil
}
