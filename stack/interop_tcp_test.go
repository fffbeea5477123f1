package stack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// bulkSize is the size of the long interop downloads: 64 MiB, or 4 MiB
// under the race detector, which slows everything tenfold.
func bulkSize() int {
	if raceEnabled {
		return 4 << 20
	}
	return 64 << 20
}

// bulkTimeout bounds each long interop transfer.
const bulkTimeout = 120 * time.Second

// randomBytes is n pseudo-random bytes, the same for the same seed.
func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	rand.NewChaCha8(s).Read(b)
	return b
}

// writeBlob writes n pseudo-random bytes to dir/name and returns their
// SHA-256.
func writeBlob(t *testing.T, dir, name string, n int) [32]byte {
	t.Helper()
	b := randomBytes(n, uint64(n))
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// nsRun runs a command inside k's namespace, bounded by d.
func (k *kernelLink) nsRun(t *testing.T, d time.Duration, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", k.ns.Name}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s in the namespace: %v: %s (our TCP %+v)", strings.Join(args, " "), err, out, k.st.Stats().TCP)
	}
	return string(out)
}

// serveDir serves dir with net/http on our TCP at ourAddr:port until the
// test ends.
func (k *kernelLink) serveDir(t *testing.T, dir string, port uint16) {
	t.Helper()
	l, err := k.st.ListenTCP(ap(ourAddr, port))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir)), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() { // before the stack closes: cleanups run last first
		srv.Close()
		if err := <-done; err != http.ErrServerClosed {
			t.Errorf("http.Serve on our listener: %v", err)
		}
	})
}

func TestCurlDownloadsABigFileFromNetHTTPOnOurTCP(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("no curl: apt-get install curl (make deps does)")
	}
	forModes(t, func(t *testing.T, mode Mode) {
		k := newKernelLink(t, mode)
		dir, n := t.TempDir(), bulkSize()
		want := writeBlob(t, dir, "blob.bin", n)
		k.serveDir(t, dir, 8080)

		got := filepath.Join(t.TempDir(), "got.bin")
		url := fmt.Sprintf("http://%v/blob.bin", ap(ourAddr, 8080))
		speed := k.nsRun(t, bulkTimeout+5*time.Second, "curl", "-sS", "--fail", "--max-time", strconv.Itoa(int(bulkTimeout/time.Second)),
			"-o", got, "-w", "%{speed_download}", url)
		b, err := os.ReadFile(got)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != n || sha256.Sum256(b) != want {
			t.Fatalf("curl got %d bytes, want %d, and their SHA-256 differs", len(b), n)
		}
		// The link neither loses nor reorders much: D-SACKs, which report
		// what we resent for nothing, must stay rare.
		st := k.st.Stats().TCP
		if st.TCPDSACKRecv*200 > st.OutSegs {
			t.Errorf("%d of %d segments resent for nothing (D-SACKs): %+v", st.TCPDSACKRecv, st.OutSegs, st)
		}
		t.Logf("curl: %d bytes at %s B/s; our TCP %+v", n, speed, st)
	})
}

func TestOurHTTPClientDownloadsABigFileFromTheKernel(t *testing.T) {
	forModes(t, func(t *testing.T, mode Mode) {
		k := newKernelLink(t, mode)
		dir, n := t.TempDir(), bulkSize()
		want := writeBlob(t, dir, "blob.bin", n)

		// net/http on a kernel socket opened inside the namespace.
		var ln net.Listener
		if err := k.ns.Do(func() (err error) {
			ln, err = net.Listen("tcp4", ap(kernelAddr, 8081).String())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.FileServer(http.Dir(dir)), ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()

		tr := &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				raddr, err := netip.ParseAddrPort(addr)
				if err != nil {
					return nil, err
				}
				return k.st.DialTCP(ctx, netip.AddrPort{}, raddr)
			},
			DisableCompression: true,
		}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, Timeout: bulkTimeout}
		start := time.Now()
		resp, err := client.Get(fmt.Sprintf("http://%v/blob.bin", ap(kernelAddr, 8081)))
		if err != nil {
			t.Fatalf("GET: %v (our TCP %+v)", err, k.st.Stats().TCP)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET: %s", resp.Status)
		}
		h := sha256.New()
		got, err := io.Copy(h, resp.Body)
		if err != nil {
			t.Fatalf("after %d bytes: %v (our TCP %+v)", got, err, k.st.Stats().TCP)
		}
		if got != int64(n) || !bytes.Equal(h.Sum(nil), want[:]) {
			t.Fatalf("got %d bytes, want %d, and their SHA-256 differs", got, n)
		}
		t.Logf("our client: %d bytes in %v; our TCP %+v", n, time.Since(start).Round(time.Millisecond), k.st.Stats().TCP)
	})
}

