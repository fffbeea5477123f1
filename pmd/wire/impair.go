package wire

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/engine/csum"
)

// Impairment degrades the link on purpose, driven by a seed so that a failing
// run can be replayed. Probabilities are per frame, 0..1.
type Impairment struct {
	Loss      float64       // drop the frame
	Duplicate float64       // deliver it twice
	Reorder   float64       // hold it back until the queue's next frame has gone
	Corrupt   float64       // flip one bit of it
	Delay     time.Duration // deliver it this much later (frames keep their order)
	Seed      uint64
}

func (im Impairment) active() bool {
	return im.Loss > 0 || im.Duplicate > 0 || im.Reorder > 0 || im.Corrupt > 0 || im.Delay > 0
}

func (im Impairment) validate() error {
	for _, p := range []struct {
		name string
		v    float64
	}{{"loss", im.Loss}, {"duplicate", im.Duplicate}, {"reorder", im.Reorder}, {"corrupt", im.Corrupt}} {
		if p.v < 0 || p.v > 1 || p.v != p.v {
			return fmt.Errorf("wire: %s probability %v out of range 0..1", p.name, p.v)
		}
	}
	if im.Delay < 0 {
		return fmt.Errorf("wire: delay %v is negative", im.Delay)
	}
	return nil
}

// impairedSend applies the loss model to one frame before delivering it. A
// frame copied on the way (to corrupt it, or a duplicate) is already in the
// peer's pool and is not copied again.
func (p *Port) impairedSend(tq *txQueue, lane int, m engine.Mbuf) {
	im := &tq.impair
	r := tq.rng
	if im.Loss > 0 && r.Float64() < im.Loss {
		tq.drops[engine.DropImpairment].Add(1)
		tq.done.Free(m)
		return
	}
	copied := false
	if tq.finish && m.Flags()&(engine.FlagTxL4Csum|engine.FlagTxIPCsum) != 0 {
		if m, copied = p.finishOffload(tq, m), true; m == engine.NoMbuf {
			return
		}
	}
	if im.Corrupt > 0 && r.Float64() < im.Corrupt {
		if m, copied = p.corrupt(tq, m); m == engine.NoMbuf {
			return
		}
	}
	if im.Reorder > 0 && tq.held == engine.NoMbuf && r.Float64() < im.Reorder {
		tq.held, tq.heldCp = m, copied
		return
	}
	dup := engine.NoMbuf
	if im.Duplicate > 0 && r.Float64() < im.Duplicate {
		if c, ok := p.copyFrame(tq, m); ok {
			p.rxMeta(m, c)
			dup = c
		} else {
			p.dropNoMbuf(m)
		}
	}
	p.stampAndDeliver(tq, lane, m, copied)
	if dup != engine.NoMbuf {
		p.stampAndDeliver(tq, lane, dup, true)
	}
	if h := tq.held; h != engine.NoMbuf {
		tq.held = engine.NoMbuf
		p.stampAndDeliver(tq, lane, h, tq.heldCp)
	}
}

// finishOffload copies a frame whose checksums were left to the port into
// the peer's pool and computes them there, as the sending NIC would have
// put them on the wire: a lane that corrupts needs real bytes. The copy
// carries no offload flags, so the receiver verifies it. A frame too
// malformed to finish goes as it is, for the receiver to drop.
func (p *Port) finishOffload(tq *txQueue, m engine.Mbuf) engine.Mbuf {
	f := m.Flags()
	l2, _, _ := m.HeaderLens()
	c, ok := p.copyFrame(tq, m)
	if !ok {
		p.dropNoMbuf(m)
	}
	tq.done.Free(m) // the caller's frame; the copy goes on
	if !ok {
		return engine.NoMbuf
	}
	if f&engine.FlagTxIPCsum != 0 {
		d := c.Data()
		if len(d) >= l2+20 {
			if ihl := int(d[l2]&0xf) * 4; ihl >= 20 && len(d) >= l2+ihl {
				d[l2+10], d[l2+11] = 0, 0
				binary.BigEndian.PutUint16(d[l2+10:], csum.Checksum(d[l2:l2+ihl], 0))
			}
		}
	}
	if f&engine.FlagTxL4Csum != 0 {
		_ = csum.Finish(c, l2) // a malformed frame goes unfinished
	}
	return c
}

// corrupt flips one random bit of the frame, copying it into the peer's pool
// first if others share its bytes or it is chained; copied says it did.
func (p *Port) corrupt(tq *txQueue, m engine.Mbuf) (_ engine.Mbuf, copied bool) {
	if !m.Writable() || m.Next() != engine.NoMbuf {
		c, ok := p.copyFrame(tq, m)
		if !ok {
			p.dropNoMbuf(m)
		}
		tq.done.Free(m) // the caller's frame; the copy goes on
		if !ok {
			return engine.NoMbuf, false
		}
		m, copied = c, true
	}
	d := m.Data()
	bit := tq.rng.IntN(len(d) * 8)
	d[bit/8] ^= 1 << (bit % 8)
	return m, copied
}

func (p *Port) stampAndDeliver(tq *txQueue, lane int, m engine.Mbuf, copied bool) {
	var due int64
	if tq.impair.Delay > 0 {
		due = engine.Nanotime() + int64(tq.impair.Delay)
	}
	p.deliver(tq, lane, m, due, copied)
}
