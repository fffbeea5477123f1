//go:build !dpdk

package bench

import (
	"errors"
	"strings"
	"testing"
)

// Without the dpdk tag, --port dpdk is refused as a flag error that says
// how to build a binary that has it.
func TestPortDPDKWithoutTheTagSaysHowToBuild(t *testing.T) {
	var fe *FlagError
	if _, err := ParsePort("dpdk"); !errors.As(err, &fe) || !strings.Contains(err.Error(), "go build -tags dpdk ./cmd/pollnet") {
		t.Errorf("ParsePort(dpdk): %v", err)
	}
	cfg := testNullConfig()
	cfg.Port = PortDPDK
	if err := cfg.Validate(); !errors.As(err, &fe) || !strings.Contains(err.Error(), "make build-dpdk") {
		t.Errorf("Validate with Port dpdk: %v", err)
	}
}
