package link

import (
	"testing"

	"github.com/pollnet/pollnet/engine"
)

func TestBacklogOverflowDropsAndCounts(t *testing.T) {
	l, err := NewLoopback(100, 0)
	if err != nil {
		t.Fatal(err)
	}
	pool, _ := engine.NewPool("lo-test", 512, 16)
	var cs engine.Caches
	raised := 0
	l.SetRxInterrupt(0, func() { raised++ })
	l.ArmRx(0)
	burst := make([]engine.Mbuf, 150)
	if err := cs.AllocBulk(pool, burst); err != nil {
		t.Fatal(err)
	}
	for _, m := range burst {
		m.Append(60)
	}
	if n := l.TxBurst(0, burst); n != 150 {
		t.Fatalf("TxBurst took %d", n)
	}
	if l.Backlog() != 100 || l.Dropped() != 50 || l.RxStats(0).Drops[engine.DropRingFull] != 50 || raised != 1 {
		t.Fatalf("backlog %d, dropped %d, interrupts %d", l.Backlog(), l.Dropped(), raised)
	}
	var pkts [engine.Burst]engine.Mbuf
	got := 0
	for n := l.RxBurst(0, pkts[:]); n > 0; n = l.RxBurst(0, pkts[:]) {
		got += n
		cs.FreeBulk(pkts[:n])
	}
	if got != 100 || l.RxStats(0).Packets != 100 {
		t.Fatalf("drained %d", got)
	}
	l.Close()
	cs.Flush()
	if err := pool.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := NewLoopback(-1, 0); err == nil {
		t.Fatal("negative backlog accepted")
	}
}
