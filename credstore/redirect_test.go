package credstore_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"retropub/confluence"
	"retropub/credstore"
)

// The token endpoint answering with a redirect must not get the code,
// the client secret or a refresh token re-sent elsewhere (issue 13): with
// the worker's egress client, and with the default client.
func TestTokenEndpointRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	_, lo, _ := net.ParseCIDR("127.0.0.0/8")
	for name, hc := range map[string]*http.Client{
		"egress client":  confluence.NewHTTPClient(5*time.Second, 2, confluence.AllowCIDRs(lo)),
		"default client": nil,
	} {
		t.Run(name, func(t *testing.T) {
			var stolen atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/oauth/token" {
					http.Redirect(w, r, "/collect", http.StatusTemporaryRedirect)
					return
				}
				b, _ := io.ReadAll(r.Body)
				if strings.Contains(string(b), "CLIENT-SECRET") {
					stolen.Add(1)
				}
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"access_token":"a","refresh_token":"r","expires_in":3600}`)
			}))
			defer srv.Close()
			cfg := credstore.OAuthConfig{ClientID: "id", ClientSecret: "CLIENT-SECRET", AuthURL: srv.URL, APIURL: srv.URL, HTTPClient: hc}
			_, err := cfg.Exchange(context.Background(), "code", "https://app.example.com/cb")
			if stolen.Load() != 0 {
				t.Fatal("the token request was re-sent to the redirect target with the client secret")
			}
			if err == nil {
				t.Fatal("a redirected token exchange succeeded")
			}
			if strings.Contains(err.Error(), "CLIENT-SECRET") {
				t.Fatalf("secret in %q", err)
			}
		})
	}
}
