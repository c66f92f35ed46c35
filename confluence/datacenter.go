package confluence

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

// dataCenter is the Server/Data Center flavour: REST v1 at the customer's
// base URL, which often carries a context path (https://host/confluence/
// rest/api/…; confluence-api.md §2). v1 addresses a space by its key, so
// here Space.ID holds the key and every method that takes a space id
// takes the key.
type dataCenter struct {
	*conn
	homes sync.Map // space key → home page id, learned by spaceByKey
}

// NewServer returns a client for the Server/Data Center site at baseURL
// (http or https, with any context path; trailing slashes are dropped).
// Which addresses it may reach, and whether http is acceptable there, is
// the HTTP client's egress policy (NewHTTPClient), checked at dial time.
func NewServer(baseURL string, opts ...Option) (*Client, error) {
	base, err := normalizeBaseURL(baseURL)
	if err != nil {
		return nil, err
	}
	c := &Client{}
	c.base, c.instance, c.v1, c.allowed, c.redirect = base, "server:"+base.Host+base.Path, "/rest/api", serverRoutes, dataCenterRedirect
	c.api = &dataCenter{conn: &c.conn}
	if err := c.apply(opts); err != nil {
		return nil, err
	}
	c.site = base.String() // v1 links are relative to the base URL, context path included
	return c, nil
}

// normalizeBaseURL keeps scheme, host and context path: lower-case scheme
// and host, no default port, no trailing slash, nothing else.
func normalizeBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("confluence: base URL %q: %w", raw, errors.Unwrap(err))
	}
	u.Scheme = strings.ToLower(u.Scheme)
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("confluence: base URL %q: scheme must be https (or http to an address in CONFLUENCE_ALLOW_CIDRS)", raw)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("confluence: base URL %q: no host", raw)
	case u.User != nil:
		return nil, fmt.Errorf("confluence: base URL must not carry credentials")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, fmt.Errorf("confluence: base URL %q: no query or fragment, only scheme, host and context path", raw)
	}
	host := strings.ToLower(u.Host)
	if p := u.Port(); (u.Scheme == "https" && p == "443") || (u.Scheme == "http" && p == "80") {
		host = strings.TrimSuffix(host, ":"+p)
	}
	path := strings.TrimRight(u.Path, "/")
	for strings.Contains(path, "//") {
		path = strings.ReplaceAll(path, "//", "/")
	}
	return &url.URL{Scheme: u.Scheme, Host: host, Path: path}, nil
}

const (
	v1Content   = "/rest/api/content"
	v1SpacePath = "/rest/api/space"
	v1Search    = "/rest/api/content/search"
	// v1Expand is what a page look-up needs: the parent is the last ancestor.
	v1Expand = "version,space,ancestors"
	// v1PageSize is the page size for walks; Data Center caps limits
	// silently, and the walk follows _links.next whatever it is.
	v1PageSize = 100
)

// v1Page is content as v1 returns it: id, status, title, version, body
// and _links as in Page, the space as an object and the parent as the
// last ancestor.
type v1Page struct {
	Page
	Space struct {
		Key string `json:"key"`
	} `json:"space"`
	Ancestors []struct {
		ID string `json:"id"`
	} `json:"ancestors"`
}

// page converts to the flavour-neutral Page.
func (v *v1Page) page() *Page {
	p := v.Page
	p.SpaceID = v.Space.Key
	if n := len(v.Ancestors); n > 0 {
		p.ParentID = v.Ancestors[n-1].ID
	}
	return &p
}

// v1List is v1's offset-paginated list (start, limit, _links.next).
type v1List struct {
	Results []v1Page `json:"results"`
	Start   int      `json:"start"`
	Limit   int      `json:"limit"`
	Size    int      `json:"size"`
	Links   struct {
		Next string `json:"next"`
		Base string `json:"base"`
	} `json:"_links"`
}

func notFound(path, what string) error {
	return &NotFoundError{Method: "GET", Path: path, What: what}
}

func expand(withBody bool) string {
	if withBody {
		return v1Expand + ",body.storage"
	}
	return v1Expand
}

// v1Space is a space as v1 answers it; its numeric id is not used (v1
// addresses spaces by key).
type v1Space struct {
	Key      string `json:"key"`
	Name     string `json:"name"`
	Homepage struct {
		ID string `json:"id"`
	} `json:"homepage"`
}

