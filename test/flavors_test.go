package test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net"
	"sync"
	"testing"

	"retropub/confluence"
	"retropub/confluence/confluencetest"
	"retropub/credstore"
	"retropub/jobs"
)

// backend is one kind of Confluence, with one way of signing in, that the
// publish scenarios run against: the table shared by Cloud and Server.
type backend struct {
	name   string
	flavor string // credstore.FlavorCloud or FlavorServer
	auth   string // credstore.Kind…
}

var backends = []backend{
	{"cloud", credstore.FlavorCloud, credstore.KindOAuth2},
	{"server-pat", credstore.FlavorServer, credstore.KindPAT},
	{"server-basic", credstore.FlavorServer, credstore.KindBasic},
	{"server-applink", credstore.FlavorServer, credstore.KindAppLink},
}

// contextPath is where the Data Center fake lives, as many real ones do.
const contextPath = "/confluence"

// eachBackend runs a scenario once per backend, each in a fresh world.
func eachBackend(t *testing.T, scenario func(t *testing.T, e *env)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { scenario(t, newEnvFor(t, b)) })
	}
}

// newEnvFor is newEnv whose default integration (e.integration, e.fake)
// is on backend b.
func newEnvFor(t *testing.T, b backend) *env {
	t.Helper()
	e := newEnv(t)
	e.integration, e.fake = e.attach(b)
	return e
}

// attach gives e an integration on backend b and returns its id and the
// fake behind it. Server backends share one Data Center fake per env, at
// contextPath, with space ENG.
func (e *env) attach(b backend) (string, *confluencetest.Server) {
	e.t.Helper()
	if b.flavor == credstore.FlavorCloud {
		return "acme-cloud", e.fake // newEnv put it
	}
	dc := e.dataCenter()
	id := "acme-" + b.name
	rec := &credstore.Record{ID: id, Flavor: credstore.FlavorServer, BaseURL: dc.BaseURL() + "/", Auth: credstore.Auth{Kind: b.auth}}
	switch b.auth {
	case credstore.KindPAT:
		dc.AddPAT("publisher", "pat-"+e.token)
		rec.Auth.Token = credstore.Secret("pat-" + e.token)
	case credstore.KindBasic:
		dc.AddUser("publisher", "pw-"+e.token)
		rec.Auth.Username, rec.Auth.Password = "publisher", credstore.Secret("pw-"+e.token)
	case credstore.KindAppLink:
		key, keyPEM := appLinkKey()
		dc.AddConsumer("retropub-link", &key.PublicKey)
		dc.AddOAuthToken("retropub-link", "oauth-"+e.token, "publisher")
		rec.Auth.ConsumerKey, rec.Auth.PrivateKeyPEM = "retropub-link", credstore.Secret(keyPEM)
		rec.Auth.AccessToken, rec.Auth.TokenSecret = credstore.Secret("oauth-"+e.token), "unused-with-rsa"
	}
	if err := e.store.Put(context.Background(), rec); err != nil {
		e.t.Fatalf("put %s: %v", id, err)
	}
	return id, dc.Server
}

// dataCenter starts the env's Data Center fake on first use.
func (e *env) dataCenter() *confluencetest.DataCenter {
	if e.dc != nil {
		return e.dc
	}
	e.dc = confluencetest.NewDataCenter(confluencetest.DataCenterOptions{ContextPath: contextPath})
	e.dc.Start()
	e.t.Cleanup(e.dc.Close)
	e.dc.AddSpace("ENG", "Engineering")
	dc := e.dc
	e.t.Cleanup(func() {
		if d := dc.Disallowed(); len(d) > 0 {
			e.t.Errorf("the Data Center fake saw calls outside DESIGN §4: %+v", d)
		}
	})
	return e.dc
}

// retro is retro() for the env's default integration.
func (e *env) retro(id string, rev int64, n int) *jobs.PublishPayload {
	p := retro(id, rev, n)
	p.IntegrationID = e.integration
	return p
}

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
	rsaPEM  string
)

// appLinkKey is one RSA key for the whole test binary: generating one
// under -race takes a noticeable moment.
func appLinkKey() (*rsa.PrivateKey, string) {
	rsaOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		rsaKey = k
		rsaPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: must(x509.MarshalPKCS8PrivateKey(k))}))
	})
	return rsaKey, rsaPEM
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// allowLoopback is the egress allowance the fakes need: they listen on
// loopback, over http (CONFLUENCE_ALLOW_CIDRS=127.0.0.1/32,::1/128).
func allowLoopback() confluence.HTTPOption {
	return confluence.AllowCIDRs(mustCIDR("127.0.0.1/32"), mustCIDR("::1/128"))
}

func mustCIDR(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}
