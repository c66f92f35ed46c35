package test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hibiken/asynq"

	"retropub/confluence"
	"retropub/confluence/confluencetest"
	"retropub/credstore"
	"retropub/jobs"
)

// Server/Data Center specifics: egress, TLS, proxy, Application Link
// signatures and the CAPTCHA lock. The publish scenarios themselves run
// over every backend in publish_test.go.

func (e *env) putServer(id, baseURL, caPEM string, auth credstore.Auth) {
	e.t.Helper()
	rec := &credstore.Record{ID: id, Flavor: credstore.FlavorServer, BaseURL: baseURL, CAPEM: caPEM, Auth: auth}
	if err := e.store.Put(context.Background(), rec); err != nil {
		e.t.Fatalf("put %s: %v", id, err)
	}
}

func patAuth(token string) credstore.Auth {
	return credstore.Auth{Kind: credstore.KindPAT, Token: credstore.Secret(token)}
}

// publishTo is a report for another integration than the env's default.
func publishTo(integration, report string) *jobs.PublishPayload {
	p := retro(report, 1, 1)
	p.IntegrationID = integration
	return p
}

// archived enqueues p and wants it archived at once, with an error that
// says every one of want.
func (e *env) archived(p *jobs.PublishPayload, want ...string) *asynq.TaskInfo {
	e.t.Helper()
	info := e.wait("default", e.enqueue(p).TaskID)
	if info.State != asynq.TaskStateArchived || info.Retried != 0 {
		e.t.Fatalf("%s: state %s after %d retries (%s), want archived at once", p.IntegrationID, info.State, info.Retried, info.LastErr)
	}
	e.t.Logf("%s: %s", p.IntegrationID, info.LastErr)
	for _, w := range want {
		if !strings.Contains(info.LastErr, w) {
			e.t.Errorf("%s: error %q does not say %q", p.IntegrationID, info.LastErr, w)
		}
	}
	return info
}

// connCounter serves TLS on addr and counts the connections it accepts.
type connCounter struct {
	srv   *httptest.Server
	conns atomic.Int32
}

func listenCounting(t *testing.T, addr string) *connCounter {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil
	}
	c := &connCounter{srv: httptest.NewUnstartedServer(http.NotFoundHandler())}
	c.srv.Listener.Close()
	c.srv.Listener = l
	c.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			c.conns.Add(1)
		}
	}
	c.srv.StartTLS()
	t.Cleanup(c.srv.Close)
	return c
}

func (c *connCounter) port() string {
	_, p, _ := net.SplitHostPort(c.srv.Listener.Addr().String())
	return p
}

// Must-show 3: internal base URLs are refused before any connection, with
// an archived error that says why, when CONFLUENCE_ALLOW_CIDRS is empty.
func TestServerInternalBaseURLsRefused(t *testing.T) {
	e := newEnv(t)
	e.httpOpts = nil // no allowlist
	e.startWorker(2)
	v4 := listenCounting(t, "127.0.0.1:0")
	cases := []struct{ name, base, want string }{
		{"metadata", "http://169.254.169.254/", "169.254.169.254, a link-local (cloud metadata service) address"},
		{"private", "http://10.0.0.5/", "10.0.0.5, a private address"},
		{"ipv6-loopback", "http://[::1]/", "::1, a loopback address"},
		{"name-to-loopback", "https://localhost:" + v4.port() + "/confluence", "https://localhost:" + v4.port() + ": it resolves to"},
	}
	v6 := listenCounting(t, "[::1]:0")
	if v6 != nil {
		cases[2].base = "https://[::1]:" + v6.port() + "/"
	}
	for _, c := range cases {
		id := "ssrf-" + c.name
		e.putServer(id, c.base, "", patAuth("any"))
		e.archived(publishTo(id, "r-"+c.name), "refused", c.want, "CONFLUENCE_ALLOW_CIDRS")
	}
	if n := v4.conns.Load(); n != 0 {
		t.Errorf("the loopback listener behind localhost accepted %d connections", n)
	}
	if v6 != nil && v6.conns.Load() != 0 {
		t.Errorf("the [::1] listener accepted %d connections", v6.conns.Load())
	}
	// Plain http to an allowed-looking public name is refused too; an IP
	// literal outside every allowed network stands in for it.
	e.putServer("plain-http", "http://192.0.2.10/", "", patAuth("any"))
	e.archived(publishTo("plain-http", "r-plain"), "refused plain http", "use https")
}

