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
