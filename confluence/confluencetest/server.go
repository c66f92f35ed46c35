// Package confluencetest provides in-memory fakes of Confluence for tests
// and the demo, the way net/http/httptest provides test servers: New gives a
// Confluence Cloud reached through the Atlassian OAuth gateway
// (api.atlassian.com/ex/confluence/{cloudId}) together with the auth
// server's token endpoints, and NewDataCenter a Confluence Server / Data
// Center site at its base URL. Each listens on loopback only; Start, URL
// and Close work as httptest.Server's do, and the accessors (Pages, Tree,
// Attachments, WriteCount, the fault injectors in faults.go) let a test look
// at and steer what Confluence holds. PreviewHandler serves the stored pages
// as HTML, as the demo does.
//
// The fakes are written from Atlassian's OpenAPI documents (testdata/) and
// from what real Confluence does, not from retropub's client, so that they
// disagree with the client wherever the client misreads Confluence. They
// refuse every call outside the set the design allows and record it.
//
// Production code never imports this package (test/layout_test.go checks
// it); the worker links it only when built with the demo tag.
package confluencetest

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"time"
)

// Options configure a Server. The zero value is usable.
type Options struct {
	CloudID string   // default "11111111-2222-3333-4444-555555555555"
	SiteURL string   // default "https://example.atlassian.net"
	Scopes  []string // returned by accessible-resources; default DefaultScopes

	// The OAuth app the token endpoint accepts; default DefaultClientID
	// and DefaultClientSecret.
	ClientID, ClientSecret string
	TokenLifetime          time.Duration // of issued access tokens (whole seconds); default 1 h
	RefreshGrace           time.Duration // reuse window of a rotated refresh token; default 10 min
}

// DefaultScopes is the granular scope set the publisher asks for
// (confluence-api.md §3.3) plus search:confluence.
var DefaultScopes = []string{
	"read:space:confluence",
	"read:page:confluence",
	"write:page:confluence",
	"read:attachment:confluence",
	"write:attachment:confluence",
	"read:content-details:confluence",
	"read:hierarchical-content:confluence",
	"offline_access",
	"search:confluence",
}

// Request is one request as the fake saw it. Header values, and in
// particular Authorization, are never recorded.
type Request struct {
	Method   string
	Path     string // the full URL path, including /ex/confluence/{cloudId}
	RawQuery string
	Status   int
	Time     time.Time
	Allowed  bool // in the DESIGN §4 Cloud list
	Write    bool // POST/PUT/DELETE/PATCH to a Confluence endpoint of this site

	// Route is the matched endpoint, e.g. "GET /wiki/api/v2/pages/{id}";
	// for unmatched requests it is the method and the path without prefix.
	Route string
}

// Page is a snapshot of a page.
type Page struct {
	ID, SpaceID, ParentID, Title, Body, Status string
	Version                                    int
	VersionMessage                             string // version.message of the current version ("" for version 1)
}

// Update is one page update (v2 PUT /pages/{id} or v1 PUT /content/{id})
// the fake applied: the version it made and the version.message it came with.
type Update struct {
	PageID  string
	Version int
	Message string
}

// Attachment is a snapshot of an attachment's current version.
type Attachment struct {
	ID, PageID, Title, MediaType, Comment string
	Version                               int
	Data                                  []byte
}

// Server is the fake. All methods are safe for concurrent use.
type Server struct {
	cloudID string
	siteURL string
	scopes  []string

	mu        sync.Mutex
	ts        *httptest.Server
	oauth     oauthState
	nextID    int // one counter for spaces, pages and attachments, like Confluence's content ids
	spaces    []*space
	pages     map[string]*page
	pageOrder []*page
	requests  []Request
	updates   []Update
	faults    []*Fault
	holds     []*Hold
	latency   time.Duration
	onRequest func(Request)
	afterResp func(Request)
	clock     func() time.Time
	dc        *DataCenter // set when this is the Server/Data Center flavour
	lim       limits
	sa        serviceAccounts // clientcreds.go
	// blocked spaces (by id) and the operations refused there (blocked.go)
	blocked         map[string]bool
	blockedRefusals int
}

