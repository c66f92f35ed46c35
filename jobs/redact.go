package jobs

import (
	"encoding/json"
	"net/url"
	"regexp"
	"strings"

	"retropub/confluence"
)

// RedactPayload is a task payload (or result) as it may be shown to an
// operator (dashboard, asynqmon formatters, logs): every http(s) URL in a
// JSON string loses its user info, query and fragment — signed attachment
// URLs carry their credentials there (X-Amz-Signature, sig=, token=) — and
// inline attachment data is elided (content, not something to read). The
// rest of the bytes, key order and formatting included, is unchanged.
func RedactPayload(b []byte) []byte {
	b = inlineData.ReplaceAll(b, []byte(`"data_base64":"…(elided)…"`))
	return jsonString.ReplaceAllFunc(b, func(lit []byte) []byte {
		if !containsFold(lit, "http") {
			return lit
		}
		var s string
		if json.Unmarshal(lit, &s) != nil {
			return lit
		}
		e, ok := ElideURLString(s)
		if !ok {
			return lit
		}
		q, _ := json.Marshal(e)
		return q
	})
}

// ElideURLString is s without user info, query and fragment when s is an
// absolute http(s) URL (ok true), for showing it; anything else comes back
// with ok false.
func ElideURLString(s string) (string, bool) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || u.Host == "" || (!strings.EqualFold(u.Scheme, "http") && !strings.EqualFold(u.Scheme, "https")) {
		return s, false
	}
	if u.User == nil && u.RawQuery == "" && !u.ForceQuery && u.Fragment == "" {
		return s, false
	}
	return confluence.ElideURL(u), true
}

var (
	inlineData = regexp.MustCompile(`"data_base64":\s*"[^"]{64,}"`)
	// jsonString is one JSON string literal, escapes included.
	jsonString = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
)

func containsFold(b []byte, sub string) bool {
	return strings.Contains(strings.ToLower(string(b)), sub)
}