func (s *v1Space) space() Space {
	return Space{ID: s.Key, Key: s.Key, Name: s.Name, HomepageID: s.Homepage.ID}
}

func (c *dataCenter) spaceByKey(ctx context.Context, key string) (*Space, error) {
	var out struct {
		Results []v1Space `json:"results"`
	}
	q := url.Values{"spaceKey": {key}, "expand": {"homepage"}, "limit": {"1"}}
	if err := c.do(ctx, request{method: "GET", path: v1SpacePath, query: q}, &out); err != nil {
		return nil, err
	}
	for _, s := range out.Results {
		if strings.EqualFold(s.Key, key) {
			c.homes.Store(s.Key, s.Homepage.ID)
			sp := s.space()
			return &sp, nil
		}
	}
	return nil, notFound(v1SpacePath, "space "+strconv.Quote(key))
}

// homepage returns the home page of a space: v1 puts a page created
// without ancestors at the top of the space, not below its home page.
func (c *dataCenter) homepage(ctx context.Context, key string) (string, error) {
	if id, ok := c.homes.Load(key); ok && id != "" {
		return id.(string), nil
	}
	sp, err := c.spaceByKey(ctx, key)
	if err != nil {
		return "", err
	}
	if sp.HomepageID == "" {
		return "", fmt.Errorf("confluence: space %s has no home page to put pages below; set root_page_id", key)
	}
	return sp.HomepageID, nil
}

func (c *dataCenter) pageByTitle(ctx context.Context, spaceKey, title string, withBody bool) (*Page, error) {
	q := url.Values{"type": {"page"}, "spaceKey": {spaceKey}, "title": {title}, "status": {strings.Join(titleHolders, ",")},
		"expand": {expand(withBody)}, "limit": {"5"}}
	var out v1List
	if err := c.do(ctx, request{method: "GET", path: v1Content, query: q}, &out); err != nil {
		return nil, err
	}
	for i := range out.Results {
		if strings.TrimSpace(out.Results[i].Title) == strings.TrimSpace(title) {
			return c.answered(out.Results[i].page(), out.Links.Base, "GET", v1Content)
		}
	}
	return nil, notFound(v1Content, "page")
}

func (c *dataCenter) pageByTitleFold(ctx context.Context, spaceKey, title string) (*Page, error) {
	q := url.Values{"type": {"page"}, "spaceKey": {spaceKey}, "status": {strings.Join(titleHolders, ",")},
		"expand": {v1Expand}, "limit": {strconv.Itoa(v1PageSize)}}
	want := strings.TrimSpace(title)
	for start := 0; ; {
		var out v1List
		if err := c.do(ctx, request{method: "GET", path: v1Content, query: q}, &out); err != nil {
			return nil, err
		}
		for i := range out.Results {
			if strings.EqualFold(strings.TrimSpace(out.Results[i].Title), want) {
				return c.answered(out.Results[i].page(), out.Links.Base, "GET", v1Content)
			}
		}
		next, ok := nextStart(out.Links.Next)
		if !ok || next <= start {
			return nil, notFound(v1Content, "page")
		}
		start = next
		q.Set("start", strconv.Itoa(start))
	}
}

// nextStart takes the offset out of v1's _links.next. The link is relative
// to _links.base; re-issuing our own request keeps it on the allowlist.
func nextStart(next string) (int, bool) {
	if next == "" {
		return 0, false
	}
	u, err := url.Parse(next)
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(u.Query().Get("start"))
	return n, err == nil
}

// pageByID reads a page through CQL search: DESIGN §4 lists no GET of
// /rest/api/content/{id} on Data Center. Trashed pages are not found.
func (c *dataCenter) pageByID(ctx context.Context, id string, withBody bool) (*Page, error) {
	q := url.Values{"cql": {"id = " + id}, "expand": {expand(withBody)}, "limit": {"1"}}
	var out v1List
	if err := c.do(ctx, request{method: "GET", path: v1Search, query: q}, &out); err != nil {
		return nil, err
	}
	for i := range out.Results {
		if out.Results[i].ID == id && out.Results[i].Status == "current" {
			return c.answered(out.Results[i].page(), out.Links.Base, "GET", v1Search)
		}
	}
	return nil, notFound(v1Search, "page "+id)
}

type v1Ref struct {
	ID string `json:"id"`
}

