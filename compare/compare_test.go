package compare

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pollnet/pollnet/internal/result"
)

// fakePeer records what it was asked to run; it stands in for a real peer
// so the dispatch can be tested without traffic.
type fakePeer struct {
	name  string
	works []string
	ran   []string
}

func (f *fakePeer) Name() string        { return f.name }
func (f *fakePeer) Workloads() []string { return f.works }
func (f *fakePeer) Run(_ context.Context, w Workload) ([]result.Scenario, error) {
	f.ran = append(f.ran, w.Name)
	return []result.Scenario{{Name: w.Name, Path: f.name, Skipped: "fake"}}, nil
}

func TestPeers(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range Peers() {
		if p.Name() == "" || len(p.Workloads()) == 0 {
			t.Errorf("%T: name %q workloads %v", p, p.Name(), p.Workloads())
		}
		if seen[p.Name()] {
			t.Errorf("two peers named %q", p.Name())
		}
		seen[p.Name()] = true
	}
	for _, want := range []string{"kernel", "kernel-iperf3", "dpdk-testpmd"} {
		if !seen[want] {
			t.Errorf("no peer %q", want)
		}
	}
}

func TestRunDispatch(t *testing.T) {
	a := &fakePeer{name: "a", works: []string{"udp_stream", "tcp_stream"}}
	b := &fakePeer{name: "b", works: []string{"l2_fwd"}}
	w := Workload{Name: "udp_stream", Duration: time.Second}
	scs, err := Run(context.Background(), []Peer{a, b}, w)
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) != 1 || scs[0].Path != "a" || len(a.ran) != 1 || len(b.ran) != 0 {
		t.Errorf("scenarios %+v, a ran %v, b ran %v", scs, a.ran, b.ran)
	}
	w.Name = "nothing"
	if _, err := Run(context.Background(), []Peer{a, b}, w); !errors.Is(err, ErrUnknownWorkload) {
		t.Errorf("unknown workload: err %v", err)
	}
	if _, err := Run(context.Background(), []Peer{a}, Workload{Name: "udp_stream"}); err == nil {
		t.Error("zero duration accepted")
	}
}
