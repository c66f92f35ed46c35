package confluence

import (
	"context"
	"net/http"
)

// Trust (issue 13 item 9): the operator's own endpoints — the Atlassian
// gateway (ATLASSIAN_API_URL) and auth server (ATLASSIAN_AUTH_URL) — may sit
// on internal addresses (a test gateway, a regional relay), so requests to
// them skip the egress address checks. Which requests those are is decided
// by the code path that makes them, never by comparing a request's URL with
// a trusted origin: a customer's Server base_url that equals
// ATLASSIAN_API_URL is still a customer's URL and gets every check.
//
// The trusted paths are the Cloud client (NewCloud: its base is the
// configured gateway) and the OAuth calls (TrustedClient, used for the
// token and accessible-resources endpoints). Nothing else is trusted.

// isTrusted reports whether ctx was marked by a trusted code path.
func isTrusted(ctx context.Context) bool {
	t, _ := ctx.Value(trustedKey{}).(bool)
	return t
}

func markTrusted(ctx context.Context) context.Context {
	return context.WithValue(ctx, trustedKey{}, true)
}

// TrustedClient returns a client like hc whose every request skips the
// egress address checks. Give it only to code that sends to the operator's
// configured endpoints (the OAuth token and accessible-resources calls);
// a URL that came from a customer must never be sent with it.
func TrustedClient(hc *http.Client) *http.Client {
	c := *hc
	next := hc.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	c.Transport = trustedTransport{next: next}
	return &c
}

type trustedTransport struct{ next http.RoundTripper }

func (t trustedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.next.RoundTrip(req.WithContext(markTrusted(req.Context())))
}
