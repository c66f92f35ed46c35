package credstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"retropub/internal/randhex"
	"retropub/internal/rediskeys"
	"retropub/internal/redislock"
)

// OAuth 2.0 (3LO) for Confluence Cloud (confluence-api.md §3.1). Atlassian
// rotates refresh tokens: each refresh returns a new one and retires the old
// after a 10-minute grace, and a retired one used later logs the customer
// out. So a fleet shares each integration's refresh through Redis: one
// worker refreshes under a lock, saves the pair sealed, and everyone else
// reads it from the record.

// Timing of the shared refresh.
const (
	// refreshLockTTL bounds how long a dead refresher blocks the others; it
	// outlives refreshTimeout plus the save retries.
	refreshLockTTL = 20 * time.Second
	refreshTimeout = 10 * time.Second
	saveBudget     = 8 * time.Second
	pollEvery      = 100 * time.Millisecond
	// earlyMax is how long before expiry a token is refreshed; short-lived
	// tokens use a quarter of their lifetime instead.
	earlyMax = time.Minute
	// freshMax is how long after a refresh a 401 means "this login is
	// broken" rather than "this token was revoked": no second refresh.
	freshMax = time.Minute
)

// OAuthConfig is the OAuth app: ATLASSIAN_CLIENT_ID/SECRET and the hosts.
type OAuthConfig struct {
	ClientID     string
	ClientSecret string
	AuthURL      string       // ATLASSIAN_AUTH_URL: /authorize and /oauth/token
	APIURL       string       // ATLASSIAN_API_URL: /oauth/token/accessible-resources
	HTTPClient   *http.Client // shared, pooled; nil: a client that follows no redirect
}

func (c OAuthConfig) config(redirectURL string, scopes []string) *oauth2.Config {
	base := strings.TrimRight(c.AuthURL, "/")
	return &oauth2.Config{
		ClientID: c.ClientID, ClientSecret: c.ClientSecret, RedirectURL: redirectURL, Scopes: scopes,
		Endpoint: oauth2.Endpoint{
			AuthURL: base + "/authorize", TokenURL: base + "/oauth/token",
			// Atlassian wants the client credentials in the body; AutoDetect
			// would send each refresh token twice on any error.
			AuthStyle: oauth2.AuthStyleInParams,
		},
	}
}

func (c OAuthConfig) httpClient() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return noRedirects
}

// noRedirects is the default client: a token endpoint that redirects gets
// no code, client secret or refresh token re-sent elsewhere (the worker
// passes its egress client, which follows no redirect either).
var noRedirects = &http.Client{
	Timeout:       refreshTimeout,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// oauthContext is the context x/oauth2 keeps for its token calls: never a
// task's, so a refresh whose answer is on its way is not abandoned when the
// task ends.
func (c OAuthConfig) oauthContext() (context.Context, context.CancelFunc) {
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, c.httpClient())
	return context.WithTimeout(ctx, refreshTimeout)
}

// AuthCodeURL is the consent page an admin opens to connect a site.
func (c OAuthConfig) AuthCodeURL(redirectURL, state string, scopes []string) string {
	return c.config(redirectURL, scopes).AuthCodeURL(state,
		oauth2.SetAuthURLParam("audience", "api.atlassian.com"),
		oauth2.SetAuthURLParam("prompt", "consent"))
}

// NewState returns a random state value for AuthCodeURL.
func NewState() string { return randhex.String(16) }

// Exchange trades an authorization code for the first token pair.
func (c OAuthConfig) Exchange(ctx context.Context, code, redirectURL string) (Auth, error) {
	octx, cancel := c.oauthContext()
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	tok, err := c.config(redirectURL, nil).Exchange(octx, code)
	if err != nil {
		return Auth{}, tokenError("", err)
	}
	return authFromToken(tok, time.Now()), nil
}

func authFromToken(tok *oauth2.Token, now time.Time) Auth {
	a := Auth{Kind: KindOAuth2, AccessToken: Secret(tok.AccessToken), RefreshToken: Secret(tok.RefreshToken),
		ExpiresAt: tok.Expiry.UTC(), RefreshedAt: now.UTC()}
	if s, ok := tok.Extra("scope").(string); ok {
		a.Scopes = strings.Fields(s)
	}
	return a
}

