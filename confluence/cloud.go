package confluence

import (
	"context"
	"net/url"
	"strconv"
	"strings"
)

// cloud is the Cloud flavour: REST v2 for spaces and pages, through the
// OAuth gateway (…/ex/confluence/{cloudId}/wiki/api/v2). v2 addresses a
// space by its numeric id.
type cloud struct{ *conn }

const (
	v2Spaces = "/wiki/api/v2/spaces"
	v2Pages  = "/wiki/api/v2/pages"
)

func (c *cloud) spaceByKey(ctx context.Context, key string) (*Space, error) {
	var out struct {
		Results []Space `json:"results"`
	}
	q := url.Values{"keys": {key}, "limit": {"1"}}
	if err := c.do(ctx, request{method: "GET", path: v2Spaces, query: q}, &out); err != nil {
		return nil, err
	}
	for i := range out.Results {
		// After a rename Cloud answers with the system key in key and the
		// key people use in currentActiveAlias.
		if sp := &out.Results[i]; sp.answersTo(key) {
			if err := checkAnswerID("GET", v2Spaces, "space", sp.ID); err != nil {
				return nil, err
			}
			return sp, nil
		}
	}
	return nil, &NotFoundError{Method: "GET", Path: v2Spaces, What: "space " + strconv.Quote(key)}
}

func (c *cloud) listSpaces(ctx context.Context, max int) (spaces []Space, more bool, err error) {
	q := url.Values{"status": {"current"}, "limit": {strconv.Itoa(min(max, 250))}}
	seen := map[string]bool{}
	for {
		var out struct {
			Results []Space `json:"results"`
			Links   struct {
				Next string `json:"next"`
			} `json:"_links"`
		}
		if err := c.do(ctx, request{method: "GET", path: v2Spaces, query: q}, &out); err != nil {
			return nil, false, err
		}
		for _, s := range out.Results {
			if len(spaces) == max {
				return spaces, true, nil
			}
			spaces = append(spaces, s)
		}
		cursor := nextCursor(out.Links.Next)
		if cursor == "" || seen[cursor] {
			return spaces, false, nil
		}
		seen[cursor] = true
		q.Set("cursor", cursor)
	}
}

// titleHolders are the statuses whose pages hold a title: an archived page
// keeps its title, so a look-up that asks only for current pages misses
// the page a create is then refused for (confluence-api.md §1.10). The
// look-ups find archived holders too, and the caller uses what they find
// (Page.Status says "archived").
var titleHolders = []string{"current", "archived"}

func (c *cloud) pageByTitle(ctx context.Context, spaceID, title string, withBody bool) (*Page, error) {
	q := url.Values{"space-id": {spaceID}, "title": {title}, "status": titleHolders, "limit": {"5"}}
	want := strings.TrimSpace(title)
	return c.findPage(ctx, q, withBody, false, func(p *Page) bool { return strings.TrimSpace(p.Title) == want })
}

func (c *cloud) pageByTitleFold(ctx context.Context, spaceID, title string) (*Page, error) {
	q := url.Values{"space-id": {spaceID}, "status": titleHolders, "limit": {"250"}}
	want := strings.TrimSpace(title)
	return c.findPage(ctx, q, false, true, func(p *Page) bool { return strings.EqualFold(strings.TrimSpace(p.Title), want) })
}

// pageByID reads through the list endpoint (GET /pages?id=), the one
// DESIGN §4 allows.
func (c *cloud) pageByID(ctx context.Context, id string, withBody bool) (*Page, error) {
	q := url.Values{"id": {id}, "limit": {"1"}}
	return c.findPage(ctx, q, withBody, false, func(p *Page) bool {
		return p.ID == id && p.Status != "trashed" && p.Status != "deleted"
	})
}

// findPage lists pages with q and returns the first that matches; with
// paginate it follows the cursor (guarding against an echoed cursor).
func (c *cloud) findPage(ctx context.Context, q url.Values, withBody, paginate bool, match func(*Page) bool) (*Page, error) {
	if withBody {
		q.Set("body-format", "storage")
	}
	seen := map[string]bool{}
	for {
		var out pageList
		if err := c.do(ctx, request{method: "GET", path: v2Pages, query: q}, &out); err != nil {
			return nil, err
		}
		for i := range out.Results {
			if match(&out.Results[i]) {
				return c.answered(&out.Results[i], out.Links.Base, "GET", v2Pages)
			}
		}
		cursor := nextCursor(out.Links.Next)
		if !paginate || cursor == "" || seen[cursor] {
			return nil, &NotFoundError{Method: "GET", Path: v2Pages, What: "page"}
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

func (c *cloud) createPage(ctx context.Context, p NewPage) (*Page, error) {
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
	err = c.do(ctx, request{method: "POST", path: v2Pages, body: rd, contentType: "application/json"}, &out)
	if err != nil {
		return nil, err
	}
	return c.answered(&out, "", "POST", v2Pages)
}

func (c *cloud) updatePage(ctx context.Context, u PageUpdate) (*Page, error) {
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
	path := v2Pages + "/" + url.PathEscape(u.ID)
	if err := c.do(ctx, request{method: "PUT", path: path, body: rd, contentType: "application/json"}, &out); err != nil {
		return nil, err
	}
	return c.answered(&out, "", "PUT", v2Pages+"/{id}")
}

func (c *cloud) deletePage(ctx context.Context, id string) error {
	return c.do(ctx, request{method: "DELETE", path: v2Pages + "/" + id}, nil)
}
