package main

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"retropub/config"
	"retropub/confluence"
)

// A Server integration whose base_url equals ATLASSIAN_API_URL is still a
// customer's URL: it gets the address checks (issue 13 item 9). The Cloud
// client and the OAuth calls to the same loopback gateway pass.
func TestServerBaseURLEqualToAPIURLIsNotTrusted(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`[]`))
	}))
	defer srv.Close()
	env := map[string]string{
		"REDIS_URL":         "redis://127.0.0.1:1",
		"CREDSTORE_KEYS":    "k1:" + base64.StdEncoding.EncodeToString(make([]byte, 32)),
		"ATLASSIAN_API_URL": srv.URL, "ATLASSIAN_AUTH_URL": srv.URL,
		// no CONFLUENCE_ALLOW_CIDRS: loopback is refused to customers
	}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	hc := newHTTPClient(cfg)
	dc, err := confluence.NewServer(srv.URL, confluence.WithHTTPClient(hc), confluence.WithAuthorizer(confluence.BearerToken("t")))
	if err != nil {
		t.Fatal(err)
	}
	_, err = dc.SpaceByKey(context.Background(), "ENG")
	if !errors.Is(err, confluence.ErrEgressRefused) || hits.Load() != 0 {
		t.Fatalf("Server base_url = ATLASSIAN_API_URL: %v (%d requests reached it), want an egress refusal", err, hits.Load())
	}
	// The OAuth path to the same gateway is trusted.
	if _, err := oauthConfig(cfg, hc).AccessibleResources(context.Background(), "tok"); err != nil {
		t.Fatalf("accessible-resources on the configured gateway: %v", err)
	}
}
