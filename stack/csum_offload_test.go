package stack

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/pmd/wire"
)

// flagPort is a wire port that counts, among the TCP frames it carries,
// those sent with the checksum left to it and those received marked good.
type flagPort struct {
	*wire.Port
	tx, txLeft, rx, rxGood atomic.Uint64
}

func isTCP(m engine.Mbuf) bool {
	d := m.Data()
	return len(d) >= 34 && d[12] == 0x08 && d[13] == 0x00 && d[23] == 6
}

func (p *flagPort) TxBurst(q int, pkts []engine.Mbuf) int {
	for _, m := range pkts {
		if isTCP(m) {
			p.tx.Add(1)
			if m.Flags()&engine.FlagTxL4Csum != 0 {
				p.txLeft.Add(1)
			}
		}
	}
	return p.Port.TxBurst(q, pkts)
}

func (p *flagPort) RxBurst(q int, pkts []engine.Mbuf) int {
	n := p.Port.RxBurst(q, pkts)
	for _, m := range pkts[:n] {
		if isTCP(m) {
			p.rx.Add(1)
			if m.Flags()&engine.FlagRxL4CsumGood != 0 {
				p.rxGood.Add(1)
			}
		}
	}
	return n
}

// With checksum offload and a clean wire, every TCP segment leaves with its
// checksum left to the port and arrives marked good, so neither side sums
// a byte, and the stream still arrives intact both ways.
func TestWithChecksumOffloadNoSegmentIsSummedAndTheStreamsMatch(t *testing.T) {
	n := 8 << 20
	if raceEnabled || testing.Short() {
		n = 1 << 20
	}
	for _, mode := range []Mode{ModePMD, ModeNAPI} {
		t.Run(string(mode), func(t *testing.T) {
			wp, err := wire.NewPair(wire.Config{ChecksumOffload: true})
			if err != nil {
				t.Fatal(err)
			}
			fa, fb := &flagPort{Port: wp.Ports[0]}, &flagPort{Port: wp.Ports[1]}
			p := newPairOn(t, mode, wp, [2]engine.Port{fa, fb}, 1500)
			duplex(t, p, n, 60*time.Second)
			for _, f := range []*flagPort{fa, fb} {
				tx, left, rx, good := f.tx.Load(), f.txLeft.Load(), f.rx.Load(), f.rxGood.Load()
				if tx < uint64(n/1460) || left != tx || rx < uint64(n/1460) || good != rx {
					t.Errorf("%s: %d of %d TCP frames sent with the checksum left, %d of %d received marked good",
						f.Info().Name, left, tx, good, rx)
				}
			}
			if a, b := p.a.Stats().TCP, p.b.Stats().TCP; a.InCsumErrors+b.InCsumErrors != 0 {
				t.Errorf("checksum errors a %d b %d on a clean wire", a.InCsumErrors, b.InCsumErrors)
			}
		})
	}
}
