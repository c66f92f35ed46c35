//go:build pprof

package main

import (
	"net/http"
	_ "net/http/pprof" // the profiling handlers, on their own listener
	"os"
)

// Profiling builds (go build -tags pprof) serve net/http/pprof on
// PPROF_ADDR, which the load harness sets to a loopback port. Release
// builds contain none of this.
func init() {
	if addr := os.Getenv("PPROF_ADDR"); addr != "" {
		go func() { _ = http.ListenAndServe(addr, nil) }()
	}
}