type v1SpaceRef struct {
	Key string `json:"key"`
}

type v1Body struct {
	Storage storageBody `json:"storage"`
}

func (c *dataCenter) createPage(ctx context.Context, p NewPage) (*Page, error) {
	parent := p.ParentID
	if parent == "" {
		hp, err := c.homepage(ctx, p.SpaceID)
		if err != nil {
			return nil, err
		}
		parent = hp
	}
	body := struct {
		Type      string     `json:"type"`
		Status    string     `json:"status"`
		Title     string     `json:"title"`
		Space     v1SpaceRef `json:"space"`
		Ancestors []v1Ref    `json:"ancestors"`
		Body      v1Body     `json:"body"`
	}{"page", "current", p.Title, v1SpaceRef{p.SpaceID}, []v1Ref{{parent}}, v1Body{storageBody{"storage", p.Body}}}
	return c.writePage(ctx, "POST", v1Content, body, parent)
}

func (c *dataCenter) updatePage(ctx context.Context, u PageUpdate) (*Page, error) {
	body := struct {
		ID        string      `json:"id"`
		Type      string      `json:"type"`
		Status    string      `json:"status"`
		Title     string      `json:"title"`
		Space     *v1SpaceRef `json:"space,omitempty"`
		Ancestors []v1Ref     `json:"ancestors,omitempty"`
		Body      v1Body      `json:"body"`
		Version   version     `json:"version"`
	}{ID: u.ID, Type: "page", Status: "current", Title: u.Title,
		Body: v1Body{storageBody{"storage", u.Body}}, Version: version{u.Version, u.Message}}
	if u.SpaceID != "" {
		body.Space = &v1SpaceRef{u.SpaceID}
	}
	// Always name the current parent, so an update never moves the page.
	if u.ParentID != "" {
		body.Ancestors = []v1Ref{{u.ParentID}}
	}
	return c.writePage(ctx, "PUT", v1Content+"/"+u.ID, body, u.ParentID)
}

// writeServerPage sends a create or update. v1 answers without ancestors
// unless asked, so the parent we sent is the page's parent.
func (c *dataCenter) writePage(ctx context.Context, method, path string, body any, parent string) (*Page, error) {
	rd, err := jsonBody(body)
	if err != nil {
		return nil, err
	}
	var out v1Page
	if err := c.do(ctx, request{method: method, path: path, body: rd, contentType: "application/json"}, &out); err != nil {
		return nil, err
	}
	pg, err := c.answered(out.page(), "", method, path)
	if err != nil {
		return nil, err
	}
	if pg.ParentID == "" {
		pg.ParentID = parent
	}
	return pg, nil
}

func (c *dataCenter) deletePage(ctx context.Context, id string) error {
	return c.do(ctx, request{method: "DELETE", path: v1Content + "/" + id}, nil)
}

// listSpaces pages through GET /rest/api/space by start/limit. It asks for
// one more than max so "more" is known without another call; Data Center
// may cap limit silently, so the walk follows the offsets it answers.
func (c *dataCenter) listSpaces(ctx context.Context, max int) (spaces []Space, more bool, err error) {
	q := url.Values{"status": {"current"}, "limit": {strconv.Itoa(min(max+1, v1PageSize))}}
	for start := 0; ; {
		var out struct {
			Results []v1Space `json:"results"`
			Links   struct {
				Next string `json:"next"`
			} `json:"_links"`
		}
		if err := c.do(ctx, request{method: "GET", path: v1SpacePath, query: q}, &out); err != nil {
			return nil, false, err
		}
		for _, s := range out.Results {
			if len(spaces) == max {
				return spaces, true, nil
			}
			spaces = append(spaces, s.space())
		}
		next, ok := nextStart(out.Links.Next)
		if !ok || next <= start || len(out.Results) == 0 {
			return spaces, false, nil
		}
		start = next
		q.Set("start", strconv.Itoa(start))
	}
}

// LoginDenied reports Data Center's CAPTCHA lock: after failed logins it
// answers 401 with X-Seraph-LoginReason: AUTHENTICATION_DENIED until the
// user logs in once in a browser. Every further attempt keeps it locked.
func (e *Error) LoginDenied() bool {
	return e.StatusCode == 401 && strings.EqualFold(e.LoginReason, "AUTHENTICATION_DENIED")
}
