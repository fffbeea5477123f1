package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"text/tabwriter"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/pmd/wire"
	"github.com/valyala/bytebufferpool"
	"golang.org/x/sys/unix"
)

// watchedPort records the thread that last read its counters.
type watchedPort struct {
	engine.Port
	tid *atomic.Int32
}

func (p watchedPort) Info() engine.PortInfo {
	p.tid.Store(int32(unix.Gettid()))
	return p.Port.Info()
}

// statRig is a Live with every kind of counter: a wire pair of two queues,
// a poll-mode worker and a softirq (neither running; their counters read
// as zero, which is all the publisher needs).
func statRig(t *testing.T, tid *atomic.Int32) *Live {
	t.Helper()
	pair, err := wire.NewPair(wire.Config{Queues: 2, RingSize: 64, PoolSize: 256})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, p := range pair.Ports {
			p.Close()
		}
	})
	w, err := engine.NewWorker(engine.AnyCore)
	if err != nil {
		t.Fatal(err)
	}
	si, err := engine.NewSoftirq(w, engine.SoftirqConfig{})
	if err != nil {
		t.Fatal(err)
	}
	l := &Live{Mode: ModePMD, Size: 64, Workers: []*engine.Worker{w}, Softirqs: []*engine.Softirq{si}}
	for _, p := range pair.Ports {
		if tid != nil {
			l.Ports = append(l.Ports, watchedPort{p, tid})
		} else {
			l.Ports = append(l.Ports, p)
		}
	}
	return l
}

// The publisher's thread may run anywhere but on the core it was told to
// avoid, and the counters are read on that thread, also when Set switches
// scenarios.
func TestStatPublisherStaysOffTheDeviceCore(t *testing.T) {
	cores, err := engine.Cores()
	if err != nil {
		t.Fatal(err)
	}
	if len(cores) < 2 {
		t.Skipf("this process may use only core %v: there is no other core to keep the publisher on", cores)
	}
	dut := cores[len(cores)-1]
	p, err := newStatPublisher(filepath.Join(t.TempDir(), "1.stat"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.start([]int{dut, engine.AnyCore}); err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	var set unix.CPUSet
	if err := unix.SchedGetaffinity(int(p.tid.Load()), &set); err != nil {
		t.Fatal(err)
	}
	var got []int
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			got = append(got, c)
		}
	}
	if want := slices.DeleteFunc(slices.Clone(cores), func(c int) bool { return c == dut }); !slices.Equal(got, want) {
		t.Errorf("the publisher's thread may run on cores %v, want %v (all but the device's core %d)", got, want, dut)
	}

	var reader atomic.Int32
	p.Set(statRig(t, &reader))
	if r := reader.Load(); r == 0 || r != p.tid.Load() {
		t.Errorf("counters read on thread %d, the publisher's is %d", r, p.tid.Load())
	}
	p.Set(nil)
	if !strings.Contains(p.Last(), "time_squeeze") {
		t.Errorf("last figures:\n%s", p.Last())
	}
}

func TestStatPublisherRefusesToRunWithNoCoreLeft(t *testing.T) {
	cores, err := engine.Cores()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := publisherCores(cores); err == nil || !strings.Contains(err.Error(), "no core left") {
		t.Errorf("avoiding every core: %v", err)
	}
	if got, err := publisherCores([]int{engine.AnyCore}); err != nil || !slices.Equal(got, cores) {
		t.Errorf("avoiding no particular core: %v, %v; want %v", got, err, cores)
	}
}

// One publish cycle (read every counter, render the text, rewrite the file)
// allocates nothing once its buffers have grown.
func TestStatPublishCycleAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop buffers, so the pool allocates")
	}
	path := filepath.Join(t.TempDir(), "1.stat")
	p, err := newStatPublisher(path)
	if err != nil {
		t.Fatal(err)
	}
	p.live = statRig(t, nil)
	for range 10 {
		p.publish()
	}
	if allocs := testing.AllocsPerRun(200, p.publish); allocs > 0 {
		t.Errorf("a publish cycle allocates %v objects, want 0", allocs)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{fmt.Sprintf("pollnet pid %d: running at ", os.Getpid()), "mode pmd, 64-byte frames",
		"time_squeeze", "poll-mode workers:", "rx_missed", "interrupts", "wire0", "wire1"} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("the counters file lacks %q:\n%s", want, data)
		}
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("the temporary file is left behind: %v", err)
	}
}

// textTable lays out cells as text/tabwriter does with AlignRight and a
// padding of two.
func TestTextTableMatchesTabwriter(t *testing.T) {
	rows := [][]string{
		{"port", "queue", "rx packets", "x"},
		{"gen", "0", "123456789", ""},
		{"a-much-longer-port-name-than-most-that-passes-the-pad-string-length-easily", "15", "0", "7"},
	}
	var want bytes.Buffer
	tw := tabwriter.NewWriter(&want, 0, 4, 2, ' ', tabwriter.AlignRight)
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t\n", strings.Join(r, "\t"))
	}
	tw.Flush()
	var tab textTable
	tab.reset(rows[0]...)
	for _, r := range rows[1:] {
		for _, c := range r {
			tab.str(c)
		}
	}
	var got bytebufferpool.ByteBuffer
	tab.writeTo(&got)
	if string(got.B) != want.String() {
		t.Errorf("textTable:\n%s\ntabwriter:\n%s", got.B, want.String())
	}
}
