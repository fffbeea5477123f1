package engine

import "fmt"

// DefaultRSSKey is the 40-byte Toeplitz key that most NICs ship with and that
// Microsoft's RSS specification uses in its verification examples.
var DefaultRSSKey = [40]byte{
	0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2,
	0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
	0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4,
	0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
	0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
}

// Toeplitz computes the RSS hash that NICs use to spread flows over receive
// queues. Per input byte position it precomputes the XOR of key windows for
// all 256 byte values, so a 12-byte IPv4 tuple costs 12 table loads.
type Toeplitz struct {
	tables [][256]uint32
}

// NewToeplitz prepares a hash for inputs of up to maxInput bytes; the key must
// be at least maxInput+4 bytes long.
func NewToeplitz(key []byte, maxInput int) (*Toeplitz, error) {
	if len(key) < maxInput+4 {
		return nil, fmt.Errorf("rss: a %d-byte key hashes at most %d input bytes, not %d", len(key), len(key)-4, maxInput)
	}
	t := &Toeplitz{tables: make([][256]uint32, maxInput)}
	for pos := 0; pos < maxInput; pos++ {
		for v := 0; v < 256; v++ {
			var h uint32
			for bit := 0; bit < 8; bit++ {
				if v&(0x80>>bit) != 0 {
					h ^= keyWindow(key, pos*8+bit)
				}
			}
			t.tables[pos][v] = h
		}
	}
	return t, nil
}

// keyWindow is the 32 key bits starting at bit offset off.
func keyWindow(key []byte, off int) uint32 {
	var w uint32
	for i := 0; i < 32; i++ {
		b := off + i
		if key[b/8]&(0x80>>(b%8)) != 0 {
			w |= 1 << (31 - i)
		}
	}
	return w
}

// HashIPv4 is the hash of an IPv4 address pair, source then destination,
// as a NIC computes it for a frame it does not hash by ports: a fragment (the
// first included), or a protocol other than TCP and UDP. The hash must be
// prepared for 8 input bytes at least.
func (t *Toeplitz) HashIPv4(src, dst [4]byte) uint32 {
	tabs := t.tables[:8]
	return tabs[0][src[0]] ^ tabs[1][src[1]] ^ tabs[2][src[2]] ^ tabs[3][src[3]] ^
		tabs[4][dst[0]] ^ tabs[5][dst[1]] ^ tabs[6][dst[2]] ^ tabs[7][dst[3]]
}

// HashIPv4Ports is the hash of a TCP or UDP flow over IPv4 as a frame of it
// carries it: its source address, destination address, source port and
// destination port, in network order (the input of Microsoft's RSS
// specification). To predict where the replies of a connection land, hash
// them as they arrive: the peer's address and port as the source. The hash
// must be prepared for 12 input bytes at least.
func (t *Toeplitz) HashIPv4Ports(src, dst [4]byte, sport, dport uint16) uint32 {
	tabs := t.tables[:12]
	return t.HashIPv4(src, dst) ^
		tabs[8][sport>>8] ^ tabs[9][sport&0xff] ^ tabs[10][dport>>8] ^ tabs[11][dport&0xff]
}

// Hash returns the Toeplitz hash of input, which must not be longer than the
// size the hash was prepared for.
func (t *Toeplitz) Hash(input []byte) uint32 {
	var h uint32
	tabs := t.tables[:len(input)]
	for i, b := range input {
		h ^= tabs[i][b]
	}
	return h
}
