package confluence

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Authorizer adds credentials to a request.
type Authorizer interface {
	Authorize(ctx context.Context, req *http.Request) error
}

// Refresher is an Authorizer that can fetch new credentials. After a 401 on
// credentials believed valid, the client calls Refresh once and repeats the
// request once (DESIGN §3).
type Refresher interface {
	Authorizer
	Refresh(ctx context.Context) error
}

// Gate admits a request to an instance before it is sent (cooldowns, rate
// limits, circuit breakers) and learns how it ended. Admit returns an error
// to refuse the request without sending it.
type Gate interface {
	Admit(ctx context.Context, instance, method, route string) (done func(Outcome), err error)
}

// Outcome is how one sent request ended, for gates and observers.
type Outcome struct {
	Instance, Method, Route string
	StatusCode              int // 0 when no answer came
	Header                  http.Header
	Err                     error // the typed error the caller receives, nil on 2xx
	Duration                time.Duration
	// AnswerTooLarge marks a second report for a request already
	// observed: its 2xx answer passed the bound (WithMaxAnswerBytes) while
	// it was read. Observers count it apart from requests.
	AnswerTooLarge bool
}

// Observer sees every request's outcome (metrics, logs).
type Observer func(Outcome)

// BearerToken authorizes with a fixed access token.
type BearerToken string

// Authorize sets the Authorization header.
func (t BearerToken) Authorize(_ context.Context, req *http.Request) error {
	req.Header.Set("Authorization", "Bearer "+string(t))
	return nil
}

// Client talks to one Confluence instance with one set of credentials.
// Build one per job run on a shared *http.Client so connections pool.
//
// Its methods are the same on every flavour. What differs (REST v2 on
// Cloud, v1 on Data Center; space ids vs keys) lives in two types behind
// the unexported flavour interface, chosen once by NewCloud or NewServer:
// no method asks which flavour it is on.
type Client struct {
	conn         // the one request path both flavours share
	api  flavour // *cloud or *dataCenter
}

// conn is the request path: allowlist, gate, credentials, send, retry
// policy, answer checking. Flavours call do; nothing else sends.
type conn struct {
	base     *url.URL // …/ex/confluence/{cloudId}, or the Data Center base URL; no trailing slash
	instance string   // "cloud:<cloudId>" or "server:<host><context path>"
	v1       string   // where REST v1 lives below base: /wiki/rest/api on Cloud, /rest/api on Data Center
	site     string   // where people read pages when an answer names no _links.base: the Cloud site's /wiki (WithSiteURL), the Data Center base URL
	caPEM    string   // extra CA bundle (WithCA)
	http     *http.Client
	auth     Authorizer
	allowed  []route
	agent    string
	gate     Gate
	observe  Observer
	retry    retryPolicy
	redirect redirectHint // whose address it is when an answer redirects
	calls    atomic.Int64
	// maxAnswer bounds a decoded answer (WithMaxAnswerBytes).
	maxAnswer int64
	// trusted requests skip the egress address checks (trust.go): set
	// by NewCloud only.
	trusted bool
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient shares one pooled *http.Client between clients.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithAuthorizer sets how requests carry credentials.
func WithAuthorizer(a Authorizer) Option { return func(c *Client) { c.auth = a } }

// WithGate puts g in front of every request.
func WithGate(g Gate) Option { return func(c *Client) { c.gate = g } }

// WithObserver reports every request's outcome to o.
func WithObserver(o Observer) Option { return func(c *Client) { c.observe = o } }

// WithCA also trusts the PEM certificates in caPEM (an integration's
// ca_pem), on a transport derived from the shared one; "" changes nothing.
func WithCA(caPEM string) Option { return func(c *Client) { c.caPEM = caPEM } }

// WithSiteURL names a Cloud site's address for people (the integration's
// site_url, e.g. https://acme.atlassian.net): page links are made absolute
// with it when an answer names no _links.base. Data Center clients use
// their base URL, context path included, and ignore it.
func WithSiteURL(siteURL string) Option {
	return func(c *Client) {
		if siteURL != "" {
			c.site = strings.TrimSuffix(strings.TrimRight(siteURL, "/"), "/wiki") + "/wiki"
		}
	}
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.agent = ua } }

// NewCloud returns a client for a Cloud site reached through the OAuth
// gateway at apiURL (https://api.atlassian.com in production).
func NewCloud(apiURL, cloudID string, opts ...Option) (*Client, error) {
	if cloudID == "" || strings.ContainsAny(cloudID, "/?#") {
		return nil, fmt.Errorf("confluence: invalid cloud id %q", cloudID)
	}
	base, err := url.Parse(strings.TrimRight(apiURL, "/") + "/ex/confluence/" + cloudID)
	if err != nil || base.Host == "" {
		return nil, fmt.Errorf("confluence: invalid API URL %q", apiURL)
	}
	c := &Client{}
	c.base, c.instance, c.v1, c.allowed, c.redirect = base, "cloud:"+cloudID, "/wiki/rest/api", cloudRoutes, cloudRedirect
	c.api = &cloud{conn: &c.conn}
	c.trusted = true // the gateway is the operator's configuration (trust.go)
	if err := c.apply(opts); err != nil {
		return nil, err
	}
	return c, nil
}

// apply applies the options and fills in the defaults.
func (c *Client) apply(opts []Option) error {
	c.agent, c.retry = "retropub", defaultRetryPolicy()
	for _, o := range opts {
		o(c)
	}
	if c.http == nil {
		c.http = NewHTTPClient(30*time.Second, 16)
	}
	if c.maxAnswer <= 0 {
		c.maxAnswer = DefaultMaxAnswerBytes
	}
	if c.caPEM != "" {
		hc, err := clientWithCA(c.http, c.caPEM)
		if err != nil {
			return err
		}
		c.http = hc
	}
	if c.auth == nil {
		return errors.New("confluence: no credentials (WithAuthorizer)")
	}
	return nil
}

