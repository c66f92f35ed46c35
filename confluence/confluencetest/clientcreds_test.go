package confluencetest

import (
	"net/url"
	"testing"
	"time"
)

// Cloud: grant_type=client_credentials on /oauth/token (JSON, as in
// Atlassian's example) gives a gateway token; a wrong secret is
// invalid_client; the token expires after its lifetime.
func TestCloudClientCredentials(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.srv.AddServiceAccount("sa-id", "sa-secret")
	b.srv.SetServiceAccountTokenLifetime(time.Second)
	r := b.do(t, "POST", b.url+"/oauth/token", map[string]any{"grant_type": "client_credentials",
		"client_id": "sa-id", "client_secret": "sa-secret", "audience": "api.atlassian.com"}, "Authorization", "")
	wantStatus(t, r, 200)
	ans := r.json(t)
	tok, _ := ans["access_token"].(string)
	if tok == "" || ans["expires_in"] != float64(1) || ans["refresh_token"] != nil || ans["token_type"] != "Bearer" {
		t.Fatalf("answer %s", r.body)
	}
	r = b.do(t, "GET", "/wiki/api/v2/spaces", nil, "Authorization", "Bearer "+tok)
	wantStatus(t, r, 200)
	time.Sleep(1100 * time.Millisecond)
	r = b.do(t, "GET", "/wiki/api/v2/spaces", nil, "Authorization", "Bearer "+tok)
	wantStatus(t, r, 401)

	r = b.do(t, "POST", b.url+"/oauth/token", map[string]any{"grant_type": "client_credentials",
		"client_id": "sa-id", "client_secret": "wrong"}, "Authorization", "")
	wantStatus(t, r, 401)
	wantBody(t, r, `{"error":"invalid_client","error_description":"Client authentication failed."}`)
	if f := b.srv.TokenFetches(); len(f) != 2 || f[0].Status != 200 || f[1].Error != "invalid_client" {
		t.Errorf("fetches %+v", f)
	}
	if d := b.srv.Disallowed(); len(d) != 0 {
		t.Errorf("Disallowed = %+v", d)
	}
}

// Data Center: a form to {base}/rest/oauth2/latest/token, no
// Authorization header; the token is a bearer token of the account; JSON
// and unknown scopes are refused.
func TestDCClientCredentials(t *testing.T) {
	t.Parallel()
	d, b := setupDC(t)
	d.AddServiceAccount("dc-sa", "dc-secret", "READ", "WRITE")
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"dc-sa"}, "client_secret": {"dc-secret"}, "scope": {"READ WRITE"}}
	r := b.do(t, "POST", dcTokenPath, []byte(form.Encode()), "Content-Type", "application/x-www-form-urlencoded", "Authorization", "")
	wantStatus(t, r, 200)
	tok, _ := r.json(t)["access_token"].(string)
	r = b.do(t, "GET", "/rest/api/user/current", nil, "Authorization", "Bearer "+tok)
	wantStatus(t, r, 200)
	if u := r.json(t)["username"]; u != "svc-dc-sa" {
		t.Errorf("user %v", u)
	}

	form.Set("scope", "ADMIN")
	r = b.do(t, "POST", dcTokenPath, []byte(form.Encode()), "Content-Type", "application/x-www-form-urlencoded", "Authorization", "")
	wantStatus(t, r, 400)
	if r.json(t)["error"] != "invalid_scope" {
		t.Errorf("body %s", r.body)
	}
	r = b.do(t, "POST", dcTokenPath, map[string]any{"grant_type": "client_credentials", "client_id": "dc-sa", "client_secret": "dc-secret"}, "Authorization", "")
	wantStatus(t, r, 400)
	d.RemoveServiceAccount("dc-sa")
	r = b.do(t, "GET", "/rest/api/user/current", nil, "Authorization", "Bearer "+tok)
	wantStatus(t, r, 401)
	if dis := d.Disallowed(); len(dis) != 0 {
		t.Errorf("Disallowed = %+v", dis)
	}
}