// Must-show 3: a redirect from an allowed server to a refused address is
// not followed (no redirect from Confluence is, issue 13).
func TestServerRedirectToRefusedAddressNotFollowed(t *testing.T) {
	e := newEnv(t) // loopback 127.0.0.1 allowed, 127.0.0.2 not
	e.startWorker(2)
	targets := []string{"http://169.254.169.254/latest/meta-data/"}
	behind := listenCounting(t, "127.0.0.2:0")
	if behind != nil {
		targets = append(targets, "https://127.0.0.2:"+behind.port()+"/confluence/rest/api/space")
	}
	for i, to := range targets {
		redirector := httptest.NewServer(http.RedirectHandler(to, http.StatusFound))
		t.Cleanup(redirector.Close)
		id := "redirect-" + string(rune('a'+i))
		e.putServer(id, redirector.URL+"/confluence", "", patAuth("any"))
		u, _ := url.Parse(to)
		e.archived(publishTo(id, "r-"+id), "base_url redirects to "+u.Scheme+"://"+u.Host, "never followed")
	}
	if behind != nil && behind.conns.Load() != 0 {
		t.Errorf("the redirect target accepted %d connections", behind.conns.Load())
	}
}

// tlsDataCenter is a Data Center fake over https with httptest's
// self-signed certificate, accepting PAT "tls-token".
func tlsDataCenter(t *testing.T) *confluencetest.DataCenter {
	t.Helper()
	dc := confluencetest.NewDataCenter(confluencetest.DataCenterOptions{ContextPath: contextPath})
	dc.StartTLS()
	t.Cleanup(dc.Close)
	dc.AddSpace("ENG", "Engineering")
	dc.AddPAT("publisher", "tls-token")
	t.Cleanup(func() {
		if d := dc.Disallowed(); len(d) > 0 {
			t.Errorf("the TLS fake saw calls outside DESIGN §4: %+v", d)
		}
	})
	return dc
}

func onePageIn(t *testing.T, fake *confluencetest.Server, title string) confluencetest.Page {
	t.Helper()
	var found []confluencetest.Page
	for _, p := range fake.Pages("ENG") {
		if p.Title == title {
			found = append(found, p)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one page %q, have %d\n%s", title, len(found), fake.Tree("ENG"))
	}
	return found[0]
}

// Must-show 4: a self-signed certificate fails clearly without the CA
// bundle and works with it; verification is never switched off.
func TestServerSelfSignedCertificate(t *testing.T) {
	e := newEnv(t)
	e.startWorker(2)
	dc := tlsDataCenter(t)
	e.putServer("tls-no-ca", dc.BaseURL(), "", patAuth("tls-token"))
	e.archived(publishTo("tls-no-ca", "r-no-ca"), "TLS certificate of "+strings.TrimSuffix(dc.BaseURL(), contextPath)+" not trusted", "add the CA to the integration's ca_pem")
	if n := len(dc.Requests()); n != 0 {
		t.Fatalf("the server got %d requests over an untrusted connection", n)
	}
	e.putServer("tls-with-ca", dc.BaseURL(), dc.CertificatePEM(), patAuth("tls-token"))
	e.publish(publishTo("tls-with-ca", "r-with-ca"))
	onePageIn(t, dc.Server, "Retro r-with-ca")
}

// testProxy is an HTTP proxy: absolute-form requests for http targets,
// CONNECT tunnels for https. It logs every request it is asked to carry.
type testProxy struct {
	*httptest.Server
	mu  sync.Mutex
	log []*url.URL // absolute URLs; CONNECT as //host:port
}

func newTestProxy(t *testing.T) *testProxy {
	p := &testProxy{}
	upstream := &http.Transport{} // no proxy of its own
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodConnect {
			p.record(&url.URL{Host: r.Host})
			p.tunnel(w, r)
			return
		}
		if !r.URL.IsAbs() {
			http.Error(w, "not a proxy request", http.StatusBadRequest)
			return
		}
		p.record(r.URL)
		out := r.Clone(r.Context())
		out.RequestURI = ""
		resp, err := upstream.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, vs := range resp.Header {
			w.Header()[k] = vs
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(p.Close)
	t.Cleanup(upstream.CloseIdleConnections)
	return p
}

func (p *testProxy) record(u *url.URL) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = append(p.log, u)
}

func (p *testProxy) tunnel(w http.ResponseWriter, r *http.Request) {
	dst, err := net.Dial("tcp", r.Host)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		dst.Close()
		return
	}
	_, _ = conn.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
	go func() { _, _ = io.Copy(dst, buf); dst.Close() }()
	_, _ = io.Copy(conn, dst)
	conn.Close()
}

// carried counts the proxied requests to host (host:port), and the
// CONNECT tunnels opened to it.
func (p *testProxy) carried(host string) (requests, tunnels int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, u := range p.log {
		switch {
		case u.Host == host && u.Scheme == "":
			tunnels++
		case u.Host == host:
			requests++
		}
	}
	return requests, tunnels
}

