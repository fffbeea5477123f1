// Package serve is `pollnet serve`: net/http's FileServer, unchanged, on
// pollnet's TCP, on a TAP port whose kernel end is where clients come from.
// The kernel end stays in the current network namespace or moves into an
// existing one, with the peer address, so that curl in that namespace (or
// on the host) fetches from our stack.
//
// With Config.Port PortAFPacket or PortAFXDP the link is a veth pair
// instead: our end is an AF_PACKET port (pmd/afpacket) or an AF_XDP port
// (pmd/afxdp), the other end is the kernel's, set up as the TAP's would be.
// With PortDPDK, in a binary built with the dpdk tag, the TAP is DPDK's
// net_tap, opened as a pmd/dpdk port; its kernel end is set up as the TAP
// port's is.
package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pollnet/pollnet/engine"
	"github.com/pollnet/pollnet/internal/netns"
	"github.com/pollnet/pollnet/pmd/tap"
	"github.com/pollnet/pollnet/stack"
)

// Defaults of the command's flags.
const (
	DefaultAddr = "198.18.0.2/24"
	DefaultPeer = "198.18.0.1/24"
	DefaultPort = 8080
	DefaultMode = stack.ModeNAPI
	DefaultTAP  = "pn-serve%d"
)

// Port kinds (Config.Port, --port).
const (
	PortTAP      = "tap"      // a TAP device; the default
	PortAFPacket = "afpacket" // a veth pair, our end an AF_PACKET port
	PortAFXDP    = "afxdp"    // a veth pair, our end an AF_XDP port
	PortDPDK     = "dpdk"     // DPDK's net_tap as a pmd/dpdk port (-tags dpdk)
)

// PortKinds describes every port kind, for flag help and refusals.
const PortKinds = "tap (a TAP device, the default), afpacket or afxdp (a veth pair, our end an AF_PACKET or AF_XDP port), " +
	"or dpdk (DPDK's net_tap, pmd mode only; needs a binary built with -tags dpdk)"

// dpdkBuildHint says how to get a binary that has --port dpdk.
const dpdkBuildHint = "--port dpdk needs a binary built with the dpdk tag: go build -tags dpdk ./cmd/pollnet " +
	"(or make build-dpdk; make setup-dpdk installs the DPDK it links)"

// ShutdownBound is how long a stop waits for requests in flight before it
// cuts their connections.
const ShutdownBound = 5 * time.Second

// Config is what to serve and where.
type Config struct {
	Dir      string       // the directory served
	Addr     netip.Prefix // ours, on the TAP port
	Peer     netip.Prefix // the kernel's end of the TAP
	HTTPPort int          // 1..65535
	Mode     stack.Mode   // pmd or napi
	NetNS    string       // an existing namespace for the kernel's end; "" keeps it here
	TAP      string       // PortTAP, PortDPDK: the interface name; "%d": the lowest free number
	Port     string       // PortTAP ("" too), PortAFPacket, PortAFXDP or PortDPDK
	// Veth is our veth end's name with PortAFPacket or PortAFXDP; the
	// kernel's end is Veth plus "k". Empty: "pnsv" and the process id.
	Veth string
}

func (c *Config) port() string {
	if c.Port == "" {
		return PortTAP
	}
	return c.Port
}

// veth is our veth end's name and the kernel's.
func (c *Config) veth() (ours, kernel string) {
	ours = c.Veth
	if ours == "" {
		ours = fmt.Sprintf("pnsv%d", os.Getpid())
	}
	return ours, ours + "k"
}

