package credstore

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Service accounts (DESIGN §11): OAuth 2.0 client credentials. There is no
// refresh token; a new access token is fetched with the client id and
// secret shortly before the old one expires. The fetch shares the refresh
// machinery of oauth.go: one fetch at a time per integration across the
// fleet (the refresh lock), the record re-read after taking the lock, the
// token cached sealed in the record.
//
//   - Cloud: POST {ATLASSIAN_AUTH_URL}/oauth/token, JSON, with the audience
//     api.atlassian.com; the token is used through the API gateway
//     (https://support.atlassian.com/user-management/docs/create-oauth-2-0-credential-for-service-accounts).
//   - Data Center: POST {base_url}/rest/oauth2/latest/token, a form
//     (https://confluence.atlassian.com/enterprise/service-accounts-overview-1627095923.html).

// dcTokenPath is Data Center's OAuth 2.0 provider token endpoint, below the
// base URL (context path kept).
const dcTokenPath = "/rest/oauth2/latest/token"

// maxTokenAnswer bounds what is read from a token endpoint.
const maxTokenAnswer = 64 << 10

// TokenEndpointError is a token endpoint answer that holds no usable
// token: an HTML page, an empty body, a token without expiry, a 5xx. It
// names the endpoint and what was wrong, never the body (it may echo the
// request). Temporary ones (5xx, 429, no answer) are worth retrying.
type TokenEndpointError struct {
	Integration string
	Endpoint    string // scheme://host/path, no query
	Status      int    // 0 when no answer came
	Reason      string
	Err         error // the transport error, if any
}

func (e *TokenEndpointError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("credstore: integration %q: token endpoint %s: %s", e.Integration, e.Endpoint, e.Reason)
	}
	return fmt.Sprintf("credstore: integration %q: token endpoint %s answered %d: %s", e.Integration, e.Endpoint, e.Status, e.Reason)
}

func (e *TokenEndpointError) Unwrap() error { return e.Err }

// Temporary reports whether a later fetch may succeed: no answer, 429 or
// 5xx. A 2xx without a usable token, or a 4xx, needs a person.
func (e *TokenEndpointError) Temporary() bool {
	if certificateFailure(e.Err) {
		return false // a certificate is not trusted until someone changes ca_pem
	}
	return e.Status == 0 || e.Status == http.StatusTooManyRequests || e.Status >= 500
}

func certificateFailure(err error) bool {
	var cv *tls.CertificateVerificationError
	return errors.As(err, &cv)
}

// clientTokenURL is where rec's service account gets its tokens.
func (t *Tokens) clientTokenURL(rec *Record) string {
	if rec.Flavor == FlavorServer {
		return strings.TrimRight(rec.BaseURL, "/") + dcTokenPath
	}
	return strings.TrimRight(t.cfg.AuthURL, "/") + "/oauth/token"
}

// tokenAnswer is the RFC 6749 §5.1/§5.2 body.
type tokenAnswer struct {
	AccessToken      string          `json:"access_token"`
	TokenType        string          `json:"token_type"`
	ExpiresIn        json.RawMessage `json:"expires_in"`
	Scope            string          `json:"scope"`
	Error            string          `json:"error"`
	ErrorDescription string          `json:"error_description"`
}

