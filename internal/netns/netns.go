// Package netns makes network namespaces for tests and benchmarks that need
// the real Linux stack as a peer: it creates them, runs commands and opens
// sockets inside them, and deletes them afterwards. Addresses used inside
// belong to 198.18.0.0/15, the benchmarking range.
package netns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Usable reports why namespaces cannot be made here, or nil if they can.
func Usable() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) for network namespaces; CI runs as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("no ip command: apt-get install iproute2 (make deps does)")
	}
	return nil
}

// NS is a network namespace this process created.
type NS struct {
	Name string
}

// New creates a namespace named prefix plus a random suffix, with its
// loopback up. Delete it when done.
func New(prefix string) (*NS, error) {
	var r [4]byte
	rand.Read(r[:])
	ns := &NS{Name: prefix + "-" + hex.EncodeToString(r[:])}
	if _, err := Run("ip", "netns", "add", ns.Name); err != nil {
		return nil, err
	}
	if _, err := ns.Exec("ip", "link", "set", "lo", "up"); err != nil {
		ns.Delete()
		return nil, err
	}
	return ns, nil
}

// Delete removes the namespace and every link inside it.
func (ns *NS) Delete() error {
	_, err := Run("ip", "netns", "del", ns.Name)
	return err
}

// Exec runs a command inside the namespace, with a 30-second bound.
func (ns *NS) Exec(args ...string) (string, error) {
	return Run(append([]string{"ip", "netns", "exec", ns.Name}, args...)...)
}

// Run runs a command with a 30-second bound and returns its combined output;
// the error quotes the command and its output.
func Run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Do runs fn on an OS thread that has joined the namespace, so the sockets
// fn opens live there (they stay there after fn returns). If the thread
// cannot return to its own namespace, it stays locked and dies with its
// goroutine, so no other goroutine inherits the namespace.
func (ns *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer unix.Close(orig)
		target, err := unix.Open("/run/netns/"+ns.Name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer unix.Close(target)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", ns.Name, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("return from namespace %s: %w", ns.Name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
