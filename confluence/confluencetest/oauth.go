package confluencetest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The auth host's token endpoint and the API host's accessible-resources
// (confluence-api.md §3.1, §3.2), modelled on Atlassian's rotating refresh
// tokens: every refresh returns a new refresh token and a new access token;
// the refresh token used keeps working for a grace window (10 minutes on
// Atlassian), and so does its access token; reusing it after the grace
// answers 403 invalid_grant and revokes the whole token family.

// Default OAuth app credentials the fake accepts unless Options say others.
const (
	DefaultClientID     = "fake-client-id"
	DefaultClientSecret = "fake-client-secret-0123456789"
	// DefaultTokenLifetime is Atlassian's access token lifetime.
	DefaultTokenLifetime = time.Hour
	// DefaultRefreshGrace is Atlassian's reuse leeway for a rotated refresh token.
	DefaultRefreshGrace = 10 * time.Minute
)

// accessToken is one bearer token the gateway accepts.
type accessToken struct {
	expires time.Time     // zero: never (tokens added with AddAccessToken)
	rt      *refreshToken // its companion refresh token, nil for static tokens
}

// refreshToken is one refresh token of a family (one consent).
type refreshToken struct {
	value   string
	family  *tokenFamily
	usedAt  time.Time // first successful use; zero while current
	revoked bool
}

type tokenFamily struct{ revoked bool }

// RefreshEntry is one POST /oauth/token with grant_type=refresh_token, as
// the fake saw it.
type RefreshEntry struct {
	Time         time.Time
	RefreshToken string // the one presented
	Status       int
	Error        string // OAuth error code, "" on success
	InGrace      bool   // a rotated token reused inside the grace window
	NewRefresh   string // issued on success
}

// oauthState is the fake's token endpoint state; guarded by Server.mu.
type oauthState struct {
	clientID, clientSecret string
	lifetime, grace        time.Duration
	access                 map[string]*accessToken
	refresh                map[string]*refreshToken
	codes                  map[string]string // authorization code → redirect_uri
	log                    []RefreshEntry
	issued                 []string // every token and code handed out, for secret scans
}

func newOAuthState(o Options) oauthState {
	st := oauthState{
		clientID: o.ClientID, clientSecret: o.ClientSecret, lifetime: o.TokenLifetime, grace: o.RefreshGrace,
		access: map[string]*accessToken{}, refresh: map[string]*refreshToken{}, codes: map[string]string{},
	}
	if st.clientID == "" {
		st.clientID, st.clientSecret = DefaultClientID, DefaultClientSecret
	}
	if st.lifetime <= 0 {
		st.lifetime = DefaultTokenLifetime
	}
	if st.grace <= 0 {
		st.grace = DefaultRefreshGrace
	}
	return st
}

// ClientCredentials returns the OAuth app credentials the fake accepts.
func (s *Server) ClientCredentials() (id, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.oauth.clientID, s.oauth.clientSecret
}

// SetTokenLifetime changes the lifetime of access tokens issued from now on.
func (s *Server) SetTokenLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.oauth.lifetime = d
}

// SetRefreshGrace changes how long a rotated refresh token keeps working.
func (s *Server) SetRefreshGrace(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.oauth.grace = d
}

// AddAccessToken makes token a valid bearer token for the gateway, forever.
func (s *Server) AddAccessToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.oauth.access[token] = &accessToken{}
}

// IssueTokens starts a new token family, as a user's consent does, and
// returns its access and refresh tokens.
func (s *Server) IssueTokens() (access, refresh string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issuePair(&tokenFamily{})
}

// NewAuthorizationCode returns a one-time code, as /authorize hands to
// redirectURI after consent, for grant_type=authorization_code.
func (s *Server) NewAuthorizationCode(redirectURI string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	code := "code-" + randomToken()
	s.oauth.codes[code] = redirectURI
	s.oauth.issued = append(s.oauth.issued, code)
	return code
}

