package fakeconfluence

import (
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// The auth host's token endpoint and the API host's accessible-resources
// (confluence-api.md §3.1, §3.2).

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
	}
	return tr, true
}

// token dispatches on grant_type. Only refresh is modelled, and the fake
// knows no refresh tokens yet, so every refresh fails the way a revoked or
// rotated-away token does. Rotation plugs in at refresh.
func (s *Server) token(w http.ResponseWriter, c *call) {
	tr, ok := parseTokenRequest(c)
	if !ok {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "The request body could not be parsed.")
		return
	}
	switch tr.GrantType {
	case "refresh_token":
		s.refresh(w, tr)
	default:
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "Grant type "+strconv.Quote(tr.GrantType)+" is not supported by the fake.")
	}
}

func (s *Server) refresh(w http.ResponseWriter, _ tokenRequest) {
	writeOAuthError(w, http.StatusForbidden, "invalid_grant", "Unknown or invalid refresh token.")
}
