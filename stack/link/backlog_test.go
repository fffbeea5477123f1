package link

import (
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine"
)

var _ engine.Backlog = (*Loopback)(nil)

// Frames a full loopback backlog refuses are the softnet "dropped" of the
// softirq that drains it, as in Linux, where enqueue_to_backlog counts them.
func TestBacklogOverflowIsSoftnetDropped(t *testing.T) {
	l, err := NewLoopback(10, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	pool, err := engine.NewPool("lo-dropped", 64, 8)
	if err != nil {
		t.Fatal(err)
	}
	var cs engine.Caches
	defer func() {
		cs.Flush()
		if err := pool.Close(); err != nil {
			t.Error(err)
		}
	}()
	w, _ := engine.NewWorker(engine.AnyCore)
	s, err := engine.NewSoftirq(w, engine.SoftirqConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(engine.NAPIConfig{Port: l, Handler: func(w *engine.Worker, _ engine.QueueRef, pkts []engine.Mbuf) {
		w.Caches.FreeBulk(pkts)
	}}); err != nil {
		t.Fatal(err)
	}
	// 15 frames land on a backlog of 10 before the softirq runs.
	pkts := make([]engine.Mbuf, 15)
	if err := cs.AllocBulk(pool, pkts); err != nil {
		t.Fatal(err)
	}
	l.TxBurst(0, pkts)
	runErr := make(chan error, 1)
	if err := w.Start(func(*engine.Worker) { runErr <- s.Run() }); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for s.Stats().Processed < 10 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	w.Stop()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Processed != 10 || st.Dropped != 5 {
		t.Fatalf("softnet processed %d, dropped %d; want 10 and 5", st.Processed, st.Dropped)
	}
}

// TestShardsSendingIntoOneBacklogLoseNothing has four goroutines, as four
// shards, steer frames into one backlog while its owner drains it: every
// frame arrives exactly once or is counted as dropped, and its bytes and
// flags arrive as they were sent.
func TestShardsSendingIntoOneBacklogLoseNothing(t *testing.T) {
	b, err := NewBacklog("steer", 256)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const senders, each = 4, 5000
	pool, err := engine.NewPool("steer-senders", 2048, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	done := make(chan struct{})
	for g := range senders {
		go func() {
			defer func() { done <- struct{}{} }()
			var cs engine.Caches
			defer cs.Close()
			for i := range each {
				m, err := cs.Alloc(pool)
				for err != nil { // the owner frees as it goes
					time.Sleep(time.Microsecond)
					m, err = cs.Alloc(pool)
				}
				p, _ := m.Append(3)
				p[0], p[1], p[2] = byte(g), byte(i), byte(i>>8)
				m.SetFlags(engine.FlagRxL4CsumGood)
				b.TxBurst(0, []engine.Mbuf{m})
			}
		}()
	}
	seen := map[[3]byte]bool{}
	var burst [engine.Burst]engine.Mbuf
	var cs engine.Caches
	defer cs.Close()
	finished := 0
	for finished < senders || b.Len() > 0 {
		select {
		case <-done:
			finished++
		default:
		}
		n := b.RxBurst(0, burst[:])
		for _, m := range burst[:n] {
			d := m.Data()
			k := [3]byte{d[0], d[1], d[2]}
			if seen[k] || m.Flags() != engine.FlagRxL4CsumGood {
				t.Fatalf("frame %v twice, or its flags changed (%#x)", k, m.Flags())
			}
			seen[k] = true
		}
		cs.FreeBulk(burst[:n])
	}
	dropped := b.RxStats(0).Drops[engine.DropRingFull]
	if uint64(len(seen))+dropped != senders*each {
		t.Fatalf("%d received and %d dropped of %d", len(seen), dropped, senders*each)
	}
}