// fetchClientToken asks the token endpoint of rec for a new access token
// with the client credentials (grant_type=client_credentials).
func (t *Tokens) fetchClientToken(ctx context.Context, rec *Record, hc *http.Client) (Auth, error) {
	endpoint := t.clientTokenURL(rec)
	a := rec.Auth
	var body []byte
	contentType := "application/x-www-form-urlencoded"
	if rec.Flavor == FlavorServer {
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {a.ClientID}, "client_secret": {a.ClientSecret.Reveal()}}
		if len(a.Scopes) > 0 {
			form.Set("scope", strings.Join(a.Scopes, " "))
		}
		body = []byte(form.Encode())
	} else {
		req := map[string]string{"grant_type": "client_credentials", "client_id": a.ClientID,
			"client_secret": a.ClientSecret.Reveal(), "audience": "api.atlassian.com"}
		if len(a.Scopes) > 0 {
			req["scope"] = strings.Join(a.Scopes, " ")
		}
		body, _ = json.Marshal(req)
		contentType = "application/json"
	}
	fail := func(status int, reason string, err error) (Auth, error) {
		return Auth{}, &TokenEndpointError{Integration: rec.ID, Endpoint: endpoint, Status: status, Reason: reason, Err: err}
	}
	if hc == nil {
		return fail(0, "no HTTP client with the egress policy was given for this endpoint (TokenSource.WithHTTPClient)", nil)
	}

	// Its own deadline, not the task's: an answer on its way is not
	// abandoned because the task that asked ended.
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(octx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return fail(0, "cannot build the request", nil)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json")
	start := t.now()
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is in Endpoint already
		}
		if certificateFailure(err) {
			return fail(0, "TLS certificate not trusted: "+err.Error()+" — add the CA to the integration's ca_pem", err)
		}
		return fail(0, "no answer: "+err.Error(), err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxTokenAnswer))
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	var ans tokenAnswer
	isJSON := json.Unmarshal(raw, &ans) == nil
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return fail(resp.StatusCode, "the token endpoint redirected; redirects are not followed (check base_url or ATLASSIAN_AUTH_URL)", nil)
	case len(bytes.TrimSpace(raw)) == 0:
		return fail(resp.StatusCode, "empty answer where a token was expected", nil)
	case !isJSON:
		return fail(resp.StatusCode, fmt.Sprintf("answered %s, not a JSON token (a login page or a proxy in the way? check the URL)", describeType(mt)), nil)
	case ans.Error != "":
		return Auth{}, t.clientTokenRefused(rec.ID, endpoint, resp.StatusCode, ans.Error)
	case resp.StatusCode == http.StatusUnauthorized:
		return Auth{}, &ReauthRequiredError{Integration: rec.ID, Reason: "the token endpoint refused the client credentials (401)"}
	case resp.StatusCode != http.StatusOK:
		return fail(resp.StatusCode, "no token in the answer", nil)
	case ans.AccessToken == "":
		return fail(resp.StatusCode, "the answer has no access_token", nil)
	case ans.TokenType != "" && !strings.EqualFold(ans.TokenType, "bearer"):
		return fail(resp.StatusCode, fmt.Sprintf("token_type %q is not Bearer", ans.TokenType), nil)
	}
	secs, ok := expiresIn(ans.ExpiresIn)
	if !ok {
		return fail(resp.StatusCode, "the token has no expiry (expires_in missing or not a positive number of seconds); without one it cannot be renewed in time", nil)
	}
	got := Auth{Kind: KindClientCredentials, AccessToken: Secret(ans.AccessToken),
		// Counted from before the request: the endpoint started the clock
		// no later than that, so the token never outlives our idea of it.
		ExpiresAt: start.Add(secs).UTC(), RefreshedAt: start.UTC()}
	return got, nil
}

// expiresIn reads expires_in, a number of seconds (some servers send it
// as a string).
func expiresIn(raw json.RawMessage) (time.Duration, bool) {
	var n json.Number
	if len(raw) == 0 || json.Unmarshal(bytes.Trim(raw, `"`), &n) != nil {
		return 0, false
	}
	f, err := n.Float64()
	if err != nil || f <= 0 || f > 366*24*3600 {
		return 0, false
	}
	return time.Duration(f * float64(time.Second)), true
}

func describeType(mt string) string {
	if mt == "" {
		return "a body without a content type"
	}
	return mt
}

// clientTokenRefused maps an OAuth error code. The ones that mean "these
// credentials will not work until a person changes something" mark the
// integration needs_reauth: no retry can fix them.
func (t *Tokens) clientTokenRefused(id, endpoint string, status int, code string) error {
	switch code {
	case "invalid_client":
		return &ReauthRequiredError{Integration: id, Reason: "the token endpoint refused the client id or secret (invalid_client): create a new OAuth 2.0 credential for the service account and put it"}
	case "unauthorized_client", "access_denied", "invalid_grant":
		return &ReauthRequiredError{Integration: id, Reason: fmt.Sprintf("the token endpoint refused the service account (%s): check that its credential is active and allowed the client credentials grant", code)}
	case "invalid_scope":
		return &ReauthRequiredError{Integration: id, Reason: "the token endpoint refused the scopes (invalid_scope): put the record with scopes the service account's credential was created with"}
	}
	return &TokenEndpointError{Integration: id, Endpoint: endpoint, Status: status, Reason: "error " + code}
}

// saveClientToken caches a fetched token, retrying Redis briefly; a token
// that could not be cached still serves this run (the next fetch is one
// request, nothing is lost).
func (t *Tokens) saveClientToken(id string, usedSecret Secret, a Auth) error {
	ctx, cancel := context.WithTimeout(context.Background(), saveBudget)
	defer cancel()
	delay := 50 * time.Millisecond
	for {
		err := t.store.SaveClientToken(ctx, id, usedSecret, a)
		if err == nil || errors.Is(err, ErrCredentialsReplaced) || errors.Is(err, ErrNotFound) {
			return err
		}
		select {
		case <-ctx.Done():
			return nil // used uncached; the fleet's next worker fetches its own
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}