type space struct {
	id, key, name, homepageID string
	// alias is the key an admin renamed the space to (Cloud, since late
	// 2024): key stays the system key, the alias is the key people use.
	alias     string
	createdAt time.Time
}

type page struct {
	id, spaceID, parentID, title, body, status string
	version                                    int
	versionMessage                             string
	position                                   int
	createdAt, modifiedAt                      time.Time
	attachments                                []*attachment
}

type attachment struct {
	id, pageID, title, mediaType, comment string
	version                               int
	data                                  []byte
	createdAt, modifiedAt                 time.Time
}

const (
	defaultCloudID = "11111111-2222-3333-4444-555555555555"
	defaultSiteURL = "https://example.atlassian.net"
	accountID      = "557058:f0a1b2c3-fake-4d5e-8f90-publisher00"
	gatewayPrefix  = "/ex/confluence/"
	// maxBody bounds what the fake buffers; Cloud allows 2 GB uploads, but
	// tests never need more and a runaway client should not eat the RAM.
	maxBody = 256 << 20
	// pageBodyLimit is Cloud's cap on page create/update requests.
	pageBodyLimit = 5242880
)

// New returns a Server with no spaces and no accepted tokens.
func New(opts Options) *Server {
	s := &Server{
		cloudID: opts.CloudID,
		siteURL: strings.TrimRight(opts.SiteURL, "/"),
		scopes:  append([]string(nil), opts.Scopes...),
		oauth:   newOAuthState(opts),
		pages:   map[string]*page{},
		nextID:  65536,
		clock:   func() time.Time { return time.Now().UTC() },
	}
	if s.cloudID == "" {
		s.cloudID = defaultCloudID
	}
	if s.siteURL == "" {
		s.siteURL = defaultSiteURL
	}
	if len(s.scopes) == 0 {
		s.scopes = append([]string(nil), DefaultScopes...)
	}
	return s
}

// Start serves the fake on a 127.0.0.1 port and returns its base URL, which
// stands in for both https://api.atlassian.com and https://auth.atlassian.com.
func (s *Server) Start() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("confluencetest: listen: %v", err))
	}
	ts := httptest.NewUnstartedServer(s)
	ts.Listener.Close()
	ts.Listener = l
	ts.Start()
	s.mu.Lock()
	s.ts = ts
	s.mu.Unlock()
	return ts.URL
}

// URL returns the base URL given by Start, or "" before Start.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ts == nil {
		return ""
	}
	return s.ts.URL
}

// Close releases held requests (without their effect) and stops the server.
func (s *Server) Close() {
	s.mu.Lock()
	ts := s.ts
	holds := s.holds
	s.holds = nil
	s.mu.Unlock()
	for _, h := range holds {
		h.Release(false)
	}
	if ts != nil {
		ts.Close()
	}
}

// CloudID returns the site's cloudId.
func (s *Server) CloudID() string { return s.cloudID }

// RenameSpaceKey renames a space's key as a Cloud admin does: v2 keeps
// answering the system key in "key" and the new one in
// "currentActiveAlias", and a keys= filter finds the space by either.
// The space stays addressable by its system key in this fake's helpers.
func (s *Server) RenameSpaceKey(key, alias string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sp := s.spaceByKey(key); sp != nil {
		sp.alias = alias
	}
}

// AddSpace creates a global space with its home page, titled "<name> Home".
func (s *Server) AddSpace(key, name string) (spaceID, homepageID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock()
	sp := &space{id: s.newID(), key: key, name: name, createdAt: now}
	home := &page{
		id: s.newID(), spaceID: sp.id, title: name + " Home", status: "current",
		body: "<p>Welcome to " + xmlEscape(name) + ".</p>", version: 1,
		createdAt: now, modifiedAt: now,
	}
	sp.homepageID = home.id
	s.spaces = append(s.spaces, sp)
	s.addPage(home)
	return sp.id, home.id
}

// OnRequest installs a hook called after every request is recorded.
func (s *Server) OnRequest(f func(Request)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onRequest = f
}

