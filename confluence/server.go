package confluence

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Confluence Server / Data Center: REST v1 at the customer's base URL, which
// often carries a context path (https://host/confluence/rest/api/…).
//
// The Server flavour is the same *Client with the same methods, so jobs do
// not know which flavour they talk to. Two things differ underneath:
//
//   - v1 addresses a space by its key, so on Server Space.ID holds the key
//     and every method that takes a space id takes the key there;
//   - attachments, search and the current user are v1 on Cloud too, under
//     /wiki/rest/api; the Server flavour drops the /wiki (v1Path).

// NewServer returns a client for the Server/Data Center site at baseURL
// (http or https, with any context path; trailing slashes are dropped).
// Which addresses it may reach, and whether http is acceptable there, is
// the HTTP client's egress policy (NewHTTPClient), checked at dial time.
func NewServer(baseURL string, opts ...Option) (*Client, error) {
	base, err := normalizeBaseURL(baseURL)
	if err != nil {
		return nil, err
	}
	c := &Client{base: base, instance: "server:" + base.Host + base.Path, server: true, allowed: serverRoutes, agent: "retropub"}
	if err := c.apply(opts); err != nil {
		return nil, err
	}
	return c, nil
}

// normalizeBaseURL keeps scheme, host and context path: lower-case scheme
// and host, no default port, no trailing slash, nothing else.
func normalizeBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("confluence: base URL %q: %w", raw, errors.Unwrap(err))
	}
	u.Scheme = strings.ToLower(u.Scheme)
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("confluence: base URL %q: scheme must be https (or http to an address in CONFLUENCE_ALLOW_CIDRS)", raw)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("confluence: base URL %q: no host", raw)
	case u.User != nil:
		return nil, fmt.Errorf("confluence: base URL must not carry credentials")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, fmt.Errorf("confluence: base URL %q: no query or fragment, only scheme, host and context path", raw)
	}
	host := strings.ToLower(u.Host)
	if p := u.Port(); (u.Scheme == "https" && p == "443") || (u.Scheme == "http" && p == "80") {
		host = strings.TrimSuffix(host, ":"+p)
	}
	path := strings.TrimRight(u.Path, "/")
	for strings.Contains(path, "//") {
		path = strings.ReplaceAll(path, "//", "/")
	}
	return &url.URL{Scheme: u.Scheme, Host: host, Path: path}, nil
}

// cloudV1 is where Cloud's v1 API lives below its site; on Server it is at
// the base URL itself.
const cloudV1 = "/wiki/rest/api/"

// v1Path maps a Cloud-style v1 path onto the flavour: unchanged on Cloud,
// without /wiki on Server.
func (c *Client) v1Path(path string) string {
	if c.server && strings.HasPrefix(path, cloudV1) {
		return strings.TrimPrefix(path, "/wiki")
	}
	return path
}

// LoginDenied reports Data Center's CAPTCHA lock: after failed logins it
// answers 401 with X-Seraph-LoginReason: AUTHENTICATION_DENIED until the
// user logs in once in a browser. Every further attempt keeps it locked.
func (e *Error) LoginDenied() bool {
	return e.StatusCode == 401 && strings.EqualFold(e.LoginReason, "AUTHENTICATION_DENIED")
}