// ReauthRequiredError means an integration's login no longer works: the
// refresh token was refused (invalid_grant), a fresh token was refused, or
// there is nothing to refresh with. An admin has to authorise again; the
// integration is marked needs_reauth.
type ReauthRequiredError struct {
	Integration string
	Reason      string
}

func (e *ReauthRequiredError) Error() string {
	return fmt.Sprintf("credstore: integration %q must be re-authorised: %s", e.Integration, e.Reason)
}

// RefreshError is a failed refresh that a later attempt may fix: the token
// endpoint was unreachable, answered 5xx, or refused the app's own
// credentials. It never carries the response body.
type RefreshError struct {
	Integration string
	Status      int    // 0 when no answer came
	Code        string // OAuth error code, if any
	Err         error  // the transport error, if any
}

func (e *RefreshError) Error() string {
	switch {
	case e.Code == "access_denied" || e.Code == "invalid_client" || e.Status == http.StatusUnauthorized:
		return fmt.Sprintf("credstore: integration %q: the token endpoint refused the app (%d %s): check ATLASSIAN_CLIENT_ID and ATLASSIAN_CLIENT_SECRET", e.Integration, e.Status, e.Code)
	case e.Status != 0:
		return fmt.Sprintf("credstore: integration %q: token refresh answered %d %s", e.Integration, e.Status, e.Code)
	}
	return fmt.Sprintf("credstore: integration %q: token refresh failed: %v", e.Integration, e.Err)
}

func (e *RefreshError) Unwrap() error { return e.Err }

// tokenError maps what x/oauth2 returned; invalid_grant becomes a
// ReauthRequiredError.
func tokenError(id string, err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return &RefreshError{Integration: id, Err: err}
	}
	if re.ErrorCode == "invalid_grant" {
		return &ReauthRequiredError{Integration: id, Reason: "the token endpoint refused the refresh token (invalid_grant)"}
	}
	status := 0
	if re.Response != nil {
		status = re.Response.StatusCode
	}
	return &RefreshError{Integration: id, Status: status, Code: re.ErrorCode}
}

// Tokens hands out the per-run token sources of Cloud integrations and
// coordinates their refreshes across the fleet.
type Tokens struct {
	store *Store
	cfg   OAuthConfig
	now   func() time.Time
}

// NewTokens returns the token sources over store for the app in cfg.
func NewTokens(store *Store, cfg OAuthConfig) *Tokens {
	return &Tokens{store: store, cfg: cfg, now: time.Now}
}

// Source returns a token source for rec, seeded with its stored token.
// It satisfies confluence.Refresher.
// A service account's source (kind oauth2_client) fetches its tokens with
// the client credentials instead of a refresh token (clientcreds.go).
func (t *Tokens) Source(rec *Record) *TokenSource {
	s := &TokenSource{t: t, id: rec.ID, cur: rec.Auth}
	if rec.Flavor != FlavorServer {
		// The OAuth app's client may be trusted past the egress checks;
		// it only ever reaches ATLASSIAN_AUTH_URL and ATLASSIAN_API_URL.
		// A Data Center token endpoint is the customer's base_url: its
		// client comes from WithHTTPClient, never this one.
		s.hc = t.cfg.httpClient()
	}
	return s
}

// WithHTTPClient makes s reach its token endpoint through hc: a Data
// Center service account's endpoint is on the customer's base_url, so it
// takes the integration's client (egress policy, ca_pem).
func (s *TokenSource) WithHTTPClient(hc *http.Client) *TokenSource {
	s.hc = hc
	return s
}

// TokenSource is one run's view of an integration's OAuth token: the token
// in memory while it is valid, else the stored one, else a refresh that the
// whole fleet shares.
type TokenSource struct {
	t  *Tokens
	id string
	hc *http.Client // for client-credentials fetches

	mu  sync.Mutex
	cur Auth
}