// Instance names the Confluence instance, e.g. "cloud:<cloudId>".
func (c *conn) Instance() string { return c.instance }

// Calls reports how many HTTP requests this client has sent.
func (c *conn) Calls() int64 { return c.calls.Load() }

// request is one call before it is sent.
type request struct {
	method      string
	path        string // relative to the base, e.g. /wiki/api/v2/pages
	query       url.Values
	body        func() io.ReadCloser // called once per send, so a request can be repeated
	contentType string
	header      http.Header
	// streamed bodies (uploads) may take longer than CONFLUENCE_TIMEOUT:
	// they are bounded by the caller's context (the task's timeout) instead.
	streamed bool
}

func jsonBody(v any) (func() io.ReadCloser, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return func() io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }, nil
}

// do is the one request path: allowlist, then attempts as the retry
// policy decides (retry.go), then the answer decoded into out (nil:
// discarded).
func (c *conn) do(ctx context.Context, r request, out any) error {
	route, ok := allowed(c.allowed, r.method, r.path)
	if !ok {
		return &NotAllowedError{Method: r.method, Path: r.path}
	}
	resp, err := c.attempt(ctx, r, route)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	err = decodeAnswer(r, resp.Body, c.maxAnswer, out)
	if errors.Is(err, ErrAnswerTooLarge) && c.observe != nil {
		c.observe(Outcome{Instance: c.instance, Method: r.method, Route: route, StatusCode: resp.StatusCode, Err: err, AnswerTooLarge: true})
	}
	return err
}

// send makes one attempt; a non-2xx answer comes back as an error with the
// body consumed.
func (c *conn) send(ctx context.Context, r request, route string) (*http.Response, error) {
	var done func(Outcome)
	if c.gate != nil {
		d, err := c.gate.Admit(ctx, c.instance, r.method, route)
		if err != nil {
			return nil, err
		}
		done = d
	}
	u := *c.base
	u.Path = c.base.Path + r.path
	u.RawPath = ""
	if len(r.query) > 0 {
		u.RawQuery = r.query.Encode()
	}
	var body io.ReadCloser
	if r.body != nil {
		body = r.body()
	}
	sendCtx := ctx
	if c.trusted {
		sendCtx = markTrusted(ctx)
	}
	req, err := http.NewRequestWithContext(sendCtx, r.method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("confluence: build %s %s: %w", r.method, r.path, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.agent)
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	if err := c.auth.Authorize(ctx, req); err != nil {
		if body != nil {
			body.Close()
		}
		return nil, err
	}
	c.calls.Add(1)
	start := time.Now()
	hc := c.http
	if r.streamed && hc.Timeout > 0 {
		long := *hc
		long.Timeout = 0
		hc = &long
	}
	resp, err := hc.Do(req)
	o := Outcome{Instance: c.instance, Method: r.method, Route: route}
	switch {
	case err != nil && ctx.Err() != nil:
		err = ctx.Err()
	case err != nil:
		err = sendError(r, &u, err)
	default:
		o.StatusCode, o.Header = resp.StatusCode, resp.Header
		if err = redirectError(r, resp, c.redirect); err == nil {
			err = checkResponse(r, resp, c.retry.clock.Now())
		}
		if err != nil {
			resp.Body.Close()
		}
	}
	o.Err, o.Duration = err, time.Since(start)
	if done != nil {
		done(o)
	}
	if c.observe != nil {
		c.observe(o)
	}
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// stripURL drops the URL from a *url.Error: it may carry titles in the query.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

const maxErrorBody = 1 << 20

// checkResponse is the only place that maps HTTP answers onto error types,
// and so the only place an *Error (a 404 included) is made: a look-up that
// Confluence answered without a match is a *NotFoundError instead.
func checkResponse(r request, resp *http.Response, now time.Time) error {
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &Error{
		StatusCode:      resp.StatusCode,
		Method:          r.method,
		Path:            r.path,
		LoginReason:     resp.Header.Get("X-Seraph-LoginReason"),
		FailureCategory: resp.Header.Get("X-Failure-Category"),
	}
	e.Code, e.Message = errorMessage(body)
	e.Exists = existing(e.StatusCode, e.Message)
	if resp.StatusCode == http.StatusTooManyRequests ||
		(resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "") {
		d, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), now)
		switch {
		case resp.StatusCode == http.StatusTooManyRequests && quotaAnswer(resp.Header):
			d = quotaRetryAfter(d, ok, resp.Header, now) // quota.go: never past the hour
		case !ok:
			d = 10 * time.Second
		}
		return &RateLimitError{Resp: e, RetryAfter: d, Reason: resp.Header.Get("RateLimit-Reason")}
	}
	return e
}

// errorMessage reads the v2 ({"errors":[…]}), v1 ({"statusCode","message"}),
// gateway ({"code","message"}) and OAuth ({"error","error_description"})
// error shapes.
func errorMessage(body []byte) (code, msg string) {
	var b struct {
		Errors []struct {
			Code  string `json:"code"`
			Title string `json:"title"`
		} `json:"errors"`
		Message          string `json:"message"`
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	if json.Unmarshal(body, &b) != nil {
		return "", strings.TrimSpace(string(truncate(body, 300)))
	}
	switch {
	case len(b.Errors) > 0:
		return b.Errors[0].Code, b.Errors[0].Title
	case b.Message != "":
		return "", b.Message
	case b.Error != "":
		return b.Error, strings.TrimSpace(b.Error + ": " + b.ErrorDescription)
	}
	return "", ""
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