// UsageError is a Config that cannot work as given: the command exits 2.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// Check says what is wrong with c, as a *UsageError naming the flag and
// what to do, or nil.
func (c *Config) Check() error {
	if !c.Addr.IsValid() || !c.Addr.Addr().Is4() {
		return usagef("--addr %v: give our IPv4 address with its prefix length, e.g. %s", c.Addr, DefaultAddr)
	}
	if err := hostAddr(c.Addr); err != nil {
		return usagef("--addr %v: %v", c.Addr, err)
	}
	if !c.Peer.IsValid() || !c.Peer.Addr().Is4() {
		return usagef("--peer %v: give the kernel end's IPv4 address with its prefix length, e.g. %s", c.Peer, DefaultPeer)
	}
	if err := hostAddr(c.Peer); err != nil {
		return usagef("--peer %v: %v", c.Peer, err)
	}
	if !c.Addr.Masked().Contains(c.Peer.Addr()) {
		return usagef("--peer %v is outside --addr %v's subnet %v: put both on one subnet, e.g. --addr %s --peer %s",
			c.Peer, c.Addr, c.Addr.Masked(), DefaultAddr, DefaultPeer)
	}
	if c.Peer.Addr() == c.Addr.Addr() {
		return usagef("--peer %v is --addr's own address: give the kernel end another one, e.g. %s", c.Peer.Addr(), DefaultPeer)
	}
	if c.HTTPPort < 1 || c.HTTPPort > 65535 {
		return usagef("--http-port %d out of range: use 1..65535 (default %d)", c.HTTPPort, DefaultPort)
	}
	if c.Mode != stack.ModePMD && c.Mode != stack.ModeNAPI {
		return usagef("--mode %q: use pmd or napi", c.Mode)
	}
	if c.Dir == "" {
		return usagef("no directory: pollnet serve [flags] DIR")
	}
	switch st, err := os.Stat(c.Dir); {
	case err != nil:
		return usagef("%s: %v: give an existing directory to serve", c.Dir, errors.Unwrap(err))
	case !st.IsDir():
		return usagef("%s is not a directory: give the directory that holds the files to serve", c.Dir)
	}
	if c.TAP == "" || len(strings.ReplaceAll(c.TAP, "%d", "0")) > 15 || strings.ContainsAny(c.TAP, "/: \t\n") {
		return usagef("--tap %q: an interface name of 1..15 bytes without '/', ':' or spaces; %%d lets the kernel number it (default %s)",
			c.TAP, DefaultTAP)
	}
	if err := c.checkPort(); err != nil {
		return err
	}
	if c.NetNS != "" {
		if strings.ContainsAny(c.NetNS, "/") || c.NetNS == "." || c.NetNS == ".." {
			return usagef("--netns %q: give the name of a namespace, as `ip netns list` shows it", c.NetNS)
		}
		if _, err := os.Stat(filepath.Join("/run/netns", c.NetNS)); err != nil {
			return usagef("--netns %s: no such namespace: create it first (ip netns add %s) or leave --netns out to keep the TAP here",
				c.NetNS, c.NetNS)
		}
	}
	return nil
}

// checkPort checks --port and, for a veth pair, --veth.
func (c *Config) checkPort() error {
	switch c.port() {
	case PortTAP:
		return nil
	case PortDPDK:
		return c.checkDPDK()
	case PortAFPacket, PortAFXDP:
	default:
		return usagef("--port %q: use %s", c.Port, PortKinds)
	}
	if ours, _ := c.veth(); len(ours) > 14 || strings.ContainsAny(ours, "/:% \t\n") {
		return usagef("--veth %q: an interface name of 1..14 bytes without '/', ':', '%%' or spaces (the kernel's end adds a 'k')", c.Veth)
	}
	return nil
}

// hostAddr refuses a subnet's network and broadcast addresses.
func hostAddr(p netip.Prefix) error {
	if p.Bits() >= 31 {
		return nil // RFC 3021: both addresses of a /31 are hosts
	}
	if p.Addr() == p.Masked().Addr() {
		return errors.New("is the subnet's network address: give a host address, e.g. " + DefaultAddr)
	}
	a := p.Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	if v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]); v&host == host {
		return errors.New("is the subnet's broadcast address: give a host address, e.g. " + DefaultAddr)
	}
	return nil
}

// Server is a running `pollnet serve`: the TAP port, the stack on it and
// the HTTP server on the stack's TCP.
type Server struct {
	cfg   Config
	port  engine.Port
	name  string    // our interface: the TAP, or our veth end
	own   *netns.NS // a veth kind: the namespace of our veth end
	veth  bool      // a veth kind: the pair exists (in own or still here)
	moved bool      // the TAP's kernel end is in --netns
	st    *stack.Stack
	http  *http.Server
	done  chan error // Serve's return
}

// Start opens the TAP port, sets up its kernel end, starts the stack and
// serves cfg.Dir on it. Stop it with Shutdown.
func Start(cfg Config) (_ *Server, err error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, done: make(chan error, 1)}
	defer func() {
		if err != nil {
			s.release()
		}
	}()
	switch cfg.port() {
	case PortAFPacket, PortAFXDP:
		if err := s.openVeth(); err != nil {
			return nil, err
		}
	case PortDPDK:
		if err := s.openDPDK(); err != nil {
			return nil, err
		}
	default:
		t, err := tap.Open(tap.Config{Name: cfg.TAP})
		if err != nil {
			return nil, fmt.Errorf("serve: open the TAP (needs root, /dev/net/tun): %w", err)
		}
		s.port, s.name = t, t.Name()
		if err := s.kernelEnd(); err != nil {
			return nil, err
		}
	}
	s.st, err = stack.New(stack.Config{Name: "serve", Interfaces: []stack.Interface{{Port: s.port, Addr: cfg.Addr}},
		Idle: engine.IdleSpinYield})
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	if err := s.st.Start(cfg.Mode, engine.AnyCore, engine.SoftirqConfig{}); err != nil {
		return nil, fmt.Errorf("serve: start the stack: %w", err)
	}
	l, err := s.st.ListenTCP(netip.AddrPortFrom(cfg.Addr.Addr(), uint16(cfg.HTTPPort)))
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	s.http = &http.Server{
		Handler:           http.FileServer(http.Dir(cfg.Dir)),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { s.done <- s.http.Serve(l) }()
	return s, nil
}

