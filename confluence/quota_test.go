package confluence

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A quota 429 never asks to wait past the top of the UTC hour on the
// answering server's clock, whatever its Retry-After says; one without a
// reason but with nothing remaining is a quota answer too; a burst 429
// keeps its Retry-After.
func TestQuota429WaitsNoLongerThanTheHour(t *testing.T) {
	now := time.Date(2026, 12, 6, 14, 48, 0, 0, time.UTC)
	answer := func(h http.Header) *RateLimitError {
		t.Helper()
		h.Set("Date", now.Format(http.TimeFormat))
		resp := &http.Response{StatusCode: 429, Header: h, Body: io.NopCloser(strings.NewReader(`{"code":429,"message":"Too Many Requests"}`))}
		var rl *RateLimitError
		if err := checkResponse(request{method: "GET", path: "/wiki/api/v2/pages"}, resp, now); !errors.As(err, &rl) {
			t.Fatalf("not a RateLimitError: %v", err)
		}
		return rl
	}
	for name, tc := range map[string]struct {
		h    http.Header
		want time.Duration
	}{
		"reset 12 minutes late": {http.Header{"Retry-After": {"1440"}, "Ratelimit-Reason": {"confluence-quota-global-based"}}, 12 * time.Minute},
		"no Retry-After":        {http.Header{"Ratelimit-Reason": {"confluence-quota-tenant-based"}}, 12 * time.Minute},
		"no reason, r=0":        {http.Header{"Retry-After": {"1500"}, "Ratelimit": {"r=0;t=1500"}}, 12 * time.Minute},
		"honest and early":      {http.Header{"Retry-After": {"300"}, "X-Ratelimit-Remaining": {"0"}}, 5 * time.Minute},
		"burst":                 {http.Header{"Retry-After": {"3"}}, 3 * time.Second},
	} {
		if got := answer(tc.h).RetryAfter; got != tc.want {
			t.Errorf("%s: RetryAfter %s, want %s", name, got, tc.want)
		}
	}
	if d := UntilQuotaHour(http.Header{}, now); d != 12*time.Minute {
		t.Errorf("UntilQuotaHour without Date = %s", d)
	}
}
