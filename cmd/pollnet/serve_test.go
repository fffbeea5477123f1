package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pollnet/pollnet/internal/netns"
	"github.com/pollnet/pollnet/serve"
)

func TestServeRefusesBadFlagsWithExitTwoAndSaysWhatToDo(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"serve"}, "give one directory"},
		{[]string{"serve", dir, dir}, "give one directory"},
		{[]string{"serve", filepath.Join(dir, "nope")}, "give an existing directory"},
		{[]string{"serve", file}, "is not a directory"},
		{[]string{"serve", "--addr", "198.18.0.300/24", dir}, "--addr"},
		{[]string{"serve", "--addr", "198.18.0.2", dir}, "prefix length"},
		{[]string{"serve", "--addr", "2001:db8::2/64", dir}, "IPv4"},
		{[]string{"serve", "--addr", "198.18.0.0/24", dir}, "network address"},
		{[]string{"serve", "--addr", "198.18.0.255/24", dir}, "broadcast address"},
		{[]string{"serve", "--peer", "198.19.0.1/24", dir}, "outside --addr"},
		{[]string{"serve", "--peer", "198.18.0.2/24", dir}, "--peer"},
		{[]string{"serve", "--mode", "dpdk", dir}, "--mode \"dpdk\": use pmd or napi"},
		{[]string{"serve", "--http-port", "0", dir}, "--http-port 0 out of range"},
		{[]string{"serve", "--http-port", "65536", dir}, "1..65535"},
		{[]string{"serve", "--netns", "pn-no-such-namespace", dir}, "no such namespace"},
		{[]string{"serve", "--netns", "../etc", dir}, "--netns"},
		{[]string{"serve", "--tap", "a-name-far-too-long", dir}, "--tap"},
		{[]string{"serve", "--no-such-flag", dir}, "no-such-flag"},
		{[]string{"serve", "--port", "xdp", dir}, "--port \"xdp\": use " + serve.PortKinds},
		{[]string{"serve", "--port", "afpacket", "--veth", "a-name-too-long", dir}, "--veth"},
		{[]string{"serve", "--port", "afxdp", "--veth", "a-name-too-long", dir}, "--veth"},
	}
	// The refusal of an unknown kind names every kind.
	for _, kind := range []string{"tap", "afpacket", "afxdp", "dpdk"} {
		if !strings.Contains(serve.PortKinds, kind) {
			t.Errorf("the port kinds %q do not name %s", serve.PortKinds, kind)
		}
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		if code := run(c.args, &out, &errb); code != exitUsage {
			t.Errorf("%v: exit %d, want %d (stderr %q)", c.args, code, exitUsage, errb.String())
		}
		if !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: message %q does not mention %q", c.args, errb.String(), c.want)
		}
	}
}

// buildPollnet builds the command into a temporary directory, with the
// build tags given.
func buildPollnet(t *testing.T, tags ...string) string {
	t.Helper()
	goCmd := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goCmd); err != nil {
		t.Skipf("no go command at %s to build pollnet: %v", goCmd, err)
	}
	bin := filepath.Join(t.TempDir(), "pollnet")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args := []string{"build", "-o", bin}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	if out, err := exec.CommandContext(ctx, goCmd, append(args, ".")...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// Every kernel-facing port kind of this binary serves a download to curl
// in a namespace and, on SIGTERM, exits 0 leaving no interface or
// namespace behind. Each kind runs in one mode, the modes alternating, to
// keep the test short; AF_XDP, the newest, runs in both.
func TestServeOnEveryPortKindAnswersCurlInANamespaceAndStopsCleanlyOnSIGTERM(t *testing.T) {
	cases := []struct {
		port, mode string
		usable     func() error
	}{
		{"tap", "napi", tunUsable},
		{"afpacket", "pmd", ethtoolUsable},
		{"afxdp", "napi", afxdpUsable},
		{"afxdp", "pmd", afxdpUsable},
	}
	if err := netns.Usable(); err != nil {
		t.Skip(err)
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("no curl: apt-get install curl (make deps does)")
	}
	bin := buildPollnet(t)
	for _, c := range cases {
		t.Run(c.port+"/"+c.mode, func(t *testing.T) {
			if err := c.usable(); err != nil {
				t.Skip(err)
			}
			testServeCurl(t, bin, c.port, c.mode)
		})
	}
}

func tunUsable() error {
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return fmt.Errorf("no /dev/net/tun (%v): modprobe tun", err)
	}
	return nil
}

func ethtoolUsable() error {
	if _, err := exec.LookPath("ethtool"); err != nil {
		return errors.New("no ethtool, which serve's veth ports need: apt-get install ethtool (make deps does)")
	}
	return nil
}

