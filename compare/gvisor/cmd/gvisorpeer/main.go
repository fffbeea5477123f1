// Command gvisorpeer runs gVisor's netstack as a pollnet comparison peer:
// two gVisor stacks joined by an in-memory link in this one process, no
// real network. It prints a JSON array of scenarios, in the form of
// pollnet's result.Scenario, on standard output.
//
//	gvisorpeer -workload udp_rr,udp_stream,tcp_stream,tcp_crr -sizes 16,64,1400,8000 -streams 1,4 -duration 3s -repeat 5 -warmup 500ms -mtu 9000
//
// A bad command line exits 2 with a message naming the flag.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/pollnet/pollnet/compare/gvisor/internal/peer"
)

func main() {
	cfg, err := peer.ParseArgs(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, peer.ErrUsage) {
			fmt.Fprintln(os.Stderr, "gvisorpeer:", err)
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "gvisorpeer:", err)
		os.Exit(1)
	}
	// Every scenario has its own hard deadline; this one catches a stall
	// that outlives them all, so the program always exits by itself.
	limit := time.Duration(cfg.Scenarios())*cfg.Limit() + 10*time.Second
	time.AfterFunc(limit, func() {
		fmt.Fprintf(os.Stderr, "gvisorpeer: still running after %v; giving up\n", limit)
		os.Exit(1)
	})
	out, err := json.MarshalIndent(peer.Run(cfg), "", "  ")
	if err != nil {
		fmt.Fprintln(os.Stderr, "gvisorpeer:", err)
		os.Exit(1)
	}
	os.Stdout.Write(append(out, '\n'))
}
