package confluencetest

import (
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock lets the tests move the fake's time.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func setupOAuth(t *testing.T) (*testBundle, *fakeClock) {
	b := setup(t)
	c := &fakeClock{now: time.Date(2026, 11, 27, 15, 0, 0, 0, time.UTC)}
	b.srv.mu.Lock()
	b.srv.clock = c.Now
	b.srv.mu.Unlock()
	b.srv.SetTokenLifetime(2 * time.Second)
	return b, c
}

// refreshWith posts a refresh grant and returns the status and the body.
func (b *testBundle) refreshWith(t *testing.T, rt, secret string) (int, map[string]any) {
	t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {DefaultClientID}, "client_secret": {secret}}
	r := b.do(t, "POST", b.url+"/oauth/token", []byte(form.Encode()), "Content-Type", "application/x-www-form-urlencoded", "Authorization", "")
	return r.status, r.json(t)
}

func (b *testBundle) apiStatus(t *testing.T, access string) int {
	t.Helper()
	return b.do(t, "GET", b.base+"/wiki/api/v2/spaces", nil, "Authorization", "Bearer "+access).status
}

func TestRefreshRotatesWithGrace(t *testing.T) {
	t.Parallel()
	b, clock := setupOAuth(t)
	at0, rt0 := b.srv.IssueTokens()
	if s := b.apiStatus(t, at0); s != 200 {
		t.Fatalf("fresh access token: %d", s)
	}
	clock.Advance(2 * time.Second)
	if s := b.apiStatus(t, at0); s != 401 {
		t.Fatalf("expired access token: %d, want 401", s)
	}
	status, body := b.refreshWith(t, rt0, DefaultClientSecret)
	if status != 200 || body["refresh_token"] == rt0 || body["expires_in"] != float64(2) || body["token_type"] != "Bearer" {
		t.Fatalf("refresh: %d %v", status, body)
	}
	at1, rt1 := body["access_token"].(string), body["refresh_token"].(string)
	if !strings.Contains(body["scope"].(string), "write:page:confluence") {
		t.Errorf("scope %v", body["scope"])
	}
	// Inside the grace window the old refresh token still works.
	clock.Advance(time.Minute)
	if status, _ := b.refreshWith(t, rt0, DefaultClientSecret); status != 200 {
		t.Fatalf("reuse inside grace: %d", status)
	}
	if err := b.srv.CheckRefreshTokensUsedOnce(); err == nil {
		t.Fatal("CheckRefreshTokensUsedOnce missed a reuse")
	}
	// After it, reuse is theft: invalid_grant, and the family is revoked.
	clock.Advance(10 * time.Minute)
	if status, body := b.refreshWith(t, rt0, DefaultClientSecret); status != 403 || body["error"] != "invalid_grant" {
		t.Fatalf("reuse after grace: %d %v", status, body)
	}
	if status, _ := b.refreshWith(t, rt1, DefaultClientSecret); status != 403 {
		t.Fatalf("family member after theft: %d, want 403", status)
	}
	_ = at1
	log := b.srv.RefreshLog()
	if len(log) != 4 || !log[1].InGrace || log[0].RefreshToken != rt0 || log[0].NewRefresh != rt1 || log[2].Error != "invalid_grant" {
		t.Fatalf("log %+v", log)
	}
}

func TestRefreshChecksClientAndRevocation(t *testing.T) {
	t.Parallel()
	b, _ := setupOAuth(t)
	_, rt := b.srv.IssueTokens()
	if status, body := b.refreshWith(t, rt, "wrong"); status != 401 || body["error"] != "access_denied" {
		t.Fatalf("wrong secret: %d %v", status, body)
	}
	b.srv.RevokeRefreshToken(rt)
	if status, body := b.refreshWith(t, rt, DefaultClientSecret); status != 403 || body["error"] != "invalid_grant" {
		t.Fatalf("revoked: %d %v", status, body)
	}
	at2, rt2 := b.srv.IssueTokens()
	b.srv.RevokeAll()
	if status, _ := b.refreshWith(t, rt2, DefaultClientSecret); status != 403 {
		t.Fatalf("after RevokeAll: %d", status)
	}
	if s := b.apiStatus(t, at2); s != 401 {
		t.Fatalf("access token after RevokeAll: %d", s)
	}
}

func TestRefreshTokensUsedOnceWhenEachIsUsedOnce(t *testing.T) {
	t.Parallel()
	b, _ := setupOAuth(t)
	_, rt := b.srv.IssueTokens()
	for range 3 {
		status, body := b.refreshWith(t, rt, DefaultClientSecret)
		if status != 200 {
			t.Fatal(status)
		}
		rt = body["refresh_token"].(string)
	}
	if err := b.srv.CheckRefreshTokensUsedOnce(); err != nil {
		t.Fatal(err)
	}
}

func TestAuthorizationCode(t *testing.T) {
	t.Parallel()
	b, _ := setupOAuth(t)
	code := b.srv.NewAuthorizationCode("https://app.example.com/cb")
	post := func(redirect string) (int, map[string]any) {
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect},
			"client_id": {DefaultClientID}, "client_secret": {DefaultClientSecret}}
		r := b.do(t, "POST", b.url+"/oauth/token", []byte(form.Encode()), "Content-Type", "application/x-www-form-urlencoded", "Authorization", "")
		return r.status, r.json(t)
	}
	if status, _ := post("https://evil.example.com/cb"); status != 403 {
		t.Fatalf("wrong redirect_uri: %d", status)
	}
	status, body := post("https://app.example.com/cb")
	if status != 200 || body["access_token"] == nil || body["refresh_token"] == nil {
		t.Fatalf("exchange: %d %v", status, body)
	}
	if s := b.apiStatus(t, body["access_token"].(string)); s != 200 {
		t.Fatalf("exchanged token: %d", s)
	}
	if status, _ := post("https://app.example.com/cb"); status != 403 {
		t.Fatalf("code reused: %d", status)
	}
}
