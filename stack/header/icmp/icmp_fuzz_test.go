package icmp

import (
	"bytes"
	"testing"
)

// FuzzICMPParse checks that parsing never panics, that an accepted echo is
// rebuilt byte for byte by PutEcho, that an accepted error's quote parses,
// and that the builders accept whatever the parser returned.
func FuzzICMPParse(f *testing.F) {
	f.Add(echoRequest)
	b := make([]byte, 64)
	n, _ := PutDestUnreachable(b, CodeFragNeeded, 1280, udpDatagram(20))
	f.Add(b[:n])
	n, _ = PutTimeExceeded(b, CodeTTLExceeded, udpDatagram(0))
	f.Add(b[:n])
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := Parse(in)
		if err != nil {
			ParseUnverified(in)
			ErrorAllowed(in, false)
			Quote(in)
			return
		}
		out := make([]byte, len(in)+64)
		switch {
		case m.Type == TypeEchoRequest || m.Type == TypeEchoReply:
			if m.Code != 0 {
				break
			}
			k, err := PutEcho(out, m.Type, m.ID, m.Seq, m.Body)
			if err != nil || !sameButChecksum(out[:k], in, 2) {
				t.Fatalf("PutEcho %x, parsed from %x", out[:k], in)
			}
			if _, err := Parse(out[:k]); err != nil {
				t.Fatalf("PutEcho output does not verify: %v", err)
			}
			if m.Type == TypeEchoRequest {
				r := append([]byte(nil), in...)
				if err := EchoReplyInPlace(r); err != nil {
					t.Fatal(err)
				}
				if _, err := Parse(r); err != nil {
					t.Fatalf("in-place reply does not verify: %v", err)
				}
			}
		case IsError(m.Type) && m.Type <= maxKnownType:
			if _, _, err := m.Quoted(); err != nil {
				t.Fatalf("accepted an error whose quote fails: %v", err)
			}
			k, err := PutDestUnreachable(out, m.Code, m.MTU, m.Body)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Parse(out[:k]); err != nil {
				t.Fatalf("rebuilt error does not parse: %v", err)
			}
		}
	})
}

// sameButChecksum compares two messages except for the checksum at off: a
// ones' complement checksum has two encodings of zero (0x0000 and 0xffff)
// when the rest of the data sums to 0xffff, and a builder writes only one.
func sameButChecksum(a, b []byte, off int) bool {
	return len(a) == len(b) && bytes.Equal(a[:off], b[:off]) && bytes.Equal(a[off+2:], b[off+2:])
}
