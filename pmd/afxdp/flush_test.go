package afxdp

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pollnet/pollnet/engine"
)

// datagrams builds n UDP frames to the kernel's dport, "<tag> <i>" each.
func (l *vethLink) datagrams(t *testing.T, tag string, dport, n int) []engine.Mbuf {
	t.Helper()
	frames := make([][]byte, n)
	for i := range frames {
		frames[i] = l.frame(unix.IPPROTO_UDP, dport, i, []byte(fmt.Sprintf("%s %d", tag, i)))
	}
	return l.mbufs(t, frames...)
}

// drain reads every datagram waiting on fd without blocking into seen.
func drain(fd int, seen map[string]bool) {
	buf := make([]byte, 2048)
	for {
		k, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
		if err != nil {
			return
		}
		seen[string(buf[:k])] = true
	}
}

// pollUntil calls RxBurst on queue 0, and nothing else on the port, until
// want datagrams have reached fd or 3 s pass.
func (l *vethLink) pollUntil(fd, want int, seen map[string]bool) {
	pkts := make([]engine.Mbuf, 32)
	deadline := time.Now().Add(3 * time.Second)
	for len(seen) < want && time.Now().Before(deadline) {
		k := l.port.RxBurst(0, pkts)
		freeAll(pkts[:k])
		drain(fd, seen)
		if k == 0 {
			time.Sleep(time.Millisecond)
		}
	}
}

func TestFramesABusyKernelLeftOnTheTxRingGoOutOnLaterRxBurstsWithoutAnotherTxBurst(t *testing.T) {
	l := newLink(t, Generic)
	fd := l.udpSocket(t, 7001)
	refuse := refuseKicks(l)
	const n = 40 // more than one sendto batch (32): two late kicks at least
	if got := l.port.TxBurst(0, l.datagrams(t, "late", 7001, n)); got != n {
		t.Fatalf("TxBurst took %d of %d", got, n)
	}
	tq := l.port.txq[0]
	st, _ := l.port.Stats(0)
	if st.TxBusy != maxKicks || st.TxWakeups != maxKicks {
		t.Errorf("after a burst the kernel refused: %d busy kicks of %d, want %d of %d (retried to the bound)", st.TxBusy, st.TxWakeups, maxKicks, maxKicks)
	}
	if left := tq.tx.published(); left != n || !tq.unsent.Load() {
		t.Fatalf("%d descriptors on the tx ring, unsent %v: want all %d, marked unsent", left, tq.unsent.Load(), n)
	}

	// While the kernel still refuses, each RxBurst kicks once, allocates
	// nothing, and the frames stay on the ring.
	pkts := make([]engine.Mbuf, 32)
	allocs := testing.AllocsPerRun(20, func() {
		k := l.port.RxBurst(0, pkts)
		freeAll(pkts[:k])
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per RxBurst that kicks for unsent frames, want 0", allocs)
	}
	st, _ = l.port.Stats(0)
	if st.TxLateKicks != 21 || st.TxBusy != maxKicks+21 {
		t.Errorf("after 21 RxBursts with the kernel refusing: %d late kicks, %d busy; want 21, %d", st.TxLateKicks, st.TxBusy, maxKicks+21)
	}
	seen := map[string]bool{}
	drain(fd, seen)
	if len(seen) != 0 || tq.tx.published() != n || !tq.unsent.Load() {
		t.Fatalf("with every kick refused the kernel got %d datagrams and %d descriptors are left (unsent %v), want 0, %d, true",
			len(seen), tq.tx.published(), tq.unsent.Load(), n)
	}

	// The kernel takes frames again: receiving alone sends them.
	refuse.Store(false)
	l.pollUntil(fd, n, seen)
	if len(seen) != n {
		t.Fatalf("the kernel received %d of %d datagrams left on the tx ring, with RxBurst polling", len(seen), n)
	}
	for i := 0; i < n; i++ {
		if !seen[fmt.Sprintf("late %d", i)] {
			t.Errorf("datagram %d missing", i)
		}
	}
	st, _ = l.port.Stats(0)
	if st.TxLateKicks < 21+2 {
		t.Errorf("%d late kicks in all, want at least two more than the 21 refused", st.TxLateKicks)
	}
	if tq.tx.published() != 0 || tq.unsent.Load() {
		t.Errorf("%d descriptors left and unsent %v after delivery, want 0, false", tq.tx.published(), tq.unsent.Load())
	}
	if tx := l.port.TxStats(0); tx.Packets != n {
		t.Errorf("tx packets %d, want %d", tx.Packets, n)
	}
}

func TestAnRxBurstMakesNoSendtoWhenNothingWaitsOnTheTxRing(t *testing.T) {
	l := newLink(t, Generic)
	fd := l.udpSocket(t, 7002)
	var kicks atomic.Int64
	l.port.socks[0].failTx = func() unix.Errno {
		kicks.Add(1)
		return 0 // the real sendto follows
	}
	pkts := make([]engine.Mbuf, 32)
	poll := func(times int) {
		for i := 0; i < times; i++ {
			k := l.port.RxBurst(0, pkts)
			freeAll(pkts[:k])
		}
	}
	poll(100)
	if k := kicks.Load(); k != 0 {
		t.Fatalf("%d sendto kicks from 100 RxBursts on a port that never sent", k)
	}
	const n = 8
	if got := l.port.TxBurst(0, l.datagrams(t, "sent", 7002, n)); got != n {
		t.Fatalf("TxBurst took %d of %d", got, n)
	}
	seen := map[string]bool{}
	buf := make([]byte, 2048)
	for len(seen) < n {
		k, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			t.Fatalf("the kernel received %d of %d datagrams: %v", len(seen), n, err)
		}
		seen[string(buf[:k])] = true
	}
	sent := kicks.Load()
	if sent == 0 {
		t.Fatal("TxBurst sent without a kick: the seam is not on the kick path")
	}
	poll(1000)
	st, _ := l.port.Stats(0)
	if k := kicks.Load() - sent; k != 0 || st.TxLateKicks != 0 {
		t.Errorf("%d sendto kicks (%d late) from 1000 RxBursts after every frame went out, want 0", k, st.TxLateKicks)
	}
}

