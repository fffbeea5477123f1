# pollnet: `make bench` runs the quick benchmark suite, `make test` the tests.
GO ?= go
BIN := bin/pollnet

.PHONY: all build build-dpdk test bench bench-tcp fuzz vet clean deps setup-dpdk test-dpdk results

# Tools the tests use as referees and peers (ip for namespaces and TAP links,
# ethtool for a veth's offloads, ping, curl, iperf3 and dpdk-testpmd as
# peers). Installed only when missing and only where apt-get and root are
# available; tests that need one skip with a reason without it.
DEBS := iproute2:ip iputils-ping:ping curl:curl ethtool:ethtool iputils-arping:arping iperf3:iperf3 dpdk-dev:dpdk-testpmd
deps:
	@missing=""; for d in $(DEBS); do pkg=$${d%%:*}; bin=$${d##*:}; \
	  command -v $$bin >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing:$$missing"; \
	    (apt-get -o DPkg::Lock::Timeout=300 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends $$missing >/dev/null) || \
	      echo "warning: could not install$$missing; the tests that need them will skip"; \
	  else echo "note: missing$$missing (not root or no apt-get); the tests that need them will skip"; fi; \
	fi

# What pmd/dpdk builds against (`-tags dpdk`): DPDK's headers and libraries,
# found with pkg-config. Installed only when pkg-config cannot find libdpdk,
# and only where apt-get and root are available; without them the DPDK tests
# skip with a reason.
DPDK_DEBS := dpdk-dev libdpdk-dev pkg-config
setup-dpdk:
	@if ! pkg-config --exists libdpdk 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing: $(DPDK_DEBS)"; \
	    (apt-get -o DPkg::Lock::Timeout=300 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends $(DPDK_DEBS) >/dev/null) || \
	      echo "warning: could not install $(DPDK_DEBS); the DPDK tests will skip"; \
	  else echo "note: libdpdk is missing (not root or no apt-get): make setup-dpdk as root installs it; the DPDK tests will skip"; fi; \
	fi

all: build

# The binary carries its commit (result.json machine.commit), even where
# GOFLAGS says -buildvcs=false.
build:
	$(GO) build -buildvcs=true -o $(BIN) ./cmd/pollnet

# The same binary with the DPDK port (`bench pps --port dpdk`), linked
# against the system's DPDK.
build-dpdk: setup-dpdk
	$(GO) build -buildvcs=true -tags dpdk -o $(BIN) ./cmd/pollnet

vet:
	$(GO) vet ./...
	@$(GO) mod tidy -diff >/dev/null || { echo "go.mod is not tidy: run go mod tidy"; $(GO) mod tidy -diff; exit 1; }
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt would change:"; gofmt -l .; exit 1; }

# Every parser's fuzz target: package and target name.
FUZZ := bench/pktgen:FuzzParse stack/header/eth:FuzzEthParse stack/header/arp:FuzzARPParse \
	stack/header/ipv4:FuzzIPv4Parse stack/network/frag:FuzzReassembly stack/header/icmp:FuzzICMPParse stack/header/udp:FuzzUDPParse \
	stack/header/tcp:FuzzTCPParse stack/transport/tcp:FuzzConnectionSegments \
	stack:FuzzStackInput stack:FuzzSteering
FUZZTIME ?= 4s

# Unit, stress and race tests; the engine and stack tests once more in the
# debug build (poisoned frees, double frees and uses after free panic at
# once); the DPDK port under its tag, without the race detector (cgo and the
# EAL's threads), and the stack over it; then each fuzz target for a few
# seconds.
test: deps setup-dpdk vet
	$(GO) test -race -count=1 ./...
	$(GO) test -count=1 -tags pollnetdebug ./engine/... ./pmd/... ./stack/...
	@$(MAKE) --no-print-directory test-dpdk
	cd compare/gvisor && $(GO) vet ./... && $(GO) test -count=1 ./...
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZTIME)

# The DPDK tests, or a note saying why they cannot run.
test-dpdk:
	@if pkg-config --exists libdpdk 2>/dev/null; then \
	  echo "$(GO) test -tags dpdk -count=1 ./pmd/dpdk/..."; $(GO) test -tags dpdk -count=1 ./pmd/dpdk/... && \
	  echo "$(GO) test -tags dpdk -count=1 -run DPDK ./stack/"; $(GO) test -tags dpdk -count=1 -run DPDK ./stack/ && \
	  echo "$(GO) test -tags dpdk -count=1 -run DPDK ./bench/"; $(GO) test -tags dpdk -count=1 -run DPDK ./bench/ && \
	  echo "$(GO) test -tags dpdk -count=1 -run DPDK ./cmd/pollnet/"; $(GO) test -tags dpdk -count=1 -run DPDK ./cmd/pollnet/; \
	else echo "skipping the DPDK tests: pkg-config cannot find libdpdk (make setup-dpdk installs it)"; fi

# The quick suite on the in-memory wire ports: prints Mpps per frame size and
# writes result.json and CSV under results/<date>-pps/.
bench: build
	./$(BIN) bench $(BENCHFLAGS)

# TCP stream and connection rate over the wire pair in both modes, beside
# the kernel over veth and gVisor (not in the quick suite: its three
# minutes have no room for it; the full suite runs it).
bench-tcp: build deps
	./$(BIN) bench tcp $(BENCHFLAGS)

# The committed reference run: the full suite on this machine, its charts,
# and results/README.md, which shows them.
results: build deps
	./$(BIN) bench --suite full --quiet --out results/reference $(BENCHFLAGS)
	./$(BIN) report --readme results/README.md results/reference

# Fuzz every parser; `make fuzz FUZZTIME=5m` for a long run. A finding
# always writes its input to testdata/fuzz and fails. Go's fuzzing engine
# can also fail a run on its own -fuzztime deadline, having found nothing,
# when a worker is busy (minimising a new input) as the time runs out
# (golang/go#51484): such a run counts as clean when it wrote no input and
# the target's corpus replays clean.
fuzz:
	@for f in $(FUZZ); do pkg=$${f%%:*}; name=$${f##*:}; \
	  echo "fuzz $$pkg $$name ($(FUZZTIME))"; \
	  if ! $(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) ./$$pkg >/tmp/pollnet-fuzz.log 2>&1; then \
	    if grep -q 'context deadline exceeded' /tmp/pollnet-fuzz.log && ! grep -q 'Failing input written' /tmp/pollnet-fuzz.log && \
	       $(GO) test -count=1 -run="^$$name\$$" ./$$pkg >/dev/null 2>&1; then \
	      echo "fuzz $$pkg $$name: the engine stopped on its own deadline with nothing found (golang/go#51484); the corpus replays clean"; \
	    else cat /tmp/pollnet-fuzz.log; exit 1; fi; \
	  fi; \
	done; echo "fuzz: every target ran clean"

clean:
	rm -rf bin
