GO       ?= go
BIN      := bin
PKGS     := ./...

.PHONY: demo test build lint bench bench-go clean

## demo: the whole pipeline on embedded defaults (Ctrl-C to stop). The production
## image builds the worker with -tags nodemo: no fake Confluence, no miniredis.
demo:
	$(GO) run ./cmd/worker demo

## test: every test, with the race detector (REDIS_URL adds the real-Redis suites).
## -parallel 6: the parallel end-to-end tests mostly wait (asynq's lease recovery,
## failovers), so more of them overlap than the 2 that GOMAXPROCS would allow.
test:
	$(GO) vet $(PKGS)
	$(GO) vet -tags nodemo ./cmd/worker
	$(GO) test -count=1 -tags nodemo -run Production ./cmd/worker
	$(GO) test -race -count=1 -timeout 25m -parallel 6 $(PKGS)

## build: static binaries in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/worker ./cmd/worker
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/enqueue ./cmd/enqueue

## lint: gofmt and go vet
lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) vet -tags nodemo ./cmd/worker

## bench: the load harness (real worker process at the default log level, a private
## redis-server it starts itself): every gate off, then the defaults with the
## per-instance caps raised, on 1 and on 100 instances, each against a bare client
## in the same run. BENCH_REPEAT runs of each; -profile DIR keeps pprof profiles.
BENCH_N      ?= 2000
BENCH_REPEAT ?= 2
## BENCH_CLUSTER: the same configurations on a private Redis Cluster (3 masters,
## 3 replicas) in the same run, with the ratio to one Redis; empty skips it.
BENCH_CLUSTER ?= -cluster
bench:
	$(GO) run ./test/loadharness -n $(BENCH_N) -repeat $(BENCH_REPEAT) -latency 50ms -concurrency 50 -attachments 2 $(BENCH_CLUSTER)

## bench-go: the Go benchmarks (token bucket, breaker isolation, fairness, …)
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

clean:
	rm -rf $(BIN)