// sysfsCounter reads one of an interface's statistics in its namespace.
func sysfsCounter(t *testing.T, l *vethLink, dev, name string) uint64 {
	t.Helper()
	out, err := l.ours.Exec("cat", "/sys/class/net/"+dev+"/statistics/"+name)
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(out), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// With the peer down the veth has no carrier, so the kernel's generic xmit
// drops each frame it hands the device and answers the kick with EBUSY,
// leaving the rest on the ring: a real busy kernel, no seam.
func TestFramesLeftOnTheTxRingWhileThePeerWasDownGoOutOnceItIsUpWithOnlyRxBursts(t *testing.T) {
	l := newLink(t, Generic)
	fd := l.udpSocket(t, 7003)
	if _, err := l.theirs.Exec("ip", "link", "set", "xb0", "down"); err != nil {
		t.Fatal(err)
	}
	dropped0 := sysfsCounter(t, l, "xa0", "tx_dropped")
	const n = 40
	if got := l.port.TxBurst(0, l.datagrams(t, "down", 7003, n)); got != n {
		t.Fatalf("TxBurst took %d of %d", got, n)
	}
	st, _ := l.port.Stats(0)
	tq := l.port.txq[0]
	left := tq.tx.published()
	if st.TxBusy == 0 || left == 0 || !tq.unsent.Load() {
		t.Skipf("this kernel did not refuse a kick with the peer down (busy %d, %d left): no EBUSY to test", st.TxBusy, left)
	}
	if _, err := l.theirs.Exec("ip", "link", "set", "xb0", "up"); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	l.pollUntil(fd, int(left), seen)
	if len(seen) != int(left) {
		t.Fatalf("the kernel received %d of the %d datagrams left on the tx ring, with RxBurst polling", len(seen), left)
	}
	if !seen[fmt.Sprintf("down %d", n-1)] {
		t.Errorf("the last datagram of the burst never arrived")
	}
	dropped := sysfsCounter(t, l, "xa0", "tx_dropped") - dropped0
	if uint64(len(seen))+dropped != n {
		t.Errorf("%d received + %d dropped by the device with no carrier = %d, want %d", len(seen), dropped, uint64(len(seen))+dropped, n)
	}
	st, _ = l.port.Stats(0)
	t.Logf("busy %d, late kicks %d, wakeups %d, device drops %d, left %d", st.TxBusy, st.TxLateKicks, st.TxWakeups, dropped, left)
}

func TestAnEmptyTxBurstSendsWhatABusyKernelLeftOnTheTxRing(t *testing.T) {
	l := newLink(t, Generic)
	fd := l.udpSocket(t, 7004)
	refuse := refuseKicks(l)
	const n = 40
	if got := l.port.TxBurst(0, l.datagrams(t, "empty", 7004, n)); got != n {
		t.Fatalf("TxBurst took %d of %d", got, n)
	}
	tq := l.port.txq[0]
	if tq.tx.published() != n || !tq.unsent.Load() {
		t.Fatalf("%d descriptors left, unsent %v, want %d, true", tq.tx.published(), tq.unsent.Load(), n)
	}
	refuse.Store(false)
	l.port.TxBurst(0, nil)
	if tq.tx.published() != 0 || tq.unsent.Load() {
		t.Errorf("after an empty TxBurst %d descriptors left, unsent %v, want 0, false", tq.tx.published(), tq.unsent.Load())
	}
	seen := map[string]bool{}
	buf := make([]byte, 2048)
	for len(seen) < n {
		k, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			t.Fatalf("the kernel received %d of %d datagrams: %v", len(seen), n, err)
		}
		seen[string(buf[:k])] = true
	}
	if st, _ := l.port.Stats(0); st.TxLateKicks != 0 {
		t.Errorf("%d late kicks with no RxBurst, want 0", st.TxLateKicks)
	}
}