// RevokeRefreshToken revokes one refresh token, as a user revoking the app
// or an admin action would; its family stays otherwise usable.
func (s *Server) RevokeRefreshToken(rt string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.oauth.refresh[rt]; t != nil {
		t.revoked = true
	}
}

// RevokeAll revokes every refresh token and access token issued so far.
func (s *Server) RevokeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.oauth.refresh {
		t.family.revoked = true
	}
	for k, t := range s.oauth.access {
		if t.rt == nil {
			delete(s.oauth.access, k)
		}
	}
}

// RefreshLog returns every refresh request so far, in order.
func (s *Server) RefreshLog() []RefreshEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]RefreshEntry(nil), s.oauth.log...)
}

// CheckRefreshTokensUsedOnce returns an error unless every refresh
// succeeded and used a refresh token nobody had used before: what a fleet
// that shares its refreshes correctly produces.
func (s *Server) CheckRefreshTokensUsedOnce() error {
	var problems []string
	seen := map[string]int{}
	for i, e := range s.RefreshLog() {
		if e.Error != "" {
			problems = append(problems, fmt.Sprintf("refresh %d answered %d %s", i, e.Status, e.Error))
		}
		if n := seen[e.RefreshToken]; n > 0 {
			problems = append(problems, fmt.Sprintf("refresh %d reused the refresh token of refresh %d", i, n-1))
		} else {
			seen[e.RefreshToken] = i + 1
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("refresh tokens not used exactly once: %s", strings.Join(problems, "; "))
	}
	return nil
}

// IssuedSecrets returns every access token, refresh token and authorization
// code the fake has handed out, for tests that scan for leaks.
func (s *Server) IssuedSecrets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]string(nil), s.oauth.issued...)
	for k := range s.oauth.access {
		out = append(out, k)
	}
	return out
}

// validAccessToken reports whether the gateway accepts tok now. Callers
// hold s.mu.
func (s *Server) validAccessToken(tok string) bool {
	t := s.oauth.access[tok]
	if t == nil {
		return false
	}
	now := s.clock()
	if !t.expires.IsZero() && !now.Before(t.expires) {
		return false
	}
	if rt := t.rt; rt != nil {
		// The companion access token of a rotated refresh token dies with it.
		if rt.family.revoked || rt.revoked || (!rt.usedAt.IsZero() && now.Sub(rt.usedAt) > s.oauth.grace) {
			return false
		}
	}
	return true
}

// issuePair mints a new access and refresh token in family. Callers hold s.mu.
func (s *Server) issuePair(f *tokenFamily) (access, refresh string) {
	access, refresh = "at-"+randomToken(), "rt-"+randomToken()
	rt := &refreshToken{value: refresh, family: f}
	s.oauth.refresh[refresh] = rt
	s.oauth.access[access] = &accessToken{expires: s.clock().Add(s.oauth.lifetime), rt: rt}
	s.oauth.issued = append(s.oauth.issued, access, refresh)
	return access, refresh
}

func randomToken() string {
	b := make([]byte, 24)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Server) accessibleResources(w http.ResponseWriter, _ *call) {
	writeJSON(w, http.StatusOK, []map[string]any{{
		"id": s.cloudID, "name": siteName(s.siteURL), "url": s.siteURL, "scopes": s.scopes,
		"avatarUrl": "https://site-admin-avatar-cdn.prod.public.atl-paas.net/avatars/240/flag.png",
	}})
}

func siteName(siteURL string) string {
	u, err := url.Parse(siteURL)
	if err != nil || u.Host == "" {
		return "Fake site"
	}
	name, _, _ := strings.Cut(u.Host, ".")
	return name
}

