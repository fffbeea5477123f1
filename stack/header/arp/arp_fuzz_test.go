package arp

import (
	"bytes"
	"testing"

	"github.com/pollnet/pollnet/stack/header/eth"
)

// FuzzARPParse checks that Parse never panics and that Put reproduces an
// accepted packet byte for byte.
func FuzzARPParse(f *testing.F) {
	f.Add(requestFrame[eth.HeaderLen:])
	b := make([]byte, FrameLen)
	PutReply(b, macB, ipB, macA, ipA)
	f.Add(b[eth.HeaderLen:])
	f.Add([]byte{0, 1, 8, 0, 6, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		out := make([]byte, PacketLen)
		if err := p.Put(out); err != nil || !bytes.Equal(out, b[:PacketLen]) {
			t.Fatalf("Put %x, parsed from %x", out, b[:PacketLen])
		}
	})
}
