//go:build !dpdk

package main

import (
	"bytes"
	"strings"
	"testing"
)

// A binary built without the dpdk tag refuses --port dpdk with exit 2,
// saying how to build one that runs it.
func TestBenchPortDPDKWithoutTheTagExitsTwoSayingHowToBuild(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"bench", "pps", "--port", "dpdk"}, &out, &errb); code != exitUsage {
		t.Errorf("exit %d, want %d", code, exitUsage)
	}
	if !strings.Contains(errb.String(), "go build -tags dpdk ./cmd/pollnet") || !strings.Contains(errb.String(), "make build-dpdk") {
		t.Errorf("message %q does not say how to build", errb.String())
	}
}

// So does serve --port dpdk, in either mode.
func TestServePortDPDKWithoutTheTagExitsTwoSayingHowToBuild(t *testing.T) {
	for _, mode := range []string{"pmd", "napi"} {
		var out, errb bytes.Buffer
		if code := run([]string{"serve", "--port", "dpdk", "--mode", mode, t.TempDir()}, &out, &errb); code != exitUsage {
			t.Errorf("--mode %s: exit %d, want %d", mode, code, exitUsage)
		}
		if !strings.Contains(errb.String(), "go build -tags dpdk ./cmd/pollnet") || !strings.Contains(errb.String(), "make build-dpdk") {
			t.Errorf("--mode %s: message %q does not say how to build", mode, errb.String())
		}
	}
}
