package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"retropub/confluence/confluencetest"
	"retropub/credstore"
)

// Must-show 3 (issue 14): four worker binaries publish 200 reports
// through a service account (OAuth 2.0 client credentials) whose tokens
// live 2 seconds, on Cloud and on Data Center. Every report is published
// once; the fleet fetches one token at a time (fetches ≤ one per token
// lifetime over the run, plus one per worker at start); Confluence answers
// no request 401. A credential
// the token endpoint refuses with invalid_client marks the integration
// needs_reauth and nothing is retried. No client secret or token appears
// in Redis, logs or results.
func TestServiceAccountFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("publishes 200 reports through four worker binaries per flavour")
	}
	const (
		reports  = 200
		workers  = 4
		lifetime = 2 * time.Second
	)
	for i, flavor := range []string{credstore.FlavorCloud, credstore.FlavorServer} {
		t.Run(flavor, func(t *testing.T) {
			e := newParallelEnv(t, 5+i) // databases testDB+5, testDB+6
			site := e.fake
			rec := map[string]any{"flavor": flavor}
			if flavor == credstore.FlavorServer {
				site = e.dataCenter().Server
				rec["base_url"] = e.dc.BaseURL()
			} else {
				rec["cloud_id"] = e.fake.CloudID()
			}
			clientID, secret := "svc-"+flavor+"-id", "svc-secret-"+flavor+"-"+e.token
			site.AddServiceAccount(clientID, secret)
			site.SetServiceAccountTokenLifetime(lifetime)
			put := func(id, secret string) {
				t.Helper()
				rec["id"] = id
				rec["auth"] = map[string]any{"kind": "oauth2_client", "client_id": clientID, "client_secret": secret}
				b, _ := json.Marshal(rec)
				if out, code := e.runCmd("worker", string(b), "integrations", "put", "--file", "-"); code != 0 {
					t.Fatalf("put %s: exit %d %s", id, code, out)
				}
			}
			put("svc", secret)
			put("svc-revoked", "not-the-secret-"+e.token)

			procs := e.startWorkers(workers, "CONFLUENCE_RATE=0")
			start := time.Now()
			ids := e.enqueueMany("svc", "sa", reports)
			e.waitCompleted("default", ids, 4*time.Minute)
			elapsed := time.Since(start)

			for k := range reports {
				n := 0
				for _, p := range site.Pages("ENG") {
					if p.Title == fmt.Sprintf("Retro sa-%d", k) {
						n++
					}
				}
				if n != 1 {
					t.Fatalf("report sa-%d: %d pages\n%s", k, n, site.Tree("ENG"))
				}
			}
			unauthorized := 0
			for _, r := range site.Requests() {
				if r.Status == http.StatusUnauthorized {
					unauthorized++
				}
			}
			var fetches []confluencetest.TokenFetch
			for _, f := range site.TokenFetches() {
				if f.ClientID == clientID {
					fetches = append(fetches, f)
				}
			}
			if len(fetches) == 0 {
				t.Fatal("no token was fetched")
			}
			// One per token lifetime over the run, plus one per worker at start.
			bound := int(elapsed/lifetime) + 1 + workers
			span := fetches[len(fetches)-1].Time.Sub(fetches[0].Time)
			t.Logf("%s: %d reports in %s; %d token fetches (bound %d), %.2f renewals per token lifetime between the first and the last; %d answers 401",
				flavor, reports, elapsed.Round(time.Millisecond), len(fetches), bound,
				float64(len(fetches)-1)/max(span.Seconds()/lifetime.Seconds(), 1e-9), unauthorized)
			if unauthorized != 0 {
				t.Errorf("Confluence answered %d requests 401", unauthorized)
			}
			if len(fetches) > bound {
				t.Errorf("%d token fetches in %s, want at most %d", len(fetches), elapsed, bound)
			}
			for k := 1; k < len(fetches); k++ {
				if fetches[k].Status != http.StatusOK {
					t.Errorf("fetch %d answered %d %s", k, fetches[k].Status, fetches[k].Error)
				}
			}

			// A credential the endpoint refuses: archived at once, the
			// integration marked, and no further fetch or retry.
			e.archived(publishTo("svc-revoked", "refused-1"), "invalid_client", "re-authorised")
			for _, r := range []string{"refused-2", "refused-3"} {
				e.archived(publishTo("svc-revoked", r), "re-authorised")
			}
			refused := 0
			for _, f := range site.TokenFetches() {
				if f.Error != "" {
					refused++
				}
			}
			if refused != 1 {
				t.Errorf("%d refused token fetches, want exactly 1 (no retries)", refused)
			}
			got, err := e.store.Get(t.Context(), "svc-revoked")
			if err != nil || !got.Status.NeedsReauth {
				t.Fatalf("svc-revoked status %+v (%v), want needs_reauth", got.Status, err)
			}
			var logs []string
			for _, p := range procs {
				logs = append(logs, p.stderr.String(), p.stdout.String())
			}
			e.assertNoSecrets(map[string]string{"service account secret": secret, "wrong secret": "not-the-secret-" + e.token}, logs...)
		})
	}
}

// A Data Center service account behind a private CA: the token endpoint
// on the customer's base_url is reached with the integration's ca_pem
// (and its egress policy), like every other call to it; without the CA
// the token fetch fails on the certificate and the task says so.
func TestServiceAccountDataCenterPrivateCA(t *testing.T) {
	e := newEnv(t)
	dc := tlsDataCenter(t)
	dc.AddServiceAccount("tls-svc", "tls-svc-secret", "READ", "WRITE")
	auth := credstore.Auth{Kind: credstore.KindClientCredentials, ClientID: "tls-svc",
		ClientSecret: "tls-svc-secret", Scopes: []string{"READ", "WRITE"}}
	e.putServer("svc-tls", dc.BaseURL(), dc.CertificatePEM(), auth)
	e.putServer("svc-tls-noca", dc.BaseURL(), "", auth)
	e.startWorker(2)
	e.publish(publishTo("svc-tls", "via-ca"))
	onePageIn(t, dc.Server, "Retro via-ca")
	if f := dc.TokenFetches(); len(f) != 1 || f[0].Status != http.StatusOK {
		t.Fatalf("token fetches %+v", f)
	}
	e.archived(publishTo("svc-tls-noca", "no-ca"), "/rest/oauth2/latest/token", "certificate", "ca_pem")
	e.assertNoSecrets(map[string]string{"tls service account secret": "tls-svc-secret"})
}
