package gate

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

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

// An open breaker's refusal says which answer opened it (issue 14 item 14),
// so a set-up task that ends there shows Confluence's own words.
func TestBreakerRefusalNamesTheAnswerThatOpenedIt(t *testing.T) {
	g := New(newRedis(t), Config{Failures: 2, OpenFor: time.Minute, Probes: 1}, nil)
	bad := &confluence.Error{StatusCode: 502, Method: "GET", Path: "/wiki/api/v2/spaces", Message: "Bad Gateway from the site's proxy"}
	for range 2 {
		if err := send(t, g, "GET", confluence.Outcome{StatusCode: 502, Err: bad}); err != nil {
			t.Fatal(err)
		}
	}
	de := deferral(t, send(t, g, "GET", confluence.Outcome{}), RefusedBreaker)
	for _, want := range []string{"circuit breaker open", "502", "GET /wiki/api/v2/spaces", "Bad Gateway from the site's proxy"} {
		if !strings.Contains(de.Error(), want) {
			t.Errorf("%q does not say %q", de.Error(), want)
		}
	}
}
