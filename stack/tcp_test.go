package stack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/pollnet/pollnet/pmd/wire"
)

// transfer sends n pseudo-random bytes from a to b over a new connection
// and checks they arrive whole, in order, and end with a clean close.
func transfer(t *testing.T, p *pair, n int, timeout time.Duration) {
	t.Helper()
	l, err := p.b.ListenTCP(ap(addrB, 5001))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	data := make([]byte, n)
	rng := rand.New(rand.NewPCG(1, uint64(n)))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	want := sha256.Sum256(data)
	got := make(chan [32]byte, 1)
	errs := make(chan error, 2)
	go func() {
		c, err := l.Accept()
		if err != nil {
			errs <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(timeout))
		h := sha256.New()
		if _, err := io.Copy(h, c); err != nil {
			errs <- err
			return
		}
		var s [32]byte
		copy(s[:], h.Sum(nil))
		got <- s
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := p.a.DialTCP(ctx, ap(addrA, 0), ap(addrB, 5001))
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := io.Copy(c, bytes.NewReader(data)); err != nil {
		t.Fatalf("write: %v (info %+v)", err, c.Info())
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s != want {
			t.Fatalf("sha256 mismatch")
		}
	case err := <-errs:
		t.Fatalf("server: %v; client %+v", err, c.Info())
	case <-time.After(timeout):
		t.Fatalf("timeout; client %+v", c.Info())
	}
}

func TestTCPTransferBothModes(t *testing.T) {
	for _, mode := range []Mode{ModePMD, ModeNAPI} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			p := newPair(t, mode, wire.Config{}, 0)
			transfer(t, p, 4<<20, 20*time.Second)
			t.Logf("a %+v", p.a.Stats().TCP)
			t.Logf("b %+v", p.b.Stats().TCP)
		})
	}
}
