package eth

import (
	"bytes"
	"testing"
)

// FuzzEthParse checks that Parse never panics, that an accepted header
// reports a length it really had, and that Put reproduces the parsed bytes.
func FuzzEthParse(f *testing.F) {
	f.Add(arpFrame)
	f.Add([]byte{
		0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x81, 0x00,
		0x20, 0x0a, 0x08, 0x00, 0x45, 0x00, 0x00, 0x14,
	})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Parse(b)
		if err != nil {
			return
		}
		if h.Len() > len(b) || h.Type < minType {
			t.Fatalf("accepted %+v from %d bytes", h, len(b))
		}
		out := make([]byte, h.Len())
		if err := h.Put(out); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, b[:h.Len()]) {
			t.Fatalf("Put %x, parsed from %x", out, b[:h.Len()])
		}
	})
}