// kernelEnd gives the TAP's kernel end the peer address and brings it up,
// in the namespace asked for.
func (s *Server) kernelEnd() error {
	name, peer := s.name, s.cfg.Peer.String()
	cmds := [][]string{
		{"ip", "addr", "add", peer, "dev", name},
		{"ip", "link", "set", name, "up"},
	}
	if ns := s.cfg.NetNS; ns != "" {
		cmds = [][]string{
			{"ip", "link", "set", name, "netns", ns},
			{"ip", "-n", ns, "addr", "add", peer, "dev", name},
			{"ip", "-n", ns, "link", "set", name, "up"},
		}
	}
	for i, c := range cmds {
		if _, err := netns.Run(c...); err != nil {
			return fmt.Errorf("serve: set up the TAP's kernel end: %w", err)
		}
		s.moved = s.moved || (i == 0 && s.cfg.NetNS != "")
	}
	return nil
}

// unmoveTAP brings DPDK's TAP back from --netns before its port closes.
// net_tap stops and closes the device by name (ioctls) and index (netlink,
// where its rte_flow support is on) in this namespace: with the device
// elsewhere the ioctls fail quietly, and a flush of its tc rules would go
// to whatever interface here has that index.
func (s *Server) unmoveTAP() error {
	if !s.moved || s.cfg.port() != PortDPDK {
		return nil
	}
	s.moved = false
	if _, err := netns.Run("ip", "-n", s.cfg.NetNS, "link", "set", s.name, "netns", strconv.Itoa(os.Getpid())); err != nil {
		return fmt.Errorf("serve: bring DPDK's TAP back from namespace %s before closing it: %w", s.cfg.NetNS, err)
	}
	return nil
}

// URL is where the directory is served.
func (s *Server) URL() string {
	return "http://" + netip.AddrPortFrom(s.cfg.Addr.Addr(), uint16(s.cfg.HTTPPort)).String() + "/"
}

// TAP is the name of our interface: the TAP, or our veth end.
func (s *Server) TAP() string { return s.name }

// Done reports the HTTP server's end if it stops on its own.
func (s *Server) Done() <-chan error { return s.done }

// Shutdown stops accepting, lets requests in flight finish until ctx ends
// (then cuts them), closes the stack and the TAP, which deletes the
// interface.
func (s *Server) Shutdown(ctx context.Context) error {
	var errs []error
	if err := s.http.Shutdown(ctx); err != nil {
		s.http.Close()
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			errs = append(errs, err)
		}
	}
	return errors.Join(append(errs, s.release())...)
}

func (s *Server) release() error {
	var errs []error
	if s.st != nil {
		if err := s.st.Close(); err != nil {
			errs = append(errs, fmt.Errorf("serve: close the stack: %w", err))
		}
		s.st = nil
	}
	if err := s.unmoveTAP(); err != nil {
		errs = append(errs, err)
	}
	if s.port != nil {
		if err := s.port.Close(); err != nil {
			errs = append(errs, fmt.Errorf("serve: close the port %s: %w", s.name, err))
		}
		s.port = nil
	}
	if err := s.removeVeth(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Run serves until ctx ends (the command cancels it on SIGINT or SIGTERM),
// then shuts down within ShutdownBound. It prints the URL on out.
func Run(ctx context.Context, cfg Config, out io.Writer) error {
	s, err := Start(cfg)
	if err != nil {
		return err
	}
	where := "this namespace"
	if cfg.NetNS != "" {
		where = "namespace " + cfg.NetNS
	}
	link := "TAP " + s.TAP()
	switch cfg.port() {
	case PortAFPacket, PortAFXDP:
		_, kernel := cfg.veth()
		link = fmt.Sprintf("veth %s over %s, kernel end %s", s.TAP(), vethPorts[cfg.port()].via, kernel)
	case PortDPDK:
		link = fmt.Sprintf("TAP %s over DPDK's net_tap", s.TAP())
	}
	fmt.Fprintf(out, "serving %s at %s (%s, kernel end %v in %s, %s mode); stop with Ctrl-C\n",
		cfg.Dir, s.URL(), link, cfg.Peer, where, cfg.Mode)
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-s.done:
		serveErr = fmt.Errorf("serve: http: %w", serveErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownBound)
	defer cancel()
	return errors.Join(serveErr, s.Shutdown(sctx))
}