// AfterResponse installs a hook called once a request's answer has been
// written and flushed to the client: a test can kill the client right
// after it received an answer (a token pair, say).
func (s *Server) AfterResponse(f func(Request)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.afterResp = f
}

// Requests returns every request so far, in arrival order of completion.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// ResetRequests forgets the recorded requests.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

// WriteCount counts POST/PUT/DELETE requests to this site's Confluence
// endpoints (under the gateway prefix), whatever their answer.
func (s *Server) WriteCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if r.Write {
			n++
		}
	}
	return n
}

// Disallowed returns the requests that are not in DESIGN §4's Cloud list.
func (s *Server) Disallowed() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Request
	for _, r := range s.requests {
		if !r.Allowed {
			out = append(out, r)
		}
	}
	return out
}

// Pages returns the current (not trashed, not draft) pages of a space, by id.
func (s *Server) Pages(spaceKey string) []Page {
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := s.spaceByKey(spaceKey)
	if sp == nil {
		return nil
	}
	var out []Page
	for _, p := range s.pageOrder {
		if p.spaceID == sp.id && p.status == "current" {
			out = append(out, p.snapshot())
		}
	}
	return out
}

// Updates returns every page update applied, in order.
func (s *Server) Updates() []Update {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Update(nil), s.updates...)
}

// Attachments returns the attachments of a page, in upload order.
func (s *Server) Attachments(pageID string) []Attachment {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pages[pageID]
	if p == nil {
		return nil
	}
	out := make([]Attachment, 0, len(p.attachments))
	for _, a := range p.attachments {
		out = append(out, Attachment{
			ID: a.id, PageID: a.pageID, Title: a.title, MediaType: a.mediaType,
			Comment: a.comment, Version: a.version, Data: append([]byte(nil), a.data...),
		})
	}
	return out
}

