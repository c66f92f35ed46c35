package confluencetest

import (
	"context"
	"crypto/rsa"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
)

// DataCenter is the fake in its Confluence Server / Data Center flavour:
// REST v1 under a base URL with a context path (http://host/confluence/rest/api/…),
// v1 bodies and errors, and Data Center's sign-ins — personal access tokens,
// basic auth with the CAPTCHA lock after failed logins, and Application
// Links signing with OAuth 1.0a RSA-SHA1 (confluence-api.md §2, §3.5).
//
// It shares the embedded Server's content (spaces, pages, attachments), its
// request log, faults and holds; only routing, authentication and the JSON
// shapes differ. Faults match the path below the context path, e.g.
// ^/rest/api/content$.
type DataCenter struct {
	*Server
	contextPath string
	loginLimit  int
	base        atomic.Value // string: BaseURL, read by handlers that hold Server.mu

	authMu    sync.Mutex
	pats      map[string]string // token → user
	users     map[string]*dcUser
	consumers map[string]*rsa.PublicKey
	tokens    map[string]oauthToken // access token → grant
	nonces    map[string]bool
	verified  int // OAuth 1.0a signatures verified
}

// DataCenterOptions configure a DataCenter. The zero value is usable.
type DataCenterOptions struct {
	ContextPath      string // e.g. "/confluence"; "" serves at the root
	FailedLoginLimit int    // failed basic logins before the CAPTCHA lock; default 3, as Confluence
}

type dcUser struct {
	password string
	failed   int
	locked   bool
}

type oauthToken struct {
	consumerKey, user string
}

// NewDataCenter returns a Data Center fake with no spaces and no users.
func NewDataCenter(opts DataCenterOptions) *DataCenter {
	d := &DataCenter{
		Server:      New(Options{}),
		contextPath: "/" + strings.Trim(opts.ContextPath, "/"),
		loginLimit:  opts.FailedLoginLimit,
		pats:        map[string]string{},
		users:       map[string]*dcUser{},
		consumers:   map[string]*rsa.PublicKey{},
		tokens:      map[string]oauthToken{},
		nonces:      map[string]bool{},
	}
	if d.contextPath == "/" {
		d.contextPath = ""
	}
	if d.loginLimit <= 0 {
		d.loginLimit = 3
	}
	d.Server.dc = d
	return d
}

// Start serves the fake over http on a 127.0.0.1 port and returns the base
// URL, context path included.
func (d *DataCenter) Start() string {
	d.base.Store(d.Server.Start() + d.contextPath)
	return d.BaseURL()
}

// StartTLS serves the fake over https with httptest's self-signed
// certificate (valid for 127.0.0.1); CertificatePEM returns it.
func (d *DataCenter) StartTLS() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("confluencetest: listen: %v", err))
	}
	ts := httptest.NewUnstartedServer(d.Server)
	ts.Listener.Close()
	ts.Listener = l
	ts.StartTLS()
	d.mu.Lock()
	d.ts = ts
	d.mu.Unlock()
	d.base.Store(ts.URL + d.contextPath)
	return d.BaseURL()
}

// BaseURL is what an integration's base_url would be: scheme, host and
// context path, no trailing slash.
func (d *DataCenter) BaseURL() string {
	b, _ := d.base.Load().(string)
	return b
}

// ContextPath returns the context path, "" for the root.
func (d *DataCenter) ContextPath() string { return d.contextPath }

// AddPAT makes token a personal access token of user.
func (d *DataCenter) AddPAT(user, token string) {
	d.authMu.Lock()
	defer d.authMu.Unlock()
	d.pats[token] = user
}

// AddUser creates a user who can sign in with basic auth.
func (d *DataCenter) AddUser(user, password string) {
	d.authMu.Lock()
	defer d.authMu.Unlock()
	d.users[user] = &dcUser{password: password}
}

// AddConsumer configures an incoming Application Link: its consumer key
// and the public key its requests are verified with.
func (d *DataCenter) AddConsumer(consumerKey string, pub *rsa.PublicKey) {
	d.authMu.Lock()
	defer d.authMu.Unlock()
	d.consumers[consumerKey] = pub
}

// AddOAuthToken grants an access token to a consumer on behalf of user, as
// the OAuth dance of an Application Link would.
func (d *DataCenter) AddOAuthToken(consumerKey, token, user string) {
	d.authMu.Lock()
	defer d.authMu.Unlock()
	d.tokens[token] = oauthToken{consumerKey: consumerKey, user: user}
}

// LockUser puts user behind the CAPTCHA, as failed logins do.
func (d *DataCenter) LockUser(user string) {
	d.authMu.Lock()
	defer d.authMu.Unlock()
	if u := d.users[user]; u != nil {
		u.locked = true
	}
}

