package credstore_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"retropub/confluence/confluencetest"
	"retropub/credstore"
)

type oauthBundle struct {
	fake  *confluencetest.Server
	mr    *miniredis.Miniredis
	rdb   *redis.Client
	keys  *credstore.Keyring
	store *credstore.Store
	cfg   credstore.OAuthConfig
}

func setupOAuth(t *testing.T, opts confluencetest.Options) *oauthBundle {
	t.Helper()
	b := &oauthBundle{fake: confluencetest.New(opts), mr: miniredis.RunT(t)}
	u := b.fake.Start()
	t.Cleanup(b.fake.Close)
	b.rdb = redis.NewClient(&redis.Options{Addr: b.mr.Addr(), MaxRetries: -1})
	t.Cleanup(func() { b.rdb.Close() })
	kid, key := credstore.GenerateKey()
	var err error
	if b.keys, err = credstore.ParseKeys(kid + ":" + key); err != nil {
		t.Fatal(err)
	}
	b.store = credstore.New(b.rdb, b.keys)
	id, secret := b.fake.ClientCredentials()
	b.cfg = credstore.OAuthConfig{ClientID: id, ClientSecret: secret, AuthURL: u, APIURL: u, HTTPClient: &http.Client{Timeout: 5 * time.Second}}
	return b
}

// putExpired stores an integration whose access token has expired, so the
// first use refreshes.
func (b *oauthBundle) putExpired(t *testing.T, id string) (access, refresh string) {
	t.Helper()
	access, refresh = b.fake.IssueTokens()
	err := b.store.Put(context.Background(), &credstore.Record{ID: id, Flavor: "cloud", CloudID: b.fake.CloudID(),
		Auth: credstore.Auth{Kind: "oauth2", AccessToken: credstore.Secret(access), RefreshToken: credstore.Secret(refresh),
			ExpiresAt: time.Now().Add(-time.Minute)}})
	if err != nil {
		t.Fatal(err)
	}
	return access, refresh
}

func (b *oauthBundle) get(t *testing.T, id string) *credstore.Record {
	t.Helper()
	rec, err := b.store.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// Many workers (each its own Tokens, as separate processes have) find the
// same expired token at once: one refresh, everyone gets the new token.
func TestConcurrentRefreshIsShared(t *testing.T) {
	t.Parallel()
	b := setupOAuth(t, confluencetest.Options{})
	_, rt0 := b.putExpired(t, "acme")
	rec := b.get(t, "acme")
	const workers = 8
	got := make([]string, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			src := credstore.NewTokens(b.store, b.cfg).Source(rec)
			tok, err := src.Token(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = tok.Reveal()
		})
	}
	wg.Wait()
	log := b.fake.RefreshLog()
	if len(log) != 1 || log[0].RefreshToken != rt0 || log[0].Error != "" {
		t.Fatalf("refresh log %+v, want one refresh of the stored token", log)
	}
	after := b.get(t, "acme")
	for i, g := range got {
		if g != after.Auth.AccessToken.Reveal() {
			t.Errorf("worker %d got another token than the stored one", i)
		}
	}
	if after.Auth.RefreshToken.Reveal() != log[0].NewRefresh || after.Auth.RefreshedAt.IsZero() ||
		!after.Auth.ExpiresAt.After(time.Now()) || len(after.Auth.Scopes) == 0 {
		t.Errorf("stored record after refresh: %+v", after.View())
	}
	if err := b.fake.CheckRefreshTokensUsedOnce(); err != nil {
		t.Error(err)
	}
}

// The new pair is saved before it is used, and a failed save is retried.
func TestRefreshSavesBeforeUseAndRetriesTheSave(t *testing.T) {
	t.Parallel()
	b := setupOAuth(t, confluencetest.Options{})
	b.putExpired(t, "acme")
	rec := b.get(t, "acme")
	b.fake.OnRequest(func(r confluencetest.Request) {
		if r.Path == "/oauth/token" {
			// Redis fails just as the answer leaves the token endpoint.
			b.mr.SetError("LOADING Redis is loading the dataset in memory")
			time.AfterFunc(300*time.Millisecond, func() { b.mr.SetError("") })
		}
	})
	tok, err := credstore.NewTokens(b.store, b.cfg).Source(rec).Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if after := b.get(t, "acme"); after.Auth.AccessToken != tok {
		t.Fatal("the token in use is not the stored one")
	}
}