// Tree renders a space for test failure messages and the demo:
//
//	TEAM "Team" (id 65536)
//	  "Team Home" (id 65537, v1)
//	    "Retro" (id 65538, v2)
//	      [att65539] chart.png image/png 1234 bytes v1
func (s *Server) Tree(spaceKey string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := s.spaceByKey(spaceKey)
	if sp == nil {
		return fmt.Sprintf("no space %q\n", spaceKey)
	}
	children := map[string][]*page{}
	for _, p := range s.pageOrder {
		if p.spaceID == sp.id && p.status != "trashed" {
			children[p.parentID] = append(children[p.parentID], p)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %q (id %s)\n", sp.key, sp.name, sp.id)
	var walk func(parent string, depth int)
	walk = func(parent string, depth int) {
		kids := children[parent]
		sort.SliceStable(kids, func(i, j int) bool { return kids[i].title < kids[j].title })
		for _, p := range kids {
			ind := strings.Repeat("  ", depth)
			status := ""
			if p.status != "current" {
				status = " " + p.status
			}
			fmt.Fprintf(&b, "%s%q (id %s, v%d%s)\n", ind, p.title, p.id, p.version, status)
			for _, a := range p.attachments {
				fmt.Fprintf(&b, "%s  [%s] %s %s %d bytes v%d\n", ind, a.id, a.title, a.mediaType, len(a.data), a.version)
			}
			walk(p.id, depth+1)
		}
	}
	walk("", 1)
	return b.String()
}

// SetLatency delays every request by d before it is handled.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// ServeHTTP applies latency, faults and holds, hands the request to its
// endpoint and records it. The answer is buffered and recorded before the
// client sees it, so a test that has its response also sees it in Requests.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := s.resolve(r.Method, r.URL.Path)
	if s.admitLimits(w, r, rt) {
		return
	}
	rec := httptest.NewRecorder()
	s.serve(rec, r, rt)
	s.finishLimits(r, rt, rec)
	req := Request{
		Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Status: rec.Code,
		Time: s.clock(), Allowed: rt.allowed, Write: rt.write, Route: rt.name,
	}
	s.record(req)
	for k, vs := range rec.Header() {
		w.Header()[k] = vs
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
	s.mu.Lock()
	after := s.afterResp
	s.mu.Unlock()
	if after != nil {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		after(req)
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, rt resolved) {
	if !s.sleep(r) {
		w.WriteHeader(http.StatusServiceUnavailable) // nobody is listening any more
		return
	}
	// Buffer the body once so that AfterEffect can run the handler and the
	// handlers can parse without holding a stream open under the lock.
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		writeV1Error(w, http.StatusBadRequest, "cannot read request body: "+err.Error())
		return
	}
	if len(body) > maxBody {
		writeTooLarge(w)
		return
	}

	fault, hold := s.takeFaultAndHold(r.Method, rt.apiPath)
	if fault != nil && !fault.AfterEffect {
		fault.write(w)
		return
	}
	if hold != nil && !hold.wait() {
		writeGatewayError(w, http.StatusServiceUnavailable, "Service Unavailable")
		return
	}
	if fault != nil {
		s.dispatch(httptest.NewRecorder(), r, rt, body)
		fault.write(w)
		return
	}
	s.dispatch(w, r, rt, body)
}

// sleep waits out the configured latency; false if the client gave up.
func (s *Server) sleep(r *http.Request) bool {
	s.mu.Lock()
	d := s.latency
	s.mu.Unlock()
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

func (s *Server) record(req Request) {
	s.mu.Lock()
	s.requests = append(s.requests, req)
	hook := s.onRequest
	s.mu.Unlock()
	if hook != nil {
		hook(req)
	}
}

// call is what a handler gets: the request, its buffered body and the
// values of the {placeholders} in its route.
type call struct {
	r    *http.Request
	body []byte
	args map[string]string
}

type handler func(s *Server, w http.ResponseWriter, c *call)

// route is one endpoint. Patterns are literal segments and {placeholders}.
type route struct {
	method, pattern string
	allowed         bool // listed in DESIGN §4
	h               handler
}

// gatewayRoutes are matched against the path after /ex/confluence/{cloudId}.
// More specific patterns come first.
var gatewayRoutes = []route{
	{"GET", "/wiki/api/v2/spaces", true, (*Server).getSpaces},
	{"GET", "/wiki/api/v2/pages", true, (*Server).getPages},
	{"POST", "/wiki/api/v2/pages", true, (*Server).createPage},
	{"GET", "/wiki/api/v2/pages/{id}", false, (*Server).getPage},
	{"PUT", "/wiki/api/v2/pages/{id}", true, (*Server).updatePage},
	{"DELETE", "/wiki/api/v2/pages/{id}", true, (*Server).deletePage},
	{"GET", "/wiki/rest/api/user/current", true, (*Server).currentUser},
	{"GET", "/wiki/rest/api/content/search", true, (*Server).search},
	{"GET", "/wiki/rest/api/content/{id}/child/attachment", true, (*Server).listAttachments},
	{"POST", "/wiki/rest/api/content/{id}/child/attachment", true, (*Server).createAttachments},
	{"POST", "/wiki/rest/api/content/{id}/child/attachment/{attachmentId}/data", true, (*Server).updateAttachmentData},
	// v1 page and space endpoints are retired on the gateway (§1.11).
	{"GET", "/wiki/rest/api/content", false, gone},
	{"POST", "/wiki/rest/api/content", false, gone},
	{"GET", "/wiki/rest/api/content/{id}", false, gone},
	{"PUT", "/wiki/rest/api/content/{id}", false, gone},
	{"DELETE", "/wiki/rest/api/content/{id}", false, gone},
	{"GET", "/wiki/rest/api/space", false, gone},
	{"GET", "/wiki/rest/api/space/{key}", false, gone},
}

// authRoutes live on the auth host (token) and the API host
// (accessible-resources); both are this server.
var authRoutes = []route{
	{"GET", "/oauth/token/accessible-resources", true, (*Server).accessibleResources},
	{"POST", "/oauth/token", true, (*Server).token},
}

// resolved is what routing decided about a request before it is handled.
type resolved struct {
	route   *route
	args    map[string]string
	apiPath string // path without the gateway prefix; what faults match
	gateway bool   // under /ex/confluence/{cloudId}
	cloudID string
	name    string
	allowed bool
	write   bool
}

func (s *Server) resolve(method, path string) resolved {
	if s.dc != nil {
		return s.dc.resolve(method, path)
	}
	rt := resolved{apiPath: path}
	routes := authRoutes
	if rest, ok := strings.CutPrefix(path, gatewayPrefix); ok {
		id, sub, _ := strings.Cut(rest, "/")
		rt.gateway, rt.cloudID, rt.apiPath = true, id, "/"+sub
		routes = gatewayRoutes
		rt.write = id == s.cloudID && isWrite(method)
	}
	rt.name = method + " " + rt.apiPath
	rt.match(routes, method)
	return rt
}

// match finds the route of rt.apiPath among routes, the first that fits.
func (rt *resolved) match(routes []route, method string) {
	for i := range routes {
		ro := &routes[i]
		if ro.method != method {
			continue
		}
		if args, ok := matchPattern(ro.pattern, rt.apiPath); ok {
			rt.route, rt.args, rt.allowed = ro, args, ro.allowed
			rt.name = method + " " + ro.pattern
			return
		}
	}
}

func isWrite(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch:
		return true
	}
	return false
}

func matchPattern(pattern, path string) (map[string]string, bool) {
	ps := strings.Split(strings.Trim(pattern, "/"), "/")
	xs := strings.Split(strings.Trim(path, "/"), "/")
	if len(ps) != len(xs) {
		return nil, false
	}
	args := map[string]string{}
	for i, p := range ps {
		if strings.HasPrefix(p, "{") {
			if xs[i] == "" {
				return nil, false
			}
			args[strings.Trim(p, "{}")] = xs[i]
		} else if p != xs[i] {
			return nil, false
		}
	}
	return args, true
}

// dispatch authenticates gateway calls and runs the endpoint.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request, rt resolved, body []byte) {
	if s.dc != nil {
		s.dc.dispatch(w, r, rt, body)
		return
	}
	// accessible-resources is the one auth-host call that takes the bearer token.
	if rt.gateway || rt.apiPath == "/oauth/token/accessible-resources" {
		if !s.authorized(r) {
			writeGatewayError(w, http.StatusUnauthorized, "Unauthorized")
			return
		}
	}
	if rt.gateway && rt.cloudID != s.cloudID {
		writeGatewayError(w, http.StatusNotFound, "Not Found")
		return
	}
	if rt.route == nil {
		notFound(w, rt.apiPath)
		return
	}
	c := &call{r: r, body: body, args: rt.args}
	if rt.gateway && s.refuseBlocked(w, c, rt) {
		return
	}
	rt.route.h(s, w, c)
}

func (s *Server) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.validAccessToken(strings.TrimSpace(tok))
}