func afxdpUsable() error {
	if err := ethtoolUsable(); err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("this kernel has no AF_XDP sockets: %v", err)
	}
	unix.Close(fd)
	return nil
}

// testServeCurl runs bin's `pollnet serve --port port --mode mode` (no
// --mode where mode is "": the port's default) with the kernel's end in a
// namespace, fetches a file with curl from there, checks its SHA-256, stops
// the command with SIGTERM and checks it left no interface behind.
func testServeCurl(t *testing.T, bin, port, mode string) {
	ns, err := netns.New("pn-serve")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ns.Delete(); err != nil {
			t.Errorf("delete namespace: %v", err)
		}
	})

	dir := t.TempDir()
	data := make([]byte, 3<<20+12345)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(dir, "blob.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	var suffix [3]byte
	rand.Read(suffix[:])
	tapName := "pnsv" + hex.EncodeToString(suffix[:])

	// cancel kills the command if the test ends before it exits.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := []string{"serve", "--netns", ns.Name, "--peer", "198.18.0.1/24",
		"--addr", "198.18.0.2/24", "--http-port", "8080", "--port", port, dir}
	if mode != "" {
		args = append(args, "--mode", mode)
	}
	ifaces := []string{tapName}
	if port == "afpacket" || port == "afxdp" {
		args = append(args, "--veth", tapName)
		ifaces = append(ifaces, tapName+"k")
	} else {
		args = append(args, "--tap", tapName)
	}
	before := vethNamespaces(t)
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 8)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait() // after stdout is drained, as Wait requires
	}()

	const url = "http://198.18.0.2:8080/"
	select {
	case l, ok := <-lines:
		if !ok || !strings.Contains(l, url) || !strings.Contains(l, tapName) {
			t.Fatalf("first line %q, want the URL %s and interface %s; stderr: %s", l, url, tapName, stderr.String())
		}
		want := mode
		if want == "" { // the port's default: DPDK ports are polled
			want = map[bool]string{true: "pmd", false: string(serve.DefaultMode)}[port == "dpdk"]
		}
		if !strings.Contains(l, ", "+want+" mode)") {
			t.Fatalf("first line %q does not say %s mode", l, want)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no URL printed in 20s; stderr: %s", stderr.String())
	}

	got := filepath.Join(t.TempDir(), "got.bin")
	if out, err := ns.Exec("curl", "-sS", "--fail", "--max-time", "25", "-o", got, url+"blob.bin"); err != nil {
		t.Fatalf("curl in the namespace: %v %s", err, out)
	}
	b, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(b) != sha256.Sum256(data) {
		t.Fatalf("downloaded %d bytes, want %d, and their SHA-256 differs", len(b), len(data))
	}
	// The kernel's end and our port have MACs of their own (DPDK's net_tap
	// gives its TAP the port's).
	kernelEnd := ifaces[len(ifaces)-1]
	link, err := ns.Exec("ip", "-br", "link", "show", "dev", kernelEnd)
	if err != nil {
		t.Fatal(err)
	}
	neigh, err := ns.Exec("ip", "neigh", "show", "198.18.0.2", "dev", kernelEnd)
	if err != nil {
		t.Fatal(err)
	}
	f, ours := strings.Fields(link), ""
	if i := strings.Index(neigh, "lladdr "); i >= 0 {
		ours = strings.Fields(neigh[i:])[1]
	}
	if len(f) < 3 || ours == "" || f[2] == ours {
		t.Fatalf("the kernel's end %q and our port (neighbour %q) should have different MACs", link, neigh)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("after SIGTERM: %v; stderr: %s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("still running 15s after SIGTERM; stderr: %s", stderr.String())
	}
	for _, name := range ifaces {
		if out, err := ns.Exec("ip", "link", "show", name); err == nil {
			t.Fatalf("interface %s left in the namespace after exit:\n%s", name, out)
		}
		if out, err := netns.Run("ip", "link", "show", name); err == nil {
			t.Fatalf("interface %s left in this namespace after exit:\n%s", name, out)
		}
	}
	// The namespace our veth end lived in went with it.
	for name := range vethNamespaces(t) {
		if !before[name] {
			t.Fatalf("namespace %s left after exit", name)
		}
	}
}

// vethNamespaces are the namespaces serve's veth ports make for its
// veth end (pn-sveth-...).
func vethNamespaces(t *testing.T) map[string]bool {
	t.Helper()
	out, err := netns.Run("ip", "netns", "list")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], "pn-sveth-") {
			m[f[0]] = true
		}
	}
	return m
}
