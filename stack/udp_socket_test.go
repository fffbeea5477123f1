package stack

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/pmd/wire"
	"github.com/pollnet/pollnet/stack/socket"
)

var bothModes = []Mode{ModePMD, ModeNAPI}

// isOpError reports whether err is a *net.OpError of op wrapping target, the
// shape the net package gives its errors.
func isOpError(err error, op string, target error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == op && errors.Is(err, target)
}

func TestCloseWakesABlockedReadWithErrClosedInBothModes(t *testing.T) {
	for _, mode := range bothModes {
		t.Run(string(mode), func(t *testing.T) {
			p := newPair(t, mode, wire.Config{}, 0)
			c, err := p.b.ListenUDP(ap(addrB, 7200))
			if err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() {
				_, _, err := c.ReadFromUDPAddrPort(make([]byte, 100))
				errc <- err
			}()
			time.Sleep(50 * time.Millisecond) // let the reader block (it may not have: same outcome)
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-errc:
				if !isOpError(err, "read", net.ErrClosed) {
					t.Fatalf("blocked read after Close: %v (%T), want a read *net.OpError wrapping net.ErrClosed", err, err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Close did not wake the blocked read")
			}
			if _, err := c.Read(make([]byte, 10)); !isOpError(err, "read", net.ErrClosed) {
				t.Fatalf("read after Close: %v", err)
			}
			if _, err := c.WriteToUDPAddrPort([]byte("x"), ap(addrA, 1)); !isOpError(err, "write", net.ErrClosed) {
				t.Fatalf("write after Close: %v", err)
			}
			if err := c.Close(); !isOpError(err, "close", net.ErrClosed) {
				t.Fatalf("second Close: %v", err)
			}
		})
	}
}

// TestTryReadNeverBlocks races readers for one datagram at a time: a
// TryRead that saw it queued but lost it to another reader must return
// empty-handed, not wait for the next one.
func TestTryReadNeverBlocks(t *testing.T) {
	p := newPair(t, ModeNAPI, wire.Config{}, 0)
	sb, _ := p.b.ListenUDP(ap(addrB, 7300))
	sa, _ := p.a.ListenUDP(ap(addrA, 0))
	for round := 0; round < 200; round++ {
		sa.WriteToUDPAddrPort([]byte{byte(round)}, ap(addrB, 7300))
		deadline := time.Now().Add(5 * time.Second)
		for sb.Readiness()&socket.Readable == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: datagram never arrived", round)
			}
			time.Sleep(100 * time.Microsecond)
		}
		const readers = 4
		var got atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := 0; i < readers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if _, _, ok := sb.TryRead(make([]byte, 10)); ok {
					got.Add(1)
				}
			}()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		close(start)
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			sb.Close() // free the stuck readers
			<-done
			t.Fatalf("round %d: a TryRead blocked", round)
		}
		if got.Load() != 1 {
			t.Fatalf("round %d: %d readers got the one datagram", round, got.Load())
		}
	}
}

func TestReadPastItsDeadlineTimesOutEvenWithDataQueued(t *testing.T) {
	for _, mode := range bothModes {
		t.Run(string(mode), func(t *testing.T) {
			p := newPair(t, mode, wire.Config{}, 0)
			sb, _ := p.b.ListenUDP(ap(addrB, 7400))
			sa, _ := p.a.ListenUDP(ap(addrA, 0))
			sa.WriteToUDPAddrPort([]byte("queued"), ap(addrB, 7400))
			deadline := time.Now().Add(5 * time.Second)
			for sb.Readiness()&socket.Readable == 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			sb.SetReadDeadline(time.Now().Add(-time.Second))
			n, _, err := sb.ReadFromUDPAddrPort(make([]byte, 100))
			var ne net.Error
			if !isOpError(err, "read", os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("read past its deadline: %d bytes, %v; want a timeout", n, err)
			}
			sb.SetReadDeadline(time.Time{})
			if got, _ := readWithin(t, sb, 5*time.Second); string(got) != "queued" {
				t.Fatalf("after the deadline was lifted: %q", got)
			}
		})
	}
}

// TestStartSetsTheModeWithoutARace opens sockets, which read the mode,
// while Start sets it.
func TestStartSetsTheModeWithoutARace(t *testing.T) {
	s := newBareStack(t, Config{Name: "mode"})
	started := make(chan error, 1)
	go func() { started <- s.Start(ModeNAPI, engine.AnyCore, engine.SoftirqConfig{}) }()
	for i := 0; ; i++ {
		c, err := s.ListenUDP(anyPort(0))
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		_ = s.Mode()
		select {
		case err := <-started:
			if err != nil {
				t.Fatal(err)
			}
			if s.Mode() != ModeNAPI {
				t.Fatalf("mode %q after Start", s.Mode())
			}
			return
		default:
		}
		if i > 1e6 {
			t.Fatal("Start never returned")
		}
	}
}

// TestWritesRacingStackCloseGetErrClosed closes a stack under concurrent
// writers: every write after Close fails with net.ErrClosed, and none
// touches the stack's pool once it is gone.
func TestWritesRacingStackCloseGetErrClosed(t *testing.T) {
	for round := 0; round < 5; round++ {
		p := newPair(t, ModeNAPI, wire.Config{}, 0)
		sb, _ := p.b.ListenUDP(ap(addrB, 7500))
		sa, _ := p.a.ListenUDP(ap(addrA, 0))
		sa.WriteToUDPAddrPort([]byte("arp"), ap(addrB, 7500))
		readWithin(t, sb, 5*time.Second)
		const writers, perWriter = 4, 20000
		var sent atomic.Int64
		errs := make([]error, writers)
		var wg sync.WaitGroup
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < perWriter; i++ {
					_, err := sa.WriteToUDPAddrPort([]byte("racing"), ap(addrB, 7500))
					if err != nil && errors.Is(err, net.ErrClosed) {
						errs[w] = err
						return
					}
					sent.Add(1)
				}
			}()
		}
		for sent.Load() < 200 {
			time.Sleep(100 * time.Microsecond)
		}
		if err := p.a.Close(); err != nil {
			t.Fatalf("round %d: Close under writers: %v", round, err)
		}
		wg.Wait()
		for w, err := range errs {
			if !isOpError(err, "write", net.ErrClosed) {
				t.Fatalf("round %d: writer %d ended with %v", round, w, err)
			}
		}
	}
}