// The receive side's kick and the transmit side share only the unsent flag,
// counters and the ring's mapped indices; with both driven at once from two
// goroutines and a kernel that refuses ten kicks in every sixteen (longer
// than a TxBurst retries) and every kick of the last burst, every frame
// still arrives (and -race sees no unsynchronised access).
func TestEveryFrameArrivesWhenTxBurstAndRxBurstKickFromTwoGoroutines(t *testing.T) {
	l := newLink(t, Generic)
	fd := l.udpSocket(t, 7005)
	var kicks atomic.Int64
	var refuseAll atomic.Bool
	l.port.socks[0].failTx = func() unix.Errno {
		if kicks.Add(1)%16 >= 6 || refuseAll.Load() {
			return unix.EBUSY
		}
		return 0
	}
	const bursts, per = 16, 12
	all := make([][]engine.Mbuf, bursts)
	for b := range all {
		all[b] = l.datagrams(t, fmt.Sprintf("two %d", b), 7005, per)
	}
	var txDone, rxDone atomic.Bool
	go func() { // the transmitting goroutine
		defer txDone.Store(true)
		deadline := time.Now().Add(3 * time.Second)
		for b, pkts := range all {
			if b == bursts-1 { // only the receive side can send this one
				refuseAll.Store(true)
				defer refuseAll.Store(false)
			}
			for len(pkts) > 0 && time.Now().Before(deadline) {
				pkts = pkts[l.port.TxBurst(0, pkts):]
			}
			freeAll(pkts)
			time.Sleep(time.Millisecond)
		}
	}()
	go func() { // the receiving goroutine: it alone kicks after the last burst
		defer rxDone.Store(true)
		pkts := make([]engine.Mbuf, 32)
		deadline := time.Now().Add(4 * time.Second)
		for !txDone.Load() || l.port.txq[0].unsent.Load() {
			if time.Now().After(deadline) {
				return
			}
			k := l.port.RxBurst(0, pkts)
			freeAll(pkts[:k])
		}
	}()
	seen := map[string]bool{}
	buf := make([]byte, 2048)
	for len(seen) < bursts*per {
		k, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil && rxDone.Load() {
			break
		}
		if err == nil {
			seen[string(buf[:k])] = true
		}
	}
	for !rxDone.Load() {
		time.Sleep(time.Millisecond)
	}
	if len(seen) != bursts*per {
		t.Fatalf("the kernel received %d of %d datagrams", len(seen), bursts*per)
	}
	st, _ := l.port.Stats(0)
	if st.TxBusy == 0 || st.TxLateKicks == 0 {
		t.Errorf("%d kicks refused, %d late kicks: the test did not exercise both paths", st.TxBusy, st.TxLateKicks)
	}
	t.Logf("kicks %d: busy %d, late %d, wakeups %d", kicks.Load(), st.TxBusy, st.TxLateKicks, st.TxWakeups)
}

// refuseKicks makes the port's transmit kicks fail with EBUSY, as a busy
// device's do, while the flag it returns is set (it starts set).
func refuseKicks(l *vethLink) *atomic.Bool {
	var refuse atomic.Bool
	refuse.Store(true)
	l.port.socks[0].failTx = func() unix.Errno {
		if refuse.Load() {
			return unix.EBUSY
		}
		return 0
	}
	return &refuse
}
