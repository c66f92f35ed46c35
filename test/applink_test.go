package test

import (
	"encoding/json"
	"strings"
	"testing"
)

// Must-show 2 (issue 14): an Application Link record without token_secret
// is accepted by `worker integrations put` and publishes; every request
// carries an RSA-SHA1 signature that the fake verifies with the link's
// public key (RFC 5849 §3.4.3, which never uses the token secret). A
// record that does carry one keeps it sealed.
func TestAppLinkWithoutTokenSecretPublishes(t *testing.T) {
	e := newEnv(t)
	dc := e.dataCenter()
	key, keyPEM := appLinkKey()
	dc.AddConsumer("link-no-secret", &key.PublicKey)
	dc.AddOAuthToken("link-no-secret", "oauth-nosecret-"+e.token, "publisher")

	put := func(id string, auth map[string]string) {
		t.Helper()
		rec, _ := json.Marshal(map[string]any{"id": id, "flavor": "server", "base_url": dc.BaseURL(), "auth": auth})
		if out, code := e.runCmd("worker", string(rec), "integrations", "put", "--file", "-"); code != 0 {
			t.Fatalf("put %s: exit %d %s", id, code, out)
		}
	}
	auth := map[string]string{"kind": "applink", "consumer_key": "link-no-secret",
		"private_key_pem": keyPEM, "access_token": "oauth-nosecret-" + e.token}
	put("applink-no-secret", auth)
	withSecret := map[string]string{"token_secret": "tokensecret-" + e.token}
	for k, v := range auth {
		withSecret[k] = v
	}
	put("applink-with-secret", withSecret)

	e.startWorker(2)
	before := dc.OAuthVerified()
	e.publish(publishTo("applink-no-secret", "no-secret"))
	e.publish(publishTo("applink-with-secret", "with-secret"))
	signed := dc.OAuthVerified() - before
	if n := len(dc.Requests()); n == 0 || signed != n {
		t.Fatalf("%d requests reached the Data Center fake, %d RSA-SHA1 signatures verified", n, signed)
	}
	if len(dc.Pages("ENG")) == 0 || !strings.Contains(dc.Tree("ENG"), "Retro no-secret") {
		t.Fatalf("no page published:\n%s", dc.Tree("ENG"))
	}
	rec, err := e.store.Get(t.Context(), "applink-with-secret")
	if err != nil || rec.Auth.TokenSecret.Reveal() != "tokensecret-"+e.token {
		t.Fatalf("the token secret did not survive the seal: %v", err)
	}
	if rec, err := e.store.Get(t.Context(), "applink-no-secret"); err != nil || rec.Auth.TokenSecret != "" {
		t.Fatalf("no-secret record: %v", err)
	}
	e.assertNoSecrets(map[string]string{"applink token secret": "tokensecret-" + e.token, "applink key": keyPEM[40:120],
		"applink access token": "oauth-nosecret-" + e.token}, e.logs.String())
}
