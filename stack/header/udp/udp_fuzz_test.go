package udp

import (
	"bytes"
	"testing"
)

// FuzzUDPParse checks that parsing never panics, that an accepted header
// describes bytes that exist and is rebuilt by Put, and that a datagram
// given its own checksum verifies.
func FuzzUDPParse(f *testing.F) {
	f.Add(dnsQuery)
	f.Add([]byte{0, 7, 0, 7, 0, 8, 0, 0})
	f.Add([]byte{0, 7, 0, 7, 0, 9, 0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseChecked(b, src, dst)
		h, err := Parse(b)
		if err != nil {
			return
		}
		if h.PayloadLen() < 0 || int(h.Length) > len(b) {
			t.Fatalf("accepted %+v from %d bytes", h, len(b))
		}
		out := make([]byte, HeaderLen)
		if h.Put(out) != nil || !bytes.Equal(out, b[:HeaderLen]) {
			t.Fatalf("Put %x, parsed from %x", out, b[:HeaderLen])
		}
		d := append([]byte(nil), b[:h.Length]...)
		SetChecksum(d, src, dst)
		if !VerifyChecksum(d, src, dst) {
			t.Fatalf("own checksum fails on %x", d)
		}
	})
}
