//go:build !demo

package main

import (
	"context"
	"fmt"
	"io"
)

// runDemo in the production build: the demo (fake Confluence, miniredis) is
// not linked into it. demo.go is the real one.
func runDemo(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "worker: this binary was built without the demo; run `make demo` (go run -tags demo ./cmd/worker demo)")
	return 2
}
