//go:build nodemo

package main

import (
	"context"
	"fmt"
	"io"
)

// runDemo in the production image (built with -tags nodemo): the demo (fake
// Confluence, miniredis) is not linked into it. demo.go is the real one.
func runDemo(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "worker: this binary was built with -tags nodemo (the production image) and has no demo; run `make demo` (go run ./cmd/worker demo)")
	return 2
}
