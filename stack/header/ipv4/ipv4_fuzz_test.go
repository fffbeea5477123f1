package ipv4

import (
	"bytes"
	"testing"
)

// FuzzIPv4Parse checks that Parse never panics and that an accepted header
// is exactly what Put writes back from the parsed fields.
func FuzzIPv4Parse(f *testing.F) {
	f.Add(pingDatagram)
	withOptions := make([]byte, 24+40)
	if _, err := (Header{TotalLen: 64, ID: 1, Flags: FlagMF, TTL: 64, Protocol: ProtoUDP}).Put(withOptions, []byte{0x94, 4, 0, 0}); err != nil {
		f.Fatal(err)
	}
	f.Add(withOptions)
	f.Add([]byte{0x45})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Parse(b)
		h2, err2 := ParseOffloaded(b, len(b))
		if err == nil {
			if err2 != nil || h2 != h {
				t.Fatalf("offloaded parse disagrees: %+v %v", h2, err2)
			}
			hl := int(h.HeaderLen)
			if hl < HeaderLen || hl > len(b) || int(h.TotalLen) > len(b) || h.PayloadLen() < 0 {
				t.Fatalf("accepted %+v from %d bytes", h, len(b))
			}
			out := make([]byte, hl)
			// Compare all but the checksum, which has two encodings of
			// zero; Put writes one, and it must verify.
			n, err := h.Put(out, b[HeaderLen:hl])
			if err != nil || n != hl || !bytes.Equal(out[:10], b[:10]) || !bytes.Equal(out[12:], b[12:hl]) {
				t.Fatalf("Put gave %x (%v), parsed from %x", out, err, b[:hl])
			}
			if Checksum(out, 0) != 0 {
				t.Fatalf("Put wrote a bad checksum: %x", out)
			}
		} else if err != ErrChecksum && err2 != err {
			t.Fatalf("offloaded parse error %v, full parse %v", err2, err)
		}
		c := append([]byte(nil), b...)
		DecTTL(c)
	})
}
