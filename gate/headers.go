package gate

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"retropub/confluence"
)

// quota is what a response said about the app's hourly points quota.
type quota struct {
	remaining int64 // -1 unknown
	resetSecs int64 // -1 unknown
	near      bool
}

// readQuota reads RateLimit and Beta-RateLimit ("global-app-quota";r=11000;t=600,
// entries comma-separated, any order, with or without the policy name; r
// appears only past ~80 % use) and X-RateLimit-NearLimit (confluence-api.md
// §4.1). The reset is the next UTC hour on the server's clock, not t. Beta values are
// "would have been limited" signals; budgeting on them is the safe side.
func readQuota(h http.Header) quota {
	q := quota{remaining: -1, resetSecs: -1}
	for _, name := range []string{"RateLimit", "Beta-RateLimit"} {
		for _, v := range h.Values(name) {
			for _, entry := range strings.Split(v, ",") {
				r, t := quotaEntry(entry)
				if r >= 0 && (q.remaining < 0 || r < q.remaining) {
					q.remaining = r
				}
				if t >= 0 && (q.resetSecs < 0 || t < q.resetSecs) {
					q.resetSecs = t
				}
			}
		}
	}
	for _, name := range []string{"X-RateLimit-NearLimit", "X-Beta-RateLimit-NearLimit"} {
		if strings.EqualFold(strings.TrimSpace(h.Get(name)), "true") {
			q.near = true
		}
	}
	if q.remaining >= 0 || q.resetSecs >= 0 || q.near {
		// The window ends at the top of the UTC hour, whatever t says: t
		// has been seen off by about 12 minutes, and a window stretched
		// past the hour would pause work Atlassian already allows again.
		q.resetSecs = int64(math.Ceil(confluence.UntilQuotaHour(h, clock()).Seconds()))
	}
	return q
}

// clock is the gate's idea of now for headers without a Date.
var clock = time.Now

// quotaEntry reads one `"policy";r=N;t=N` entry; -1 for what is missing.
func quotaEntry(entry string) (r, t int64) {
	r, t = -1, -1
	for _, param := range strings.Split(entry, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(param), "=")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < 0 {
			continue
		}
		switch strings.TrimSpace(k) {
		case "r":
			r = n
		case "t":
			t = n
		}
	}
	return r, t
}
