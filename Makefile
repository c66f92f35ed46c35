GO       ?= go
BIN      := bin
PKGS     := ./...

.PHONY: demo test build lint bench clean

## demo: the whole pipeline on embedded defaults (Ctrl-C to stop); the demo
## tag links the fake Confluence, which the production worker does not carry
demo:
	$(GO) run -tags demo ./cmd/worker demo

## test: every test, with the race detector (REDIS_URL adds the real-Redis suites)
test:
	$(GO) vet $(PKGS)
	$(GO) vet -tags demo ./cmd/worker
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

## build: static binaries in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/worker ./cmd/worker
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/enqueue ./cmd/enqueue

## lint: gofmt and go vet
lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) vet -tags demo ./cmd/worker

## bench: Go benchmarks, then the load harness (real worker processes, real Redis at REDIS_URL)
BENCH_N ?= 5000
bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)
	$(GO) run ./test/loadharness -n $(BENCH_N) -latency 50ms -concurrency 50

clean:
	rm -rf $(BIN)