func notFound(w http.ResponseWriter, path string) {
	if strings.HasPrefix(path, "/wiki/api/v2/") {
		writeV2Error(w, http.StatusNotFound, "Not Found")
		return
	}
	writeV1Error(w, http.StatusNotFound, "null for uri: "+path)
}

func gone(_ *Server, w http.ResponseWriter, _ *call) {
	writeJSON(w, http.StatusGone, map[string]any{
		"statusCode": http.StatusGone, "message": goneMessage, "reason": "Gone",
	})
}

// newID hands out the next content id. Callers hold s.mu.
func (s *Server) newID() string {
	s.nextID++
	return fmt.Sprint(s.nextID)
}

func (s *Server) spaceByKey(key string) *space {
	for _, sp := range s.spaces {
		if sp.key == key {
			return sp
		}
	}
	return nil
}

func (s *Server) spaceByID(id string) *space {
	for _, sp := range s.spaces {
		if sp.id == id {
			return sp
		}
	}
	return nil
}

func (p *page) snapshot() Page {
	return Page{ID: p.id, SpaceID: p.spaceID, ParentID: p.parentID, Title: p.title, Body: p.body, Status: p.status, Version: p.version, VersionMessage: p.versionMessage}
}

func xmlEscape(v string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(v))
	return b.String()
}
