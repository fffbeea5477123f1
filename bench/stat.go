package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/pollnet/pollnet/engine"
)

// StatDir is where running benchmarks publish their counters, one file per
// process, as the kernel publishes /proc/net/softnet_stat: `pollnet stat`
// reads them from another process while a bench runs, and after it ends.
func StatDir() string { return filepath.Join(os.TempDir(), "pollnet-stat") }

// StatPath is the counters file of process pid.
func StatPath(pid int) string { return filepath.Join(StatDir(), strconv.Itoa(pid)+".stat") }

// WriteStats prints the counters of a running scenario: per-core softnet
// figures in NAPI mode, poll-loop figures in PMD mode, and per-queue port
// counters with the interrupts each queue raised.
func WriteStats(w io.Writer, l *Live) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "mode %s, %d-byte frames\n", l.Mode, l.Size)
	if len(l.Softirqs) > 0 {
		fmt.Fprintln(w, "softnet (per core, as /proc/net/softnet_stat):")
		fmt.Fprintln(tw, "core\tprocessed\tdropped\ttime_squeeze\trounds\tpolls\tcompletes\twakeups\tparks\tyields\t")
		for _, s := range l.Softirqs {
			st := s.Stats()
			fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", s.Core(), st.Processed, st.Dropped, st.TimeSqueeze,
				st.Rounds, st.Polls, st.Completes, st.Wakeups, st.Parks, st.Yields)
		}
		tw.Flush()
	}
	if len(l.Workers) > 0 {
		fmt.Fprintln(w, "poll-mode workers:")
		fmt.Fprintln(tw, "core\trounds\tpolls\tempty\tpackets\tavg burst\tfull bursts\ttx\ttx dropped\t")
		for _, wk := range l.Workers {
			st := wk.Stats()
			empty := 0.0
			if st.Polls > 0 {
				empty = 100 * float64(st.EmptyPolls) / float64(st.Polls)
			}
			fmt.Fprintf(tw, "%d\t%d\t%d\t%.1f%%\t%d\t%.1f\t%d\t%d\t%d\t\n", wk.Core(), st.Rounds, st.Polls, empty,
				st.Packets, avgBurst(st), st.BurstHist[engine.Burst], st.TxPackets, st.TxDropped)
		}
		tw.Flush()
	}
	fmt.Fprintln(w, "queues:")
	fmt.Fprintln(tw, "port\tqueue\trx packets\trx bytes\trx_missed\trx_nombuf\tinterrupts\ttx packets\ttx bytes\ttx drops\t")
	for _, p := range l.Ports {
		info := p.Info()
		for q := 0; q < max(info.RxQueues, info.TxQueues); q++ {
			var rx, tx engine.QueueStats
			if q < info.RxQueues {
				rx = p.RxStats(q)
			}
			if q < info.TxQueues {
				tx = p.TxStats(q)
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", info.Name, q, rx.Packets, rx.Bytes,
				rx.Drops[engine.DropRingFull], rx.Drops[engine.DropNoMbuf], rx.Interrupts, tx.Packets, tx.Bytes, tx.Dropped())
		}
	}
	tw.Flush()
}

// StatPublisher rewrites this process's counters file a few times a second
// while a scenario runs, and leaves the last figures in it at the end.
type StatPublisher struct {
	path string
	mu   sync.Mutex
	live *Live
	last []byte
	done chan struct{}
	wg   sync.WaitGroup
}

// StartStatPublisher creates the counters file of this process.
func StartStatPublisher() (*StatPublisher, error) {
	if err := os.MkdirAll(StatDir(), 0o755); err != nil {
		return nil, fmt.Errorf("stat directory: %w", err)
	}
	pruneStatFiles()
	p := &StatPublisher{path: StatPath(os.Getpid()), done: make(chan struct{})}
	p.write("starting\n")
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-t.C:
				p.publish()
			}
		}
	}()
	return p, nil
}

// Set is PPSConfig.Live: it switches the file to a new scenario, or, with
// nil, freezes the last figures of the one that ended.
func (p *StatPublisher) Set(l *Live) {
	p.publish()
	p.mu.Lock()
	p.live = l
	p.mu.Unlock()
	p.publish()
}

func (p *StatPublisher) publish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.live == nil {
		return
	}
	var b bytes.Buffer
	WriteStats(&b, p.live)
	p.last = b.Bytes()
	p.writeLocked("running since " + time.Now().Format(time.RFC3339) + "\n")
}

func (p *StatPublisher) write(state string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.writeLocked(state)
}

func (p *StatPublisher) writeLocked(state string) {
	tmp := p.path + ".tmp"
	data := append([]byte(fmt.Sprintf("pollnet pid %d: %s", os.Getpid(), state)), p.last...)
	if os.WriteFile(tmp, data, 0o644) == nil {
		os.Rename(tmp, p.path)
	}
}

// Close stops publishing and marks the file finished, keeping the figures
// of the last scenario for `pollnet stat` to show.
func (p *StatPublisher) Close() {
	close(p.done)
	p.wg.Wait()
	p.write("finished at " + time.Now().Format(time.RFC3339) + "\n")
}

// Last is the text of the last figures published.
func (p *StatPublisher) Last() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return string(p.last)
}

// pruneStatFiles removes files of processes that no longer exist and that
// are more than a day old.
func pruneStatFiles() {
	ents, _ := os.ReadDir(StatDir())
	for _, e := range ents {
		pid, ok := statPID(e.Name())
		if !ok || processAlive(pid) {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > 24*time.Hour {
			os.Remove(filepath.Join(StatDir(), e.Name()))
		}
	}
}

func statPID(name string) (int, bool) {
	s, ok := strings.CutSuffix(name, ".stat")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(s)
	return pid, err == nil && pid > 0
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// StatFile is one process's counters file.
type StatFile struct {
	PID     int
	Running bool
	Path    string
	ModTime time.Time
}

// StatFiles lists the counters files, running processes first, newest first.
func StatFiles() ([]StatFile, error) {
	ents, err := os.ReadDir(StatDir())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var fs []StatFile
	for _, e := range ents {
		pid, ok := statPID(e.Name())
		if !ok {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		path := filepath.Join(StatDir(), e.Name())
		running := processAlive(pid) && !finished(path)
		fs = append(fs, StatFile{PID: pid, Running: running, Path: path, ModTime: fi.ModTime()})
	}
	sort.Slice(fs, func(i, j int) bool {
		if fs[i].Running != fs[j].Running {
			return fs[i].Running
		}
		return fs[i].ModTime.After(fs[j].ModTime)
	})
	return fs, nil
}

// finished reports whether a counters file says its bench has ended.
func finished(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return true
	}
	defer f.Close()
	var head [128]byte
	n, _ := f.Read(head[:])
	line, _, _ := strings.Cut(string(head[:n]), "\n")
	return strings.Contains(line, "finished")
}
