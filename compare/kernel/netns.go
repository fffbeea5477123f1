package kernel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pollnet/pollnet/internal/netns"
)

// NetnsPrefix starts the name of every network namespace this package
// creates, so a test or an operator can tell ours from anyone else's (and
// find leftovers after a crash: `ip netns list | grep pollnet-cmp-`).
const NetnsPrefix = "pollnet-cmp-"

// The veth topology's addresses: 198.18.0.0/15 is the benchmarking range
// (RFC 2544), and traffic to it never leaves the two namespaces we create.
var (
	vethTxAddr = [4]byte{198, 18, 0, 1}
	vethRxAddr = [4]byte{198, 18, 0, 2}
	loopAddr   = [4]byte{127, 0, 0, 1}
)

const (
	topoLoopback = "loopback"
	topoVeth     = "veth"
)

// topology is where a workload's two ends live: both in this process's own
// network namespace on loopback, or in two namespaces joined by a veth pair.
type topology struct {
	name           string
	txNS, rxNS     string // namespace names for `ip netns exec`; "" is our own
	txAddr, rxAddr [4]byte
	mtu            int // the MTU of the interfaces between the two ends
	close          func() error
}

func (t *topology) Close() error {
	if t.close == nil {
		return nil
	}
	return t.close()
}

// skipError marks a topology or tool that this machine cannot provide; its
// message becomes a scenario's Skipped reason rather than a failure.
type skipError struct{ reason string }

func (e *skipError) Error() string { return e.reason }

func skipf(format string, args ...any) error {
	return &skipError{reason: fmt.Sprintf(format, args...)}
}

// skipReason turns an error from a scenario into its Skipped text: the reason
// itself for a skipError, "failed: ..." for anything else, so a reader can
// tell "cannot run here" from "broke".
func skipReason(err error) string {
	var s *skipError
	if errors.As(err, &s) {
		return s.reason
	}
	return "failed: " + err.Error()
}

// openTopology sets up the named topology, the veth pair at the given MTU
// (loopback keeps its own). The returned topology must be closed; on error
// nothing is left behind.
func openTopology(ctx context.Context, name string, mtu int) (*topology, error) {
	switch name {
	case topoLoopback:
		return &topology{name: name, txAddr: loopAddr, rxAddr: loopAddr, mtu: loopbackMTU()}, nil
	case topoVeth:
		return openVeth(ctx, mtu)
	}
	return nil, fmt.Errorf("unknown topology %q (use %s or %s)", name, topoLoopback, topoVeth)
}

var netnsSeq atomic.Uint64

// loopbackMTU is the MTU of this namespace's loopback device (65536 on
// Linux): the loopback topology cannot be given pollnet's MTU without
// changing the host's lo, which this package never does, so its scenarios
// record the MTU they really had.
func loopbackMTU() int {
	ifc, err := net.InterfaceByName("lo")
	if err != nil {
		return 0
	}
	return ifc.MTU
}

