package confluence

import (
	"net/http"
	"strings"
	"time"
)

// Atlassian's hourly points quota resets at the top of each UTC hour
// (confluence-api.md §4.1). Its headers have been seen lying: the reset
// time `t` off by about 12 minutes, the policy header gone once the
// remaining count reaches 0 (§8). So the window is computed from the hour
// boundary, on the answering server's clock when its Date header gives it
// (a worker's own clock may be skewed), and nothing waits past it.

// UntilQuotaHour is how long until the top of the next UTC hour on the
// clock of the server that sent h (its Date header), or on now's clock
// when h has no usable Date. It is never more than an hour.
func UntilQuotaHour(h http.Header, now time.Time) time.Duration {
	if d, err := http.ParseTime(h.Get("Date")); err == nil {
		now = d
	}
	now = now.UTC()
	return now.Truncate(time.Hour).Add(time.Hour).Sub(now)
}

// quotaAnswer: a 429 that is about the hourly quota — its reason says so,
// or it reports nothing remaining — as opposed to a burst limit.
func quotaAnswer(h http.Header) bool {
	if strings.Contains(h.Get("RateLimit-Reason"), "quota") || strings.TrimSpace(h.Get("X-RateLimit-Remaining")) == "0" {
		return true
	}
	for _, name := range []string{"RateLimit", "Beta-RateLimit"} {
		for _, v := range h.Values(name) {
			for _, part := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ';' }) {
				if strings.TrimSpace(part) == "r=0" {
					return true
				}
			}
		}
	}
	return false
}

// quotaRetryAfter bounds the wait a quota 429 asks for by the top of the
// hour, when the quota is back: a Retry-After past it is a lie, and none
// at all means "until the hour turns".
func quotaRetryAfter(d time.Duration, announced bool, h http.Header, now time.Time) time.Duration {
	hour := UntilQuotaHour(h, now)
	if !announced {
		return hour
	}
	return min(d, hour)
}