// UnlockUser is the user solving the CAPTCHA in a browser.
func (d *DataCenter) UnlockUser(user string) {
	d.authMu.Lock()
	defer d.authMu.Unlock()
	if u := d.users[user]; u != nil {
		u.locked, u.failed = false, 0
	}
}

// Locked reports whether user is behind the CAPTCHA.
func (d *DataCenter) Locked(user string) bool {
	d.authMu.Lock()
	defer d.authMu.Unlock()
	u := d.users[user]
	return u != nil && u.locked
}

// OAuthVerified counts the requests whose OAuth 1.0a RSA-SHA1 signature
// the fake verified with a consumer's public key.
func (d *DataCenter) OAuthVerified() int {
	d.authMu.Lock()
	defer d.authMu.Unlock()
	return d.verified
}

// dcRoutes are matched against the path below the context path. The ones
// marked allowed are DESIGN §4's Server list; the others exist on Data
// Center, so a client that strays there is served and caught by Disallowed.
var dcRoutes = []route{
	{"GET", "/rest/api/user/current", true, (*Server).dcCurrentUser},
	{"GET", "/rest/api/space", true, (*Server).dcGetSpaces},
	{"GET", "/rest/api/space/{key}", false, (*Server).dcGetSpace},
	{"GET", "/rest/api/content/search", true, (*Server).dcSearch},
	{"GET", "/rest/api/content", true, (*Server).dcGetContent},
	{"POST", "/rest/api/content", true, (*Server).dcCreateContent},
	{"GET", "/rest/api/content/{id}", false, (*Server).dcGetContentByID},
	{"PUT", "/rest/api/content/{id}", true, (*Server).dcUpdateContent},
	{"DELETE", "/rest/api/content/{id}", true, (*Server).dcDeleteContent},
	{"GET", "/rest/api/content/{id}/child/attachment", true, (*Server).listAttachments},
	{"POST", "/rest/api/content/{id}/child/attachment", true, (*Server).createAttachments},
	// Data Center has no create-or-update PUT here (confluence-api.md §2.7).
	{"PUT", "/rest/api/content/{id}/child/attachment", false, dcMethodNotAllowed},
	{"POST", "/rest/api/content/{id}/child/attachment/{attachmentId}/data", true, (*Server).updateAttachmentData},
	// The OAuth 2.0 provider's token endpoint (service accounts, DESIGN §11).
	{"POST", dcTokenPath, true, (*Server).dcClientCredentials},
}

func dcMethodNotAllowed(_ *Server, w http.ResponseWriter, _ *call) {
	writeV1Error(w, http.StatusMethodNotAllowed, "Method Not Allowed")
}

// inContext splits off the context path; ok is false outside it.
func (d *DataCenter) inContext(path string) (rest string, ok bool) {
	rest, ok = strings.CutPrefix(path, d.contextPath)
	return rest, ok && strings.HasPrefix(rest, "/")
}

func (d *DataCenter) resolve(method, path string) resolved {
	rt := resolved{apiPath: path, name: method + " " + path}
	rest, ok := d.inContext(path)
	if !ok {
		return rt
	}
	rt.apiPath, rt.name, rt.write = rest, method+" "+rest, isWrite(method)
	rt.match(dcRoutes, method)
	return rt
}

type dcUserKey struct{}

// requestUser is the user a request was authenticated as.
func requestUser(r *http.Request) string {
	u, _ := r.Context().Value(dcUserKey{}).(string)
	return u
}

// dispatch authenticates (every call needs a user here) and runs the endpoint.
func (d *DataCenter) dispatch(w http.ResponseWriter, r *http.Request, rt resolved, body []byte) {
	if _, ok := d.inContext(r.URL.Path); !ok {
		// Tomcat answers outside the webapp's context path.
		w.Header().Set("Content-Type", "text/html;charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte("<!doctype html><html><body><h1>HTTP Status 404 – Not Found</h1></body></html>"))
		return
	}
	if rt.apiPath == dcTokenPath && rt.route != nil {
		// The OAuth 2.0 provider's token endpoint authenticates the client
		// by its credentials in the body.
		rt.route.h(d.Server, w, &call{r: r, body: body, args: rt.args})
		return
	}
	user, ok := d.authenticate(w, r, body)
	if !ok {
		return
	}
	if rt.route == nil {
		writeV1Error(w, http.StatusNotFound, "null for uri: "+d.BaseURL()+rt.apiPath)
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), dcUserKey{}, user))
	rt.route.h(d.Server, w, &call{r: r, body: body, args: rt.args})
}

// CertificatePEM returns the certificate StartTLS serves with, PEM-encoded:
// what a customer would put into the integration's ca_pem.
func (d *DataCenter) CertificatePEM() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ts == nil || d.ts.Certificate() == nil {
		return ""
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d.ts.Certificate().Raw}))
}