func TestInvalidGrantMarksNeedsReauth(t *testing.T) {
	t.Parallel()
	b := setupOAuth(t, confluencetest.Options{})
	_, rt := b.putExpired(t, "acme")
	b.fake.RevokeRefreshToken(rt)
	src := credstore.NewTokens(b.store, b.cfg).Source(b.get(t, "acme"))
	_, err := src.Token(context.Background())
	var re *credstore.ReauthRequiredError
	if !errors.As(err, &re) || !strings.Contains(re.Reason, "invalid_grant") {
		t.Fatalf("err = %v, want ReauthRequiredError naming invalid_grant", err)
	}
	if st := b.get(t, "acme").Status; !st.NeedsReauth || st.Since.IsZero() || !strings.Contains(st.Reason, "invalid_grant") {
		t.Fatalf("status %+v", st)
	}
	// Other workers stop at the mark: no more calls to the token endpoint.
	other := credstore.NewTokens(b.store, b.cfg).Source(b.get(t, "acme"))
	if _, err := other.Token(context.Background()); !errors.As(err, &re) {
		t.Fatalf("second worker: %v", err)
	}
	if n := len(b.fake.RefreshLog()); n != 1 {
		t.Fatalf("%d refreshes, want 1", n)
	}
	if strings.Contains(err.Error(), rt) {
		t.Fatal("error carries the refresh token")
	}
}

// A 401 on a token refreshed moments ago is not fixed by refreshing again.
func TestUnauthorizedAfterFreshTokenNeedsReauth(t *testing.T) {
	t.Parallel()
	b := setupOAuth(t, confluencetest.Options{})
	b.putExpired(t, "acme")
	src := credstore.NewTokens(b.store, b.cfg).Source(b.get(t, "acme"))
	if _, err := src.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	err := src.Refresh(context.Background()) // as the client does after a 401
	var re *credstore.ReauthRequiredError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want ReauthRequiredError", err)
	}
	if n := len(b.fake.RefreshLog()); n != 1 {
		t.Fatalf("%d refreshes, want 1 (no second refresh)", n)
	}
	if !b.get(t, "acme").Status.NeedsReauth {
		t.Fatal("not marked needs_reauth")
	}
}