// halfCloser is a TCP connection on either stack.
type halfCloser interface {
	net.Conn
	CloseWrite() error
}

// exchange sends a payload each way over c and d at once. c shuts its
// sending side as soon as it has sent, so its FIN goes first; d closes only
// once it has read c's EOF. Both must read the other's payload whole and
// then EOF.
func exchange(t *testing.T, c, d halfCloser, size int) {
	t.Helper()
	type end struct {
		conn      halfCloser
		out       []byte
		closeLast bool // send the FIN only after reading the peer's
	}
	ends := []end{{c, randomBytes(size, 1), false}, {d, randomBytes(size, 2), true}}
	errs := make(chan error, 4)
	got := make([][]byte, 2)
	for i, e := range ends {
		e.conn.SetDeadline(time.Now().Add(60 * time.Second))
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			if _, err := e.conn.Write(e.out); err != nil {
				errs <- fmt.Errorf("end %d write: %w", i, err)
				return
			}
			if !e.closeLast {
				if err := e.conn.CloseWrite(); err != nil {
					errs <- fmt.Errorf("end %d shutdown: %w", i, err)
				}
			}
		}()
		go func() {
			b, err := io.ReadAll(e.conn) // to EOF
			got[i] = b
			if err != nil {
				errs <- fmt.Errorf("end %d read after %d bytes: %w", i, len(b), err)
			}
			<-wrote
			if err := e.conn.Close(); err != nil {
				errs <- fmt.Errorf("end %d close: %w", i, err)
			}
			errs <- nil
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i := range ends {
		if want := ends[1-i].out; !bytes.Equal(got[i], want) {
			t.Fatalf("end %d read %d bytes, want %d, and they differ", i, len(got[i]), len(want))
		}
	}
}

// kernelSockets are the kernel's TCP sockets in the namespace, as ss shows
// them: state, local and peer address.
func (k *kernelLink) kernelSockets(t *testing.T) [][3]string {
	t.Helper()
	var out [][3]string
	for _, line := range strings.Split(strings.TrimSpace(k.nsRun(t, 10*time.Second, "ss", "-tanH")), "\n") {
		if f := strings.Fields(line); len(f) >= 5 {
			out = append(out, [3]string{f[0], f[3], f[4]})
		}
	}
	return out
}

// kernelTCP reads the namespace's TCP MIB (/proc/net/snmp).
func (k *kernelLink) kernelTCP(t *testing.T) map[string]int64 {
	t.Helper()
	var names []string
	m := map[string]int64{}
	for _, line := range strings.Split(k.nsRun(t, 10*time.Second, "cat", "/proc/net/snmp"), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Tcp:" {
			continue
		}
		if names == nil {
			names = f[1:]
			continue
		}
		for i, v := range f[1:] {
			if i < len(names) {
				m[names[i]], _ = strconv.ParseInt(v, 10, 64)
			}
		}
	}
	return m
}

func TestTCPWithTheKernelBothWaysAndCleanCloses(t *testing.T) {
	if _, err := exec.LookPath("ss"); err != nil {
		t.Skip("no ss: apt-get install iproute2 (make deps does)")
	}
	size := 4 << 20
	if raceEnabled {
		size = 1 << 20
	}
	forModes(t, func(t *testing.T, mode Mode) {
		for _, kernelDials := range []bool{true, false} {
			for _, kernelFirst := range []bool{true, false} {
				name := map[bool]string{true: "kernel dials", false: "we dial"}[kernelDials] + ", " +
					map[bool]string{true: "kernel closes first", false: "we close first"}[kernelFirst]
				t.Run(name, func(t *testing.T) {
					k := newKernelLink(t, mode)
					kc, ours := k.connect(t, kernelDials)
					if kernelFirst {
						exchange(t, kc, ours, size)
					} else {
						exchange(t, ours, kc, size)
					}
					k.checkClosed(t, kc, ours, kernelFirst)
				})
			}
		}
	})
}

