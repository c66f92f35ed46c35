package confluence

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
)

// Redirects (DESIGN §4): no redirect from Confluence or the Atlassian
// endpoints is ever followed. Following one would
//
//   - copy Authorization onto a plain-http request when an https base URL
//     redirects to http on the same host (Go compares only host names);
//   - turn a POST answered 301/302/303 into a GET, so a write is lost and
//     its empty answer read as success;
//   - send credentials to a path outside the allowed calls.
//
// The client gives the 3xx answer back unread (http.ErrUseLastResponse)
// and send turns it into a *RedirectError: permanent, because a base URL
// that redirects is a configuration mistake no retry fixes.

// checkRedirect is every Confluence client's CheckRedirect.
func checkRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// ErrRedirected matches a *RedirectError.
var ErrRedirected = errors.New("confluence: redirect not followed")

// RedirectError is a 3xx answer. To is where it pointed, without user
// info, query or fragment (they may carry tokens or titles).
type RedirectError struct {
	Method, Path string // the request, no query
	StatusCode   int
	To           string
	// Who redirected and what a person changes: the flavour's (redirectHint).
	Who, Fix string
}

// redirectHint names, per flavour, whose address redirected and the fix:
// the integration's base_url on Data Center, ATLASSIAN_API_URL on Cloud.
type redirectHint struct{ who, fix string }

var (
	cloudRedirect      = redirectHint{"the Atlassian API", "check ATLASSIAN_API_URL"}
	dataCenterRedirect = redirectHint{"base_url", "fix the integration's base_url (use the address Confluence answers on, with https)"}
)

func (e *RedirectError) Error() string {
	to := e.To
	if to == "" {
		to = "nowhere (no Location)"
	}
	return fmt.Sprintf("confluence: %s redirects to %s (%d on %s %s): redirects are never followed; %s", e.Who, to, e.StatusCode, e.Method, e.Path, e.Fix)
}

// Is makes errors.Is(err, ErrRedirected) and errors.Is(err, ErrEgressRefused)
// true: nothing more was sent, and no retry can help.
func (e *RedirectError) Is(target error) bool {
	return target == ErrRedirected || target == ErrEgressRefused
}

// redirectError types a 3xx answer; nil for any other status.
func redirectError(r request, resp *http.Response, h redirectHint) error {
	if resp.StatusCode < 300 || resp.StatusCode > 399 {
		return nil
	}
	e := &RedirectError{Method: r.method, Path: r.path, StatusCode: resp.StatusCode, Who: h.who, Fix: h.fix}
	if loc, err := resp.Location(); err == nil {
		e.To = ElideURL(loc)
	}
	return e
}

// ElideURL is u without user info, query and fragment, its path cut at
// 200 bytes: what may be shown of a URL in errors, logs and dashboards
// (signed URLs carry their signature in the query).
func ElideURL(u *url.URL) string {
	c := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	s := c.String()
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if u.RawQuery != "" || u.ForceQuery {
		s += "?…"
	}
	return s
}