func hostOf(t *testing.T, raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// Must-show 5: with EGRESS_PROXY_URL set, every Confluence request (Cloud
// and Server, http and https) goes through the proxy, and the egress
// policy still refuses internal targets before the proxy is asked.
func TestEgressProxyCarriesEveryRequest(t *testing.T) {
	e := newEnv(t)
	proxy := newTestProxy(t)
	e.httpOpts = []confluence.HTTPOption{allowLoopback(), confluence.ViaProxy(must(url.Parse(proxy.URL)))}
	e.startWorker(2)
	serverID, dc := e.attach(backends[1])
	tls := tlsDataCenter(t)
	e.putServer("proxy-tls", tls.BaseURL(), tls.CertificatePEM(), patAuth("tls-token"))

	e.publish(publishTo("acme-cloud", "via-proxy-cloud"))
	e.publish(publishTo(serverID, "via-proxy-server"))
	e.publish(publishTo("proxy-tls", "via-proxy-tls"))
	e.putServer("proxy-internal", "http://10.0.0.5/confluence", "", patAuth("any"))
	e.archived(publishTo("proxy-internal", "r-internal"), "10.0.0.5, a private address")

	for name, f := range map[string]*confluencetest.Server{"cloud": e.fake, "server": dc} {
		saw := len(f.Requests())
		if got, _ := proxy.carried(hostOf(t, f.URL())); saw == 0 || got != saw {
			t.Errorf("%s: the fake saw %d requests, the proxy carried %d", name, saw, got)
		}
	}
	if _, tunnels := proxy.carried(hostOf(t, tls.URL())); tunnels == 0 || len(tls.Requests()) == 0 {
		t.Errorf("https: %d tunnels through the proxy, %d requests at the server", tunnels, len(tls.Requests()))
	}
	if r, tun := proxy.carried("10.0.0.5"); r+tun != 0 {
		t.Errorf("the proxy was asked to reach a refused address")
	}
}

// Must-show 2: Application Link requests carry RSA-SHA1 signatures, which
// the fake verifies with the link's public key; a key it does not know is
// refused.
func TestAppLinkRequestsAreSigned(t *testing.T) {
	e := newEnvFor(t, backends[3])
	e.startWorker(2)
	e.publish(e.retro("signed", 1, 2))
	if n, v := len(e.fake.Requests()), e.dc.OAuthVerified(); n == 0 || v != n {
		t.Fatalf("%d requests, %d signatures verified", n, v)
	}
	other, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := e.store.Get(context.Background(), e.integration)
	if err != nil {
		t.Fatal(err)
	}
	auth := rec.Auth
	auth.PrivateKeyPEM = credstore.Secret(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(other)}))
	e.putServer("applink-other-key", rec.BaseURL, "", auth)
	e.archived(publishTo("applink-other-key", "r-other-key"), "signature_invalid")
}

// Data Center's CAPTCHA lock (401 + X-Seraph-LoginReason:
// AUTHENTICATION_DENIED) marks the integration and stops logins until new
// credentials are put; a wrong password is tried once, so retropub never
// locks the account itself.
func TestServerLoginLockStopsLogins(t *testing.T) {
	e := newEnvFor(t, backends[2])
	e.startWorker(2)
	e.dc.LockUser("publisher")
	e.archived(e.retro("locked", 1, 0), "CAPTCHA", "log in once in a browser")
	rec, err := e.store.Get(context.Background(), e.integration)
	if err != nil || !rec.Status.NeedsReauth || !strings.Contains(rec.Status.Reason, "CAPTCHA") {
		t.Fatalf("status %+v (%v)", rec.Status, err)
	}
	before := len(e.fake.Requests())
	e.archived(e.retro("locked-again", 1, 0), "CAPTCHA")
	if n := len(e.fake.Requests()) - before; n != 0 {
		t.Fatalf("a marked integration made %d requests", n)
	}
	// The user solves the CAPTCHA in a browser; the admin puts the credentials again.
	e.dc.UnlockUser("publisher")
	e.attach(backends[2])
	e.publish(e.retro("unlocked", 1, 0))

	wrong := rec.Auth
	wrong.Password = "not-the-password"
	e.putServer("wrong-password", rec.BaseURL, "", wrong)
	e.fake.ResetRequests()
	for _, r := range []string{"w1", "w2", "w3", "w4"} {
		e.archived(publishTo("wrong-password", r), "re-authorise")
	}
	if n := len(e.fake.Requests()); n != 1 || e.dc.Locked("publisher") {
		t.Fatalf("wrong password: %d login attempts, locked %v; want 1 attempt and no lock", n, e.dc.Locked("publisher"))
	}
}
