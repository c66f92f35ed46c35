package confluence

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Spaces and pages on Server/Data Center, REST v1 (confluence-api.md §2).
// The exported methods in pages.go hand over to these on a Server client.

const (
	v1Content = "/rest/api/content"
	v1Space   = "/rest/api/space"
	v1Search  = "/rest/api/content/search"
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

// page converts to the flavour-neutral Page; base is the list's
// _links.base when the item has none.
func (v *v1Page) page(base string) *Page {
	p := v.Page
	p.SpaceID = v.Space.Key
	if n := len(v.Ancestors); n > 0 {
		p.ParentID = v.Ancestors[n-1].ID
	}
	if p.Links.Base == "" {
		p.Links.Base = base
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

func notFound(path, msg string) error {
	return &Error{StatusCode: 404, Method: "GET", Path: path, Message: msg}
}

func expand(withBody bool) string {
	if withBody {
		return v1Expand + ",body.storage"
	}
	return v1Expand
}

func (c *Client) serverSpaceByKey(ctx context.Context, key string) (*Space, error) {
	var out struct {
		Results []struct {
			Key      string `json:"key"`
			Name     string `json:"name"`
			Homepage struct {
				ID string `json:"id"`
			} `json:"homepage"`
		} `json:"results"`
	}
	q := url.Values{"spaceKey": {key}, "expand": {"homepage"}, "limit": {"1"}}
	if err := c.do(ctx, request{method: "GET", path: v1Space, query: q}, &out); err != nil {
		return nil, err
	}
	for _, s := range out.Results {
		if strings.EqualFold(s.Key, key) {
			c.homes.Store(s.Key, s.Homepage.ID)
			return &Space{ID: s.Key, Key: s.Key, Name: s.Name, HomepageID: s.Homepage.ID}, nil
		}
	}
	return nil, notFound(v1Space, fmt.Sprintf("space %q not found or not visible", key))
}

// homepage returns the home page of a space: v1 puts a page created
// without ancestors at the top of the space, not below its home page.
func (c *Client) homepage(ctx context.Context, key string) (string, error) {
	if id, ok := c.homes.Load(key); ok && id != "" {
		return id.(string), nil
	}
	sp, err := c.serverSpaceByKey(ctx, key)
	if err != nil {
		return "", err
	}
	if sp.HomepageID == "" {
		return "", fmt.Errorf("confluence: space %s has no home page to put pages below; set root_page_id", key)
	}
	return sp.HomepageID, nil
}

func (c *Client) serverPageByTitle(ctx context.Context, spaceKey, title string, withBody bool) (*Page, error) {
	q := url.Values{"type": {"page"}, "spaceKey": {spaceKey}, "title": {title}, "status": {"current"},
		"expand": {expand(withBody)}, "limit": {"5"}}
	var out v1List
	if err := c.do(ctx, request{method: "GET", path: v1Content, query: q}, &out); err != nil {
		return nil, err
	}
	for i := range out.Results {
		if strings.TrimSpace(out.Results[i].Title) == strings.TrimSpace(title) {
			return out.Results[i].page(out.Links.Base), nil
		}
	}
	return nil, notFound(v1Content, "no page with that title")
}

func (c *Client) serverPageByTitleFold(ctx context.Context, spaceKey, title string) (*Page, error) {
	q := url.Values{"type": {"page"}, "spaceKey": {spaceKey}, "status": {"current"},
		"expand": {v1Expand}, "limit": {strconv.Itoa(v1PageSize)}}
	want := strings.TrimSpace(title)
	for start := 0; ; {
		var out v1List
		if err := c.do(ctx, request{method: "GET", path: v1Content, query: q}, &out); err != nil {
			return nil, err
		}
		for i := range out.Results {
			if strings.EqualFold(strings.TrimSpace(out.Results[i].Title), want) {
				return out.Results[i].page(out.Links.Base), nil
			}
		}
		next, ok := nextStart(out.Links.Next)
		if !ok || next <= start {
			return nil, notFound(v1Content, "no page with that title")
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

// serverPageByID reads a page through CQL search: DESIGN §4 lists no GET
// of /rest/api/content/{id} on Server. Trashed pages are not found.
func (c *Client) serverPageByID(ctx context.Context, id string, withBody bool) (*Page, error) {
	if _, err := strconv.ParseUint(id, 10, 64); err != nil {
		return nil, fmt.Errorf("confluence: invalid page id %q", id)
	}
	q := url.Values{"cql": {"id = " + id}, "expand": {expand(withBody)}, "limit": {"1"}}
	var out v1List
	if err := c.do(ctx, request{method: "GET", path: v1Search, query: q}, &out); err != nil {
		return nil, err
	}
	for i := range out.Results {
		if out.Results[i].ID == id && out.Results[i].Status == "current" {
			return out.Results[i].page(out.Links.Base), nil
		}
	}
	return nil, notFound(v1Search, "page "+id+" not found")
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

func (c *Client) serverCreatePage(ctx context.Context, p NewPage) (*Page, error) {
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
	return c.writeServerPage(ctx, "POST", v1Content, body, parent)
}

func (c *Client) serverUpdatePage(ctx context.Context, u PageUpdate) (*Page, error) {
	if _, err := strconv.ParseUint(u.ID, 10, 64); err != nil {
		return nil, fmt.Errorf("confluence: invalid page id %q", u.ID)
	}
	type version struct {
		Number  int    `json:"number"`
		Message string `json:"message,omitempty"`
	}
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
	return c.writeServerPage(ctx, "PUT", v1Content+"/"+u.ID, body, u.ParentID)
}

// writeServerPage sends a create or update. v1 answers without ancestors
// unless asked, so the parent we sent is the page's parent.
func (c *Client) writeServerPage(ctx context.Context, method, path string, body any, parent string) (*Page, error) {
	rd, err := jsonBody(body)
	if err != nil {
		return nil, err
	}
	var out v1Page
	if err := c.do(ctx, request{method: method, path: path, body: rd, contentType: "application/json"}, &out); err != nil {
		return nil, err
	}
	pg := out.page("")
	if pg.ParentID == "" {
		pg.ParentID = parent
	}
	return pg, nil
}

func (c *Client) serverDeletePage(ctx context.Context, id string) error {
	return c.do(ctx, request{method: "DELETE", path: v1Content + "/" + id}, nil)
}
