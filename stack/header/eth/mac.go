package eth

import "errors"

// MAC is a 48-bit IEEE 802 address. It is a value (no slice, no pointer), so
// it compares with == and can key a map.
type MAC [6]byte

// Broadcast is ff:ff:ff:ff:ff:ff.
var Broadcast = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// ErrMACSyntax is returned by ParseMAC for text that is not a MAC address.
var ErrMACSyntax = errors.New("eth: invalid MAC address")

// IsBroadcast reports whether m is the all-ones address.
func (m MAC) IsBroadcast() bool { return m == Broadcast }

// IsMulticast reports whether the group bit (the lowest bit of the first
// octet) is set. Broadcast is a multicast address too.
func (m MAC) IsMulticast() bool { return m[0]&1 != 0 }

// IsZero reports whether m is 00:00:00:00:00:00, the unknown target of an
// ARP request.
func (m MAC) IsZero() bool { return m == MAC{} }

const hexDigits = "0123456789abcdef"

// String formats m as six lower-case hex pairs joined by colons.
func (m MAC) String() string {
	var b [17]byte
	for i, o := range m {
		if i > 0 {
			b[3*i-1] = ':'
		}
		b[3*i] = hexDigits[o>>4]
		b[3*i+1] = hexDigits[o&0xf]
	}
	return string(b[:])
}

// ParseMAC reads six hex pairs separated by ':' or '-' (one separator
// throughout), in either case: "02:00:5e:10:00:01", "02-00-5E-10-00-01".
func ParseMAC(s string) (MAC, error) {
	var m MAC
	if len(s) != 17 {
		return MAC{}, ErrMACSyntax
	}
	sep := s[2]
	if sep != ':' && sep != '-' {
		return MAC{}, ErrMACSyntax
	}
	for i := range m {
		if i > 0 && s[3*i-1] != sep {
			return MAC{}, ErrMACSyntax
		}
		hi, ok1 := unhex(s[3*i])
		lo, ok2 := unhex(s[3*i+1])
		if !ok1 || !ok2 {
			return MAC{}, ErrMACSyntax
		}
		m[i] = hi<<4 | lo
	}
	return m, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
