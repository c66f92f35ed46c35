//go:build nodemo

package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// The production image's worker has no demo in it, and says how to get one
// (make test runs this with -tags nodemo).
func TestDemoIsNotInTheProductionBuild(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"demo", "--once"}, nil, &stdout, &stderr); code != 2 {
		t.Fatalf("worker demo exit %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), "make demo") {
		t.Fatalf("stderr %q does not say how to run the demo", stderr.String())
	}
}
