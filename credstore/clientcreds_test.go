package credstore_test

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"retropub/confluence/confluencetest"
	"retropub/credstore"
)

func (b *oauthBundle) putServiceAccount(t *testing.T, id, clientID, secret string) *credstore.Record {
	t.Helper()
	rec := &credstore.Record{ID: id, Flavor: "cloud", CloudID: b.fake.CloudID(),
		Auth: credstore.Auth{Kind: credstore.KindClientCredentials, ClientID: clientID, ClientSecret: credstore.Secret(secret)}}
	if err := b.store.Put(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	return b.get(t, id)
}

// Eight workers (separate Tokens, as separate processes) need a token at
// once: one fetch, everyone uses it, and it is cached sealed in the record.
func TestClientCredentialsFetchIsShared(t *testing.T) {
	t.Parallel()
	b := setupOAuth(t, confluencetest.Options{})
	b.fake.AddServiceAccount("sa-1", "sa-secret-0123456789")
	rec := b.putServiceAccount(t, "svc", "sa-1", "sa-secret-0123456789")
	const workers = 8
	got := make([]string, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := credstore.NewTokens(b.store, b.cfg).Source(rec).Token(context.Background())
			if err != nil {
				t.Error(err)
			}
			got[i] = tok.Reveal()
		}()
	}
	wg.Wait()
	if n := len(b.fake.TokenFetches()); n != 1 {
		t.Fatalf("%d token fetches, want 1", n)
	}
	for _, g := range got {
		if g != got[0] || g == "" {
			t.Fatalf("workers got different tokens: %v", got)
		}
	}
	stored := b.get(t, "svc")
	if stored.Auth.AccessToken.Reveal() != got[0] || stored.Auth.ExpiresAt.Before(time.Now().Add(50*time.Minute)) {
		t.Fatalf("token not cached: expires %v", stored.Auth.ExpiresAt)
	}
	for _, k := range b.mr.Keys() {
		v, _ := b.mr.Get(k)
		if strings.Contains(string(v), got[0]) || strings.Contains(string(v), "sa-secret-0123456789") {
			t.Fatal("a client secret or token is in Redis in plain text")
		}
	}
}

// A token close to its expiry is replaced before it expires; a 401 on a
// valid token fetches once more; invalid_client marks needs_reauth and is
// not tried again.
func TestClientCredentialsRenewAndRefusal(t *testing.T) {
	t.Parallel()
	b := setupOAuth(t, confluencetest.Options{})
	b.fake.AddServiceAccount("sa-2", "secret-2")
	b.fake.SetServiceAccountTokenLifetime(2 * time.Second)
	rec := b.putServiceAccount(t, "svc2", "sa-2", "secret-2")
	src := credstore.NewTokens(b.store, b.cfg).Source(rec)
	ctx := context.Background()
	t1, err := src.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1600 * time.Millisecond) // inside the last quarter of its life
	t2, err := src.Token(ctx)
	if err != nil || t2 == t1 {
		t.Fatalf("token not renewed ahead of expiry: %v", err)
	}
	if err := src.Refresh(ctx); err != nil { // a 401 on t2
		t.Fatal(err)
	}
	if n := len(b.fake.TokenFetches()); n != 3 {
		t.Fatalf("%d fetches, want 3", n)
	}

	b.fake.RemoveServiceAccount("sa-2")
	err = src.Refresh(ctx)
	var re *credstore.ReauthRequiredError
	if !errors.As(err, &re) || !strings.Contains(re.Reason, "invalid_client") {
		t.Fatalf("err = %v, want needs re-auth (invalid_client)", err)
	}
	if st := b.get(t, "svc2").Status; !st.NeedsReauth {
		t.Fatalf("status %+v", st)
	}
	before := len(b.fake.TokenFetches())
	// Another worker's request is refused too: it reads the mark, fetches nothing.
	if err := credstore.NewTokens(b.store, b.cfg).Source(b.get(t, "svc2")).Refresh(ctx); !errors.As(err, &re) {
		t.Fatalf("err = %v", err)
	}
	if n := len(b.fake.TokenFetches()) - before; n != 0 {
		t.Fatalf("a needs_reauth integration fetched %d more tokens", n)
	}
}

// What a token endpoint may answer instead of a token: each is a clear
// error naming the endpoint, never quoting the body.
func TestClientCredentialsBadAnswers(t *testing.T) {
	t.Parallel()
	b := setupOAuth(t, confluencetest.Options{})
	b.fake.AddServiceAccount("sa-3", "secret-3")
	cases := []struct {
		name   string
		fault  confluencetest.Fault
		want   string
		temp   bool
		status int
	}{
		{"html", confluencetest.Fault{Status: 200, Header: http.Header{"Content-Type": {"text/html"}}, Body: "<html><body>Log in secret-3</body></html>"},
			"answered text/html, not a JSON token", false, 200},
		{"empty", confluencetest.Fault{Status: 200, Header: http.Header{"Content-Type": {"application/json"}}},
			"empty answer", false, 200},
		{"no expiry", confluencetest.Fault{Status: 200, Body: `{"access_token":"x-token","token_type":"Bearer"}`},
			"the token has no expiry", false, 200},
		{"zero expiry", confluencetest.Fault{Status: 200, Body: `{"access_token":"x-token","token_type":"Bearer","expires_in":0}`},
			"the token has no expiry", false, 200},
		{"maintenance", confluencetest.Fault{Status: 503, Header: http.Header{"Content-Type": {"text/html"}}, Body: "<p>down</p>"},
			"answered 503", true, 503},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := "bad" + string(rune('a'+i))
			rec := b.putServiceAccount(t, id, "sa-3", "secret-3")
			b.fake.ClearFaults()
			f := c.fault
			f.Method, f.Path, f.Times = "POST", regexp.MustCompile(`^/oauth/token$`), 1
			b.fake.AddFault(f)
			_, err := credstore.NewTokens(b.store, b.cfg).Source(rec).Token(context.Background())
			var te *credstore.TokenEndpointError
			if !errors.As(err, &te) || !strings.Contains(err.Error(), c.want) || te.Temporary() != c.temp {
				t.Fatalf("err = %v, want a TokenEndpointError saying %q (temporary %v)", err, c.want, c.temp)
			}
			if !strings.Contains(err.Error(), "/oauth/token") || strings.Contains(err.Error(), "secret-3") || strings.Contains(err.Error(), "x-token") {
				t.Fatalf("error %q does not name the endpoint or quotes the answer", err)
			}
		})
	}
}