// tokenRequest holds the fields of a token request; Atlassian takes them as
// JSON or as a form.
type tokenRequest struct {
	GrantType    string `json:"grant_type"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	RefreshToken string `json:"refresh_token"`
	Code         string `json:"code"`
	RedirectURI  string `json:"redirect_uri"`
	Audience     string `json:"audience"`
	Scope        string `json:"scope"`
}

func parseTokenRequest(c *call) (tokenRequest, bool) {
	var tr tokenRequest
	mt, _, _ := mime.ParseMediaType(c.r.Header.Get("Content-Type"))
	if mt == "application/json" {
		return tr, json.Unmarshal(c.body, &tr) == nil
	}
	form, err := url.ParseQuery(string(c.body))
	if err != nil {
		return tr, false
	}
	tr = tokenRequest{
		GrantType: form.Get("grant_type"), ClientID: form.Get("client_id"), ClientSecret: form.Get("client_secret"),
		RefreshToken: form.Get("refresh_token"), Code: form.Get("code"), RedirectURI: form.Get("redirect_uri"),
		Audience: form.Get("audience"), Scope: form.Get("scope"),
	}
	return tr, true
}

// token dispatches on grant_type after checking the app's credentials,
// which Atlassian wants in the body (a wrong secret is access_denied).
func (s *Server) token(w http.ResponseWriter, c *call) {
	tr, ok := parseTokenRequest(c)
	if !ok {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "The request body could not be parsed.")
		return
	}
	if tr.GrantType == "client_credentials" {
		s.cloudClientCredentials(w, tr) // a service account, not the OAuth app
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if tr.ClientID != s.oauth.clientID || tr.ClientSecret != s.oauth.clientSecret {
		if tr.GrantType == "refresh_token" {
			s.oauth.log = append(s.oauth.log, RefreshEntry{Time: s.clock(), RefreshToken: tr.RefreshToken, Status: http.StatusUnauthorized, Error: "access_denied"})
		}
		writeOAuthError(w, http.StatusUnauthorized, "access_denied", "Unauthorized")
		return
	}
	switch tr.GrantType {
	case "refresh_token":
		s.refresh(w, tr)
	case "authorization_code":
		s.exchange(w, tr)
	default:
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "Grant type "+strconv.Quote(tr.GrantType)+" is not supported by the fake.")
	}
}

// refresh rotates a refresh token. Callers hold s.mu.
func (s *Server) refresh(w http.ResponseWriter, tr tokenRequest) {
	now := s.clock()
	entry := RefreshEntry{Time: now, RefreshToken: tr.RefreshToken}
	rt := s.oauth.refresh[tr.RefreshToken]
	switch {
	case rt == nil || rt.revoked || rt.family.revoked:
		entry.Status, entry.Error = http.StatusForbidden, "invalid_grant"
	case !rt.usedAt.IsZero() && now.Sub(rt.usedAt) > s.oauth.grace:
		// Reuse outside the leeway: Atlassian treats it as theft.
		rt.family.revoked = true
		entry.Status, entry.Error = http.StatusForbidden, "invalid_grant"
	default:
		entry.InGrace = !rt.usedAt.IsZero()
		if rt.usedAt.IsZero() {
			rt.usedAt = now
		}
		entry.Status = http.StatusOK
	}
	if entry.Error != "" {
		s.oauth.log = append(s.oauth.log, entry)
		writeOAuthError(w, entry.Status, entry.Error, "Unknown or invalid refresh token.")
		return
	}
	access, refresh := s.issuePair(rt.family)
	entry.NewRefresh = refresh
	s.oauth.log = append(s.oauth.log, entry)
	s.writeTokens(w, access, refresh)
}

// exchange trades an authorization code for a new token family. Callers
// hold s.mu.
func (s *Server) exchange(w http.ResponseWriter, tr tokenRequest) {
	redirect, ok := s.oauth.codes[tr.Code]
	if !ok || redirect != tr.RedirectURI {
		writeOAuthError(w, http.StatusForbidden, "invalid_grant", "Invalid authorization code")
		return
	}
	delete(s.oauth.codes, tr.Code)
	access, refresh := s.issuePair(&tokenFamily{})
	s.writeTokens(w, access, refresh)
}

func (s *Server) writeTokens(w http.ResponseWriter, access, refresh string) {
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": access, "refresh_token": refresh, "token_type": "Bearer",
		"expires_in": int(s.oauth.lifetime.Seconds()), "scope": strings.Join(s.scopes, " "),
	})
}