// connect opens a connection between the kernel and us, dialled by the
// kernel to our listener or by us to the kernel's; both listeners are
// closed by the time it returns.
func (k *kernelLink) connect(t *testing.T, kernelDials bool) (*net.TCPConn, *TCPConn) {
	t.Helper()
	const port = 9100
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var kc net.Conn
	var ours *TCPConn
	if kernelDials {
		l, err := k.st.ListenTCP(ap(ourAddr, port))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		l.SetDeadline(time.Now().Add(10 * time.Second))
		accepted := make(chan error, 1)
		go func() {
			var err error
			ours, err = l.AcceptTCP()
			accepted <- err
		}()
		if err := k.ns.Do(func() (err error) {
			var d net.Dialer
			kc, err = d.DialContext(ctx, "tcp4", ap(ourAddr, port).String())
			return err
		}); err != nil {
			t.Fatalf("kernel dial: %v (our TCP %+v)", err, k.st.Stats().TCP)
		}
		if err := <-accepted; err != nil {
			t.Fatalf("our accept: %v", err)
		}
	} else {
		var l net.Listener
		if err := k.ns.Do(func() (err error) {
			l, err = net.Listen("tcp4", ap(kernelAddr, port).String())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		accepted := make(chan error, 1)
		go func() {
			var err error
			kc, err = l.Accept()
			accepted <- err
		}()
		var err error
		if ours, err = k.st.DialTCP(ctx, netip.AddrPort{}, ap(kernelAddr, port)); err != nil {
			l.Close()
			t.Fatalf("our dial: %v (our TCP %+v)", err, k.st.Stats().TCP)
		}
		if err := <-accepted; err != nil {
			t.Fatalf("kernel accept: %v", err)
		}
	}
	return kc.(*net.TCPConn), ours
}

// checkClosed waits for both ends to settle after a clean close and checks
// that only the side that closed first holds the connection, in TIME-WAIT,
// and that neither side reset it.
func (k *kernelLink) checkClosed(t *testing.T, kc *net.TCPConn, ours *TCPConn, kernelFirst bool) {
	t.Helper()
	kl := kc.LocalAddr().String()
	ol := ours.LocalAddr().String()
	wantKernel := [][3]string(nil)
	wantOurs, wantState := [2]int{0, 0}, "CLOSED"
	if kernelFirst {
		wantKernel = [][3]string{{"TIME-WAIT", kl, ol}}
	} else {
		wantOurs, wantState = [2]int{0, 1}, "TIME-WAIT"
	}
	var gotKernel [][3]string
	var gotOurs [2]int
	// The last ACK may still be on its way: give it a moment.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		gotKernel = k.kernelSockets(t)
		gotOurs[0], gotOurs[1] = k.st.TCPConns()
		settled := fmt.Sprint(gotKernel) == fmt.Sprint(wantKernel) && gotOurs == wantOurs && ours.State().String() == wantState
		if settled || time.Now().After(deadline) {
			break
		}
	}
	if fmt.Sprint(gotKernel) != fmt.Sprint(wantKernel) {
		t.Errorf("kernel sockets (ss -tan) %v, want %v", gotKernel, wantKernel)
	}
	if gotOurs != wantOurs || ours.State().String() != wantState {
		t.Errorf("our TCPConns (connections, TIME-WAIT) %v, want %v; our connection %v, want %s", gotOurs, wantOurs, ours.State(), wantState)
	}
	st := k.st.Stats().TCP
	if st.OutRsts != 0 || st.EstabResets != 0 || st.AttemptFails != 0 {
		t.Errorf("our TCP reset or failed a connection: %+v", st)
	}
	km := k.kernelTCP(t)
	if km["OutRsts"] != 0 || km["EstabResets"] != 0 || km["AttemptFails"] != 0 {
		t.Errorf("the kernel's TCP reset or failed a connection: %v", km)
	}
}