// A 401 on a token believed valid (not just refreshed) forces one refresh.
func TestUnauthorizedOnOlderTokenRefreshesOnce(t *testing.T) {
	t.Parallel()
	b := setupOAuth(t, confluencetest.Options{})
	access, refresh := b.fake.IssueTokens()
	if err := b.store.Put(context.Background(), &credstore.Record{ID: "acme", Flavor: "cloud", CloudID: b.fake.CloudID(),
		Auth: credstore.Auth{Kind: "oauth2", AccessToken: credstore.Secret(access), RefreshToken: credstore.Secret(refresh),
			ExpiresAt: time.Now().Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	src := credstore.NewTokens(b.store, b.cfg).Source(b.get(t, "acme"))
	if err := src.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	tok, _ := src.Token(context.Background())
	if tok.Reveal() == access || len(b.fake.RefreshLog()) != 1 {
		t.Fatalf("want one refresh and a new token; log %+v", b.fake.RefreshLog())
	}
}

func TestNoRefreshTokenNeedsReauth(t *testing.T) {
	t.Parallel()
	b := setupOAuth(t, confluencetest.Options{})
	if err := b.store.Put(context.Background(), &credstore.Record{ID: "acme", Flavor: "cloud", CloudID: b.fake.CloudID(),
		Auth: credstore.Auth{Kind: "oauth2", AccessToken: "static", ExpiresAt: time.Now().Add(-time.Second)}}); err != nil {
		t.Fatal(err)
	}
	_, err := credstore.NewTokens(b.store, b.cfg).Source(b.get(t, "acme")).Token(context.Background())
	var re *credstore.ReauthRequiredError
	if !errors.As(err, &re) || len(b.fake.RefreshLog()) != 0 {
		t.Fatalf("err = %v, refreshes %d", err, len(b.fake.RefreshLog()))
	}
}

func TestWrongClientSecretIsNotReauth(t *testing.T) {
	t.Parallel()
	b := setupOAuth(t, confluencetest.Options{})
	b.putExpired(t, "acme")
	b.cfg.ClientSecret = "wrong"
	_, err := credstore.NewTokens(b.store, b.cfg).Source(b.get(t, "acme")).Token(context.Background())
	var re *credstore.RefreshError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "ATLASSIAN_CLIENT_SECRET") || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("err = %v", err)
	}
	if b.get(t, "acme").Status.NeedsReauth {
		t.Fatal("a misconfigured app must not log the customer out")
	}
}

func TestResolveSite(t *testing.T) {
	t.Parallel()
	b := setupOAuth(t, confluencetest.Options{SiteURL: "https://acme.atlassian.net"})
	access, refresh := b.fake.IssueTokens()
	put := func(id, site string) *credstore.Record {
		if err := b.store.Put(context.Background(), &credstore.Record{ID: id, Flavor: "cloud", SiteURL: site,
			Auth: credstore.Auth{Kind: "oauth2", AccessToken: credstore.Secret(access), RefreshToken: credstore.Secret(refresh)}}); err != nil {
			t.Fatal(err)
		}
		return b.get(t, id)
	}
	tokens := credstore.NewTokens(b.store, b.cfg)
	rec := put("acme", "https://ACME.atlassian.net/")
	if err := tokens.ResolveSite(context.Background(), rec, tokens.Source(rec)); err != nil {
		t.Fatal(err)
	}
	stored := b.get(t, "acme")
	if rec.CloudID != b.fake.CloudID() || stored.CloudID != b.fake.CloudID() || len(stored.Auth.Scopes) == 0 {
		t.Fatalf("cloud id %q, stored %+v", rec.CloudID, stored.View())
	}
	if stored.Auth.AccessToken.Reveal() != access {
		t.Fatal("secrets lost when re-sealing with the cloud id")
	}
	other := put("other", "https://other.atlassian.net")
	err := tokens.ResolveSite(context.Background(), other, tokens.Source(other))
	var se *credstore.SiteError
	if !errors.As(err, &se) || !strings.Contains(err.Error(), "acme.atlassian.net") {
		t.Fatalf("err = %v, want SiteError listing the reachable site", err)
	}
	rs := []credstore.Resource{{ID: "a", URL: "https://x.atlassian.net"}, {ID: "b", URL: "https://x.atlassian.net/"}}
	if _, err := credstore.MatchSite(rs, "x", "https://x.atlassian.net"); !errors.As(err, &se) {
		t.Fatalf("ambiguous: %v", err)
	}
}

func TestAuthCodeURLAndExchange(t *testing.T) {
	t.Parallel()
	b := setupOAuth(t, confluencetest.Options{})
	raw := b.cfg.AuthCodeURL("https://app.example.com/cb", "st4te", []string{"write:page:confluence", "offline_access"})
	u, err := url.Parse(raw)
	if err != nil || u.Path != "/authorize" {
		t.Fatalf("%q: %v", raw, err)
	}
	q := u.Query()
	for k, v := range map[string]string{"audience": "api.atlassian.com", "client_id": b.cfg.ClientID, "scope": "write:page:confluence offline_access",
		"redirect_uri": "https://app.example.com/cb", "state": "st4te", "response_type": "code", "prompt": "consent"} {
		if q.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, q.Get(k), v)
		}
	}
	code := b.fake.NewAuthorizationCode("https://app.example.com/cb")
	a, err := b.cfg.Exchange(context.Background(), code, "https://app.example.com/cb")
	if err != nil {
		t.Fatal(err)
	}
	if a.Kind != "oauth2" || a.AccessToken == "" || a.RefreshToken == "" || a.ExpiresAt.IsZero() || len(a.Scopes) == 0 {
		t.Fatalf("auth %+v", a)
	}
	if _, err := b.cfg.Exchange(context.Background(), code, "https://app.example.com/cb"); err == nil {
		t.Fatal("a used code was accepted")
	}
}