// openVeth creates two network namespaces joined by a veth pair with the
// given MTU, 198.18.0.1/24 in the sender's and 198.18.0.2/24 in the
// receiver's. It uses iproute2 rather than netlink by hand because `ip netns
// add` also makes the bind mount that `ip netns exec` (for iperf3) needs.
func openVeth(ctx context.Context, mtu int) (t *topology, err error) {
	if os.Geteuid() != 0 {
		return nil, skipf("needs root for network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, skipf("ip not installed: apt-get install iproute2")
	}
	reapStale(ctx)
	base := fmt.Sprintf("%s%d-%d", NetnsPrefix, os.Getpid(), netnsSeq.Add(1))
	tx, rx := base+"-tx", base+"-rx"
	var made []string
	cleanup := func() error {
		var errs []error
		for _, ns := range made {
			// Deleting a namespace takes its end of the veth pair with it.
			if err := runIP(context.Background(), "netns", "del", ns); err != nil {
				errs = append(errs, err)
			}
		}
		made = nil
		return errors.Join(errs...)
	}
	defer func() {
		if err != nil {
			_ = cleanup()
		}
	}()
	for _, ns := range []string{tx, rx} {
		if err := runIP(ctx, "netns", "add", ns); err != nil {
			return nil, skipf("cannot create a network namespace: %v", err)
		}
		made = append(made, ns)
	}
	steps := [][]string{
		{"link", "add", "veth0", "netns", tx, "type", "veth", "peer", "name", "veth1", "netns", rx},
		{"-n", tx, "addr", "add", addrString(vethTxAddr) + "/24", "dev", "veth0"},
		{"-n", rx, "addr", "add", addrString(vethRxAddr) + "/24", "dev", "veth1"},
		{"-n", tx, "link", "set", "veth0", "mtu", strconv.Itoa(mtu)},
		{"-n", rx, "link", "set", "veth1", "mtu", strconv.Itoa(mtu)},
		{"-n", tx, "link", "set", "lo", "up"},
		{"-n", rx, "link", "set", "lo", "up"},
		{"-n", tx, "link", "set", "veth0", "up"},
		{"-n", rx, "link", "set", "veth1", "up"},
	}
	for _, args := range steps {
		if err := runIP(ctx, args...); err != nil {
			return nil, skipf("cannot set up the veth pair: %v", err)
		}
	}
	for _, end := range [][2]string{{tx, "veth0"}, {rx, "veth1"}} {
		if err := waitLinkUp(ctx, end[0], end[1]); err != nil {
			return nil, skipf("the veth pair did not come up: %v", err)
		}
	}
	return &topology{name: topoVeth, txNS: tx, rxNS: rx, txAddr: vethTxAddr, rxAddr: vethRxAddr, mtu: mtu, close: cleanup}, nil
}

// linkUpLimit bounds the wait for a veth end to come up.
const linkUpLimit = 5 * time.Second

// waitLinkUp waits until device dev in namespace ns is up with its queue
// discipline attached. `ip link set up` returns before that: the kernel's
// linkwatch work attaches the qdisc and sets the operational state later,
// and until it has, the device drops everything sent to it (noop qdisc) —
// on a loaded machine a whole short run's worth.
func waitLinkUp(ctx context.Context, ns, dev string) error {
	ctx, cancel := context.WithTimeout(ctx, linkUpLimit)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		out, err := exec.CommandContext(ctx, "ip", "-n", ns, "-o", "link", "show", "dev", dev).Output()
		if err == nil && linkReady(string(out)) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s in %s: not up within %v: %s", dev, ns, linkUpLimit, strings.TrimSpace(string(out)))
		case <-tick.C:
		}
	}
}

// linkReady reports whether a line of `ip -o link show` describes a device
// that is operationally up and has a real queue discipline.
func linkReady(line string) bool {
	return strings.Contains(line, " state UP ") && !strings.Contains(line, " qdisc noop ")
}

// reapStale deletes namespaces that an earlier process of ours left behind
// when it was killed before it could clean up: names with our prefix whose
// process ID no longer exists. A live process's namespaces are left alone.
func reapStale(ctx context.Context) {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), NetnsPrefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) {
			_ = runIP(ctx, "netns", "del", e.Name())
		}
	}
}

// runIP runs one iproute2 command with a time limit, returning its stderr
// as the error.
func runIP(ctx context.Context, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("ip %s: %s", strings.Join(args, " "), msg)
	}
	return nil
}

// inNetns runs fn on an OS thread that has joined the named network
// namespace ("" runs it here); sockets fn opens stay in that namespace.
func inNetns(name string, fn func() error) error {
	if name == "" {
		return fn()
	}
	return (&netns.NS{Name: name}).Do(fn)
}

func addrString(a [4]byte) string {
	return fmt.Sprintf("%d.%d.%d.%d", a[0], a[1], a[2], a[3])
}