// Authorize sets the bearer token, refreshing it first when it is about to
// expire.
func (s *TokenSource) Authorize(ctx context.Context, req *http.Request) error {
	tok, err := s.Token(ctx)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok.Reveal())
	return nil
}

// Token returns a valid access token.
func (s *TokenSource) Token(ctx context.Context) (Secret, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.valid(s.cur) {
		if err := s.renew(ctx, ""); err != nil {
			return "", err
		}
	}
	return s.cur.AccessToken, nil
}

// Refresh is called after a 401 on the current token: it takes the stored
// token if another worker has a newer one, else refreshes once. A 401 on a
// token refreshed moments ago means the login itself is broken: no second
// refresh, the integration needs re-authorising.
func (s *TokenSource) Refresh(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.renew(ctx, s.cur.AccessToken)
}

// lifetime is how long the current kind of token lives, when known.
func lifetime(a Auth) time.Duration {
	if a.RefreshedAt.IsZero() || !a.ExpiresAt.After(a.RefreshedAt) {
		return 0
	}
	return a.ExpiresAt.Sub(a.RefreshedAt)
}

// valid: present, and not within the refresh-ahead margin of its expiry. A
// zero expiry never expires (as in x/oauth2).
func (s *TokenSource) valid(a Auth) bool {
	if a.AccessToken == "" {
		return false
	}
	if a.ExpiresAt.IsZero() {
		return true
	}
	early := earlyMax
	if l := lifetime(a); l > 0 {
		// The last quarter of a short-lived token's life covers the
		// requests in flight on a busy worker (a tenth was seen to be too
		// little with 2-second tokens under load: 401s). Long-lived tokens
		// (Atlassian's hour) renew a minute early: ~1.02 fetches per life.
		early = min(early, l/4)
	}
	return s.t.now().Add(early).Before(a.ExpiresAt)
}

// fresh: obtained by a refresh so recently that a 401 on it cannot be an
// expiry or a rotation.
func (s *TokenSource) fresh(a Auth) bool {
	window := freshMax
	if l := lifetime(a); l > 0 {
		window = min(window, l/2)
	}
	return !a.RefreshedAt.IsZero() && s.t.now().Sub(a.RefreshedAt) < window && s.valid(a)
}

// renew replaces s.cur, whose access token is rejected ("" when it merely
// expired). Waiters poll the record while another worker refreshes.
func (s *TokenSource) renew(ctx context.Context, rejected Secret) error {
	for {
		rec, err := s.t.store.Get(ctx, s.id)
		if err != nil {
			return err
		}
		if ok, err := s.usable(ctx, rec, rejected); ok || err != nil {
			return err
		}
		l, err := s.t.lock(ctx, s.id)
		if err != nil {
			return err
		}
		if l != nil {
			return s.refreshLocked(ctx, l, rejected)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollEvery + rand.N(pollEvery)):
		}
	}
}

// usable adopts the stored token when it is valid and not the rejected
// one (true), and fails when only re-authorising can help. (false, nil)
// means a refresh is needed.
func (s *TokenSource) usable(ctx context.Context, rec *Record, rejected Secret) (bool, error) {
	a := rec.Auth
	switch {
	case rec.Status.NeedsReauth:
		return false, &ReauthRequiredError{Integration: s.id, Reason: rec.Status.Reason}
	case a.AccessToken != rejected && s.valid(a):
		s.cur = a
		return true, nil
	case a.Kind == KindClientCredentials:
		// No refresh token to lose: expired or refused (a 401), the
		// answer is one more fetch; a refusal of that one ends the task.
		return false, nil
	case rejected != "" && a.AccessToken == rejected && s.fresh(a):
		return false, s.markReauth(ctx, "Confluence refused a freshly refreshed access token (401)")
	case a.RefreshToken == "":
		return false, s.markReauth(ctx, "the access token expired or was refused, and there is no refresh token")
	}
	return false, nil
}

