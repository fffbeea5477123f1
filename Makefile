# pollnet: `make bench` runs the quick benchmark suite, `make test` the tests.
GO ?= go
BIN := bin/pollnet

.PHONY: all build test bench fuzz vet clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/pollnet

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt would change:"; gofmt -l .; exit 1; }

# Unit, stress and race tests, then each fuzz target for a few seconds.
test: vet
	$(GO) test -race -count=1 ./...
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=10s ./bench/pktgen

# The quick suite on the in-memory wire ports: prints Mpps per frame size and
# writes result.json and CSV under results/<date>-pps/.
bench: build
	./$(BIN) bench $(BENCHFLAGS)

# Longer fuzzing than `make test` does.
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=5m ./bench/pktgen

clean:
	rm -rf bin
