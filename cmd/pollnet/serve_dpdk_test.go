//go:build dpdk

package main

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/pollnet/pollnet/internal/netns"
)

// With --port dpdk the TAP is DPDK's net_tap, opened as a pmd/dpdk port:
// the same download in the port's default mode (pmd), and on exit the TAP
// is gone from the namespace it was moved into and from here.
func TestServeOnADPDKTapAnswersCurlInANamespaceAndStopsCleanlyOnSIGTERM(t *testing.T) {
	if err := tunUsable(); err != nil {
		t.Skip(err)
	}
	if err := netns.Usable(); err != nil {
		t.Skip(err)
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("no curl: apt-get install curl (make deps does)")
	}
	testServeCurl(t, buildPollnet(t, "dpdk"), "dpdk", "")
}

// A DPDK port is polled: --port dpdk --mode napi exits 2 saying to use the
// pmd mode, before the EAL starts.
func TestServePortDPDKInNAPIModeExitsTwoSayingUsePMD(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"serve", "--port", "dpdk", "--mode", "napi", t.TempDir()}, &out, &errb); code != exitUsage {
		t.Errorf("exit %d, want %d (stderr %q)", code, exitUsage, errb.String())
	}
	if !strings.Contains(errb.String(), "use --mode pmd") {
		t.Errorf("message %q does not say to use --mode pmd", errb.String())
	}
}