// refreshLocked runs with the integration's refresh lock held: it re-reads
// the record (another worker may have refreshed before we got the lock),
// refreshes, and saves the new pair before anyone uses it.
func (s *TokenSource) refreshLocked(ctx context.Context, l *refreshLock, rejected Secret) error {
	defer l.release()
	rec, err := s.t.store.Get(ctx, s.id)
	if err != nil {
		return err
	}
	if ok, err := s.usable(ctx, rec, rejected); ok || err != nil {
		return err
	}
	if rec.Auth.Kind == KindClientCredentials {
		return s.fetchLocked(ctx, rec)
	}
	octx, cancel := s.t.cfg.oauthContext()
	defer cancel()
	used := rec.Auth.RefreshToken
	tok, err := s.t.cfg.config("", nil).TokenSource(octx, &oauth2.Token{RefreshToken: used.Reveal()}).Token()
	if err != nil {
		err = tokenError(s.id, err)
		var re *ReauthRequiredError
		if errors.As(err, &re) {
			return s.markReauth(ctx, re.Reason)
		}
		return err
	}
	a := authFromToken(tok, s.t.now())
	if a.RefreshToken == "" {
		a.RefreshToken = used // not rotated: keep the one we have
	}
	if err := s.t.save(s.id, used, a); err != nil && !errors.Is(err, ErrCredentialsReplaced) {
		return err
	}
	// Saved (or superseded by new credentials, for which this pair is
	// still good for this run): only now is the token used.
	s.cur = a
	return nil
}

// save retries: the new pair is the family's only future once the old
// refresh token's grace runs out. It runs on its own context so a task
// that ends meanwhile does not abandon the pair.
func (t *Tokens) save(id string, used Secret, a Auth) error {
	ctx, cancel := context.WithTimeout(context.Background(), saveBudget)
	defer cancel()
	delay := 50 * time.Millisecond
	for {
		err := t.store.SaveTokens(ctx, id, used, a)
		if err == nil || errors.Is(err, ErrCredentialsReplaced) || errors.Is(err, ErrNotFound) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("credstore: integration %q: save refreshed tokens: %w (the old refresh token stays usable for its grace window)", id, err)
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

// fetchLocked runs with the refresh lock held and the record re-read: it
// fetches a service account's new token and caches it sealed before
// anyone uses it, so the fleet's other workers take it from the record.
func (s *TokenSource) fetchLocked(ctx context.Context, rec *Record) error {
	got, err := s.t.fetchClientToken(ctx, rec, s.hc)
	if err != nil {
		var re *ReauthRequiredError
		if errors.As(err, &re) {
			return s.markReauth(ctx, re.Reason)
		}
		return err
	}
	if err := s.t.saveClientToken(s.id, rec.Auth.ClientSecret, got); err != nil && !errors.Is(err, ErrCredentialsReplaced) {
		return err
	}
	a := rec.Auth
	a.AccessToken, a.ExpiresAt, a.RefreshedAt = got.AccessToken, got.ExpiresAt, got.RefreshedAt
	s.cur = a
	return nil
}

func (s *TokenSource) markReauth(ctx context.Context, reason string) error {
	st := Status{NeedsReauth: true, Reason: reason, Since: s.t.now().UTC()}
	if err := s.t.store.SetStatus(context.WithoutCancel(ctx), s.id, st); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("credstore: integration %q: mark needs_reauth: %w", s.id, err)
	}
	return &ReauthRequiredError{Integration: s.id, Reason: reason}
}

// refreshLock is the per-integration lock of one refresh, owned by a
// random token (internal/redislock).
type refreshLock struct{ *redislock.Lock }

func refreshLockKey(id string) string { return rediskeys.RefreshLock(id) }

// lock returns nil, nil when another worker holds the lock.
func (t *Tokens) lock(ctx context.Context, id string) (*refreshLock, error) {
	l := redislock.New(t.store.rdb, refreshLockKey(id), randhex.String(16))
	err := l.Acquire(ctx, refreshLockTTL)
	if errors.Is(err, redislock.ErrHeld) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("credstore: integration %q: refresh lock: %w", id, err)
	}
	return &refreshLock{l}, nil
}

// release deletes the lock only if it is still ours.
func (l *refreshLock) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = l.Release(ctx) // it expires anyway
}
