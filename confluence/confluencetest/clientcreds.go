package confluencetest

import (
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Service accounts: OAuth 2.0 client credentials, as Atlassian documents
// them, not as retropub sends them.
//
//   - Cloud ("Create OAuth 2.0 credential for service accounts",
//     support.atlassian.com/user-management): POST /oauth/token on the auth
//     host with grant_type=client_credentials, client_id and client_secret;
//     an access token valid for 60 minutes, no refresh token; the token is
//     used through the API gateway like a 3LO token.
//   - Data Center ("Service accounts overview",
//     confluence.atlassian.com/enterprise/service-accounts-overview-1627095923.html):
//     POST {base}/rest/oauth2/latest/token with a form body
//     (application/x-www-form-urlencoded): grant_type=client_credentials,
//     client_id, client_secret, scope (space-separated); a token of about
//     an hour; "Refresh tokens are not supported".
//
// A wrong client id or secret is RFC 6749 §5.2's invalid_client (401).

// dcTokenPath is the Data Center OAuth 2.0 provider's token endpoint.
const dcTokenPath = "/rest/oauth2/latest/token"

// DefaultServiceAccountTokenLifetime is the documented lifetime of a
// client-credentials access token (60 minutes).
const DefaultServiceAccountTokenLifetime = time.Hour

// TokenFetch is one client-credentials token request as the fake saw it.
type TokenFetch struct {
	Time     time.Time
	ClientID string
	Status   int
	Error    string // OAuth error code, "" on success
}

type serviceAccount struct {
	secret string
	scopes []string
	user   string // the account's name, what Data Center reports as the user
}

// serviceAccounts is the fake's client-credentials state; guarded by Server.mu.
type serviceAccounts struct {
	accounts map[string]*serviceAccount // client id →
	tokens   map[string]string          // access token → client id
	lifetime time.Duration
	log      []TokenFetch
	issued   []string
}

// AddServiceAccount creates a service account whose OAuth 2.0 credential
// is clientID and secret, allowed scopes (Data Center: READ, WRITE, …;
// empty: any).
func (s *Server) AddServiceAccount(clientID, secret string, scopes ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sa.accounts == nil {
		s.sa.accounts, s.sa.tokens = map[string]*serviceAccount{}, map[string]string{}
	}
	s.sa.accounts[clientID] = &serviceAccount{secret: secret, scopes: scopes, user: "svc-" + clientID}
}

// RemoveServiceAccount deletes the credential (an admin revoking it): its
// tokens stop working and new requests get invalid_client.
func (s *Server) RemoveServiceAccount(clientID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sa.accounts, clientID)
	for tok, id := range s.sa.tokens {
		if id == clientID {
			delete(s.sa.tokens, tok)
			delete(s.oauth.access, tok)
		}
	}
}

// SetServiceAccountTokenLifetime changes the lifetime of client-credentials
// tokens issued from now on (whole seconds are announced).
func (s *Server) SetServiceAccountTokenLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sa.lifetime = d
}

// TokenFetches returns every client-credentials token request so far.
func (s *Server) TokenFetches() []TokenFetch {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]TokenFetch(nil), s.sa.log...)
}

// ServiceAccountSecrets returns the client secret of every service
// account, for secret scans.
func (s *Server) ServiceAccountSecrets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, a := range s.sa.accounts {
		out = append(out, a.secret)
	}
	return out
}

// ServiceAccountTokens returns every client-credentials access token
// issued, for secret scans.
func (s *Server) ServiceAccountTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.sa.issued...)
}

// cloudClientCredentials is grant_type=client_credentials on the auth
// host. Atlassian's example sends JSON; the endpoint reads forms too.
func (s *Server) cloudClientCredentials(w http.ResponseWriter, tr tokenRequest) {
	if tr.Audience != "" && tr.Audience != "api.atlassian.com" {
		s.saRefuse(w, tr.ClientID, http.StatusForbidden, "access_denied", "Unknown audience.")
		return
	}
	s.issueClientToken(w, tr.ClientID, tr.ClientSecret, tr.Scope)
}

// dcClientCredentials is Data Center's token endpoint: a form, nothing else.
func (s *Server) dcClientCredentials(w http.ResponseWriter, c *call) {
	if mt, _, _ := mime.ParseMediaType(c.r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		s.saRefuse(w, "", http.StatusBadRequest, "invalid_request", "The request must be application/x-www-form-urlencoded.")
		return
	}
	tr, ok := parseTokenRequest(c)
	if !ok {
		s.saRefuse(w, "", http.StatusBadRequest, "invalid_request", "The request body could not be parsed.")
		return
	}
	if tr.GrantType != "client_credentials" {
		s.saRefuse(w, tr.ClientID, http.StatusBadRequest, "unsupported_grant_type", "Only client_credentials is served here by the fake.")
		return
	}
	s.issueClientToken(w, tr.ClientID, tr.ClientSecret, tr.Scope)
}

func (s *Server) saRefuse(w http.ResponseWriter, clientID string, status int, code, desc string) {
	s.mu.Lock()
	s.sa.log = append(s.sa.log, TokenFetch{Time: s.clock(), ClientID: clientID, Status: status, Error: code})
	s.mu.Unlock()
	writeOAuthError(w, status, code, desc)
}

// issueClientToken checks the credential and the scopes and mints a token.
func (s *Server) issueClientToken(w http.ResponseWriter, clientID, secret, scope string) {
	s.mu.Lock()
	acct := s.sa.accounts[clientID]
	ok := acct != nil && acct.secret == secret
	s.mu.Unlock()
	if !ok {
		s.saRefuse(w, clientID, http.StatusUnauthorized, "invalid_client", "Client authentication failed.")
		return
	}
	granted := acct.scopes
	if scope != "" {
		want := strings.Fields(scope)
		for _, sc := range want {
			if len(acct.scopes) > 0 && !slices.Contains(acct.scopes, sc) {
				s.saRefuse(w, clientID, http.StatusBadRequest, "invalid_scope", fmt.Sprintf("Scope %q is not allowed for this client.", sc))
				return
			}
		}
		granted = want
	}
	s.mu.Lock()
	lifetime := s.sa.lifetime
	if lifetime <= 0 {
		lifetime = DefaultServiceAccountTokenLifetime
	}
	tok := "sa-" + randomToken()
	s.oauth.access[tok] = &accessToken{expires: s.clock().Add(lifetime)}
	s.sa.tokens[tok] = clientID
	s.sa.issued = append(s.sa.issued, tok)
	s.oauth.issued = append(s.oauth.issued, tok)
	s.sa.log = append(s.sa.log, TokenFetch{Time: s.clock(), ClientID: clientID, Status: http.StatusOK})
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok, "token_type": "Bearer",
		"expires_in": int(lifetime.Round(time.Second) / time.Second), "scope": strings.Join(granted, " "),
	})
}

// serviceAccountUser is the Data Center user of a client-credentials
// bearer token that is still valid.
func (d *DataCenter) serviceAccountUser(tok string) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	id, ok := d.sa.tokens[tok]
	if !ok || !d.validAccessToken(tok) {
		return "", false
	}
	return d.sa.accounts[id].user, true
}
