package confluence

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Space is a Confluence space; v2 addresses it by numeric id, not key.
type Space struct {
	ID         string `json:"id"`
	Key        string `json:"key"`
	Name       string `json:"name"`
	HomepageID string `json:"homepageId"`
}

// Page is a page as v2 returns it.
type Page struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Title    string `json:"title"`
	SpaceID  string `json:"spaceId"`
	ParentID string `json:"parentId"`
	Version  struct {
		Number int `json:"number"`
	} `json:"version"`
	Body struct {
		Storage struct {
			Value string `json:"value"`
		} `json:"storage"`
	} `json:"body"`
	Links struct {
		WebUI string `json:"webui"`
		Base  string `json:"base"`
	} `json:"_links"`
}

// URL is the page's address for people, when Confluence said it.
func (p *Page) URL() string {
	if p.Links.Base == "" {
		return p.Links.WebUI
	}
	return p.Links.Base + p.Links.WebUI
}

type pageList struct {
	Results []Page `json:"results"`
	Links   struct {
		Next string `json:"next"`
		Base string `json:"base"`
	} `json:"_links"`
}

// SpaceByKey resolves a space key to the space. A missing space (or one
// the credentials cannot see) is ErrNotFound.
func (c *Client) SpaceByKey(ctx context.Context, key string) (*Space, error) {
	var out struct {
		Results []Space `json:"results"`
	}
	q := url.Values{"keys": {key}, "limit": {"1"}}
	if err := c.do(ctx, request{method: "GET", path: "/wiki/api/v2/spaces", query: q}, &out); err != nil {
		return nil, err
	}
	for i := range out.Results {
		if strings.EqualFold(out.Results[i].Key, key) {
			return &out.Results[i], nil
		}
	}
	return nil, &Error{StatusCode: 404, Method: "GET", Path: "/wiki/api/v2/spaces", Message: fmt.Sprintf("space %q not found or not visible", key)}
}

// PageByTitle finds the current page with exactly this title in a space.
// Confluence's title filter is case-sensitive while uniqueness is not, so
// a miss here does not prove the title is free (see PageByTitleFold).
func (c *Client) PageByTitle(ctx context.Context, spaceID, title string, withBody bool) (*Page, error) {
	q := url.Values{"space-id": {spaceID}, "title": {title}, "status": {"current"}, "limit": {"5"}}
	want := strings.TrimSpace(title)
	return c.findPage(ctx, q, withBody, false, func(p *Page) bool { return strings.TrimSpace(p.Title) == want })
}

// PageByTitleFold walks the space's pages and compares titles
// case-insensitively: the fallback after "title already exists" when the
// exact look-up found nothing. It costs one call per 250 pages.
func (c *Client) PageByTitleFold(ctx context.Context, spaceID, title string) (*Page, error) {
	q := url.Values{"space-id": {spaceID}, "status": {"current"}, "limit": {"250"}}
	want := strings.TrimSpace(title)
	return c.findPage(ctx, q, false, true, func(p *Page) bool { return strings.EqualFold(strings.TrimSpace(p.Title), want) })
}

// PageByID reads a page's current state through the list endpoint
// (GET /pages?id=), the one DESIGN §4 allows. Trashed pages are not found.
func (c *Client) PageByID(ctx context.Context, id string, withBody bool) (*Page, error) {
	q := url.Values{"id": {id}, "limit": {"1"}}
	return c.findPage(ctx, q, withBody, false, func(p *Page) bool {
		return p.ID == id && p.Status != "trashed" && p.Status != "deleted"
	})
}

// findPage lists pages with q and returns the first that matches; with
// paginate it follows the cursor (guarding against an echoed cursor).
func (c *Client) findPage(ctx context.Context, q url.Values, withBody, paginate bool, match func(*Page) bool) (*Page, error) {
	if withBody {
		q.Set("body-format", "storage")
	}
	seen := map[string]bool{}
	for {
		var out pageList
		if err := c.do(ctx, request{method: "GET", path: "/wiki/api/v2/pages", query: q}, &out); err != nil {
			return nil, err
		}
		for i := range out.Results {
			if match(&out.Results[i]) {
				out.Results[i].Links.Base = out.Links.Base
				return &out.Results[i], nil
			}
		}
		cursor := nextCursor(out.Links.Next)
		if !paginate || cursor == "" || seen[cursor] {
			return nil, &Error{StatusCode: 404, Method: "GET", Path: "/wiki/api/v2/pages", Message: "no such page"}
		}
		seen[cursor] = true
		q.Set("cursor", cursor)
	}
}

// nextCursor takes the cursor out of a site-relative _links.next; the link
// itself is rooted on the site, not on the gateway, so it is re-issued.
func nextCursor(next string) string {
	if next == "" {
		return ""
	}
	u, err := url.Parse(next)
	if err != nil {
		return ""
	}
	return u.Query().Get("cursor")
}

// NewPage is what CreatePage sends.
type NewPage struct {
	SpaceID  string
	ParentID string // empty: below the space's home page
	Title    string
	Body     string // storage format
}

type storageBody struct {
	Representation string `json:"representation"`
	Value          string `json:"value"`
}

// CreatePage creates a published page. An empty ParentID puts it below
// the home page (never root-level). A taken title is ErrTitleExists.
func (c *Client) CreatePage(ctx context.Context, p NewPage) (*Page, error) {
	body := struct {
		SpaceID  string      `json:"spaceId"`
		Status   string      `json:"status"`
		Title    string      `json:"title"`
		ParentID string      `json:"parentId,omitempty"`
		Body     storageBody `json:"body"`
	}{p.SpaceID, "current", p.Title, p.ParentID, storageBody{"storage", p.Body}}
	rd, err := jsonBody(body)
	if err != nil {
		return nil, err
	}
	var out Page
	err = c.do(ctx, request{method: "POST", path: "/wiki/api/v2/pages", body: rd, contentType: "application/json"}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// PageUpdate is what UpdatePage sends; Version is the new number
// (current + 1). ParentID is always sent so the page is never moved.
type PageUpdate struct {
	ID, SpaceID, ParentID, Title, Body string
	Version                            int
	Message                            string
}

// UpdatePage replaces a page's title and body. A stale version is
// ErrVersionConflict; a deleted page ErrNotFound.
func (c *Client) UpdatePage(ctx context.Context, u PageUpdate) (*Page, error) {
	type version struct {
		Number  int    `json:"number"`
		Message string `json:"message,omitempty"`
	}
	body := struct {
		ID       string      `json:"id"`
		Status   string      `json:"status"`
		Title    string      `json:"title"`
		SpaceID  string      `json:"spaceId,omitempty"`
		ParentID string      `json:"parentId,omitempty"`
		Body     storageBody `json:"body"`
		Version  version     `json:"version"`
	}{u.ID, "current", u.Title, u.SpaceID, u.ParentID, storageBody{"storage", u.Body}, version{u.Version, u.Message}}
	rd, err := jsonBody(body)
	if err != nil {
		return nil, err
	}
	var out Page
	path := "/wiki/api/v2/pages/" + url.PathEscape(u.ID)
	if err := c.do(ctx, request{method: "PUT", path: path, body: rd, contentType: "application/json"}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeletePage moves a page to the trash.
func (c *Client) DeletePage(ctx context.Context, id string) error {
	if _, err := strconv.ParseUint(id, 10, 64); err != nil {
		return fmt.Errorf("confluence: invalid page id %q", id)
	}
	return c.do(ctx, request{method: "DELETE", path: "/wiki/api/v2/pages/" + id}, nil)
}
