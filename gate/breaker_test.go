package gate

import (
	"context"
	"errors"
	"testing"

	"retropub/confluence"
)

// Only Confluence's own failures trip a breaker.
func TestBreakerFailureClasses(t *testing.T) {
	cases := map[string]struct {
		err     error
		failure bool
	}{
		"5xx":             {&confluence.Error{StatusCode: 502}, true},
		"transport":       {&confluence.TransportError{Err: errors.New("reset")}, true},
		"timeout":         {context.DeadlineExceeded, true},
		"4xx":             {&confluence.Error{StatusCode: 400}, false},
		"429":             {&confluence.RateLimitError{Resp: &confluence.Error{StatusCode: 429}}, false},
		"canceled":        {context.Canceled, false},
		"source mid-file": {&confluence.SourceError{Filename: "a.pdf", Err: errors.New("gone")}, false},
	}
	for name, c := range cases {
		if got := isFailure(c.err); got != c.failure {
			t.Errorf("%s: isFailure = %v, want %v", name, got, c.failure)
		}
	}
	if !isExcluded(&confluence.SourceError{Err: errors.New("x")}) {
		t.Error("a source failure should be neither success nor failure")
	}
}
