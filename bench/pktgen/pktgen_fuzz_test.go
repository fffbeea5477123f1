package pktgen

import (
	"encoding/binary"
	"testing"
)

// FuzzParse feeds Parse arbitrary bytes: it must never panic, and whatever
// it accepts must be a frame it could have read the stamp from.
func FuzzParse(f *testing.F) {
	for i, size := range []int{60, 64, 128, 1500, 9000} {
		cfg := DefaultFlowConfig(size)
		cfg.Flows = 1 + i
		cfg.UDPChecksum = i%2 == 1
		tm, err := NewTemplate(cfg)
		if err != nil {
			f.Fatal(err)
		}
		buf := make([]byte, size)
		tm.Fill(buf, uint64(size)*1000003, int64(size)<<20)
		f.Add(buf)
		f.Add(buf[:size-1])   // truncated
		f.Add(buf[:stampEnd]) // headers and stamp only
	}
	f.Add([]byte{})
	f.Add([]byte{0x45})
	f.Add(make([]byte, 60))
	f.Add([]byte("this is not an Ethernet frame, but it is sixty bytes long...."))
	bad := make([]byte, 64)
	binary.BigEndian.PutUint16(bad[12:], 0x0800)
	bad[14], bad[23] = 0x45, 17
	binary.BigEndian.PutUint16(bad[16:], 0xffff) // IP length past the end
	binary.BigEndian.PutUint16(bad[38:], 0xffff)
	f.Add(bad)

	f.Fuzz(func(t *testing.T, frame []byte) {
		seq, ts, ok := Parse(frame)
		if !ok {
			if seq != 0 || ts != 0 {
				t.Fatalf("rejected frame returned a stamp %d, %d", seq, ts)
			}
			return
		}
		if len(frame) < stampEnd {
			t.Fatalf("accepted a %d-byte frame", len(frame))
		}
		ipTotal := int(binary.BigEndian.Uint16(frame[16:]))
		if frame[14] != 0x45 || frame[23] != 17 || 14+ipTotal > len(frame) {
			t.Fatal("accepted a frame that is not whole IPv4/UDP")
		}
		if seq != binary.LittleEndian.Uint64(frame[42:]) || ts != int64(binary.LittleEndian.Uint64(frame[50:])) {
			t.Fatal("stamp not read from its offset")
		}
		var s Sink
		if !s.ObserveFrame(frame, ts) {
			t.Fatal("ObserveFrame disagrees with Parse")
		}
	})
}
