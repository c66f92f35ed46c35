package confluence

import "strings"

// Space is a Confluence space. On Cloud, v2 addresses it by numeric id; on
// Data Center, v1 by key, so there ID holds the key.
type Space struct {
	ID         string `json:"id"`
	Key        string `json:"key"`
	Name       string `json:"name"`
	HomepageID string `json:"homepageId"`
	// CurrentActiveAlias is the key people see after a Cloud admin renamed
	// the space's key (Key stays the system key); "" when never renamed.
	CurrentActiveAlias string `json:"currentActiveAlias,omitempty"`
}

// answersTo reports whether the space is the one key names: its key, or
// the alias it was renamed to (keys compare case-insensitively).
func (s *Space) answersTo(key string) bool {
	return strings.EqualFold(s.Key, key) || (s.CurrentActiveAlias != "" && strings.EqualFold(s.CurrentActiveAlias, key))
}

// Page is a page as v2 returns it; the Data Center flavour fills the same
// fields from v1.
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

// URL is the page's address for people. Pages the client returns carry an
// absolute base (the answer's _links.base, else the site or base URL the
// client was built with), so this is absolute whenever Confluence named
// the page's webui link.
func (p *Page) URL() string {
	return absoluteURL(p.Links.Base, p.Links.WebUI)
}

// absoluteURL joins a base (…/wiki on Cloud, the base URL with its context
// path on Data Center) and a webui link; a link that is already absolute
// is kept.
func absoluteURL(base, webui string) string {
	if webui == "" || strings.HasPrefix(webui, "https://") || strings.HasPrefix(webui, "http://") {
		return webui
	}
	return strings.TrimRight(base, "/") + webui
}

// answered is the one way a page from an answer leaves the client: its id
// checked (an *InvalidIDError naming the call that answered it, so a
// malformed id never reaches the mapping) and its base made absolute.
func (c *conn) answered(p *Page, listBase, method, path string) (*Page, error) {
	if err := checkAnswerID(method, path, "page", p.ID); err != nil {
		return nil, err
	}
	for _, b := range []string{p.Links.Base, listBase, c.site} {
		if b != "" {
			p.Links.Base = b
			break
		}
	}
	return p, nil
}

type pageList struct {
	Results []Page `json:"results"`
	Links   struct {
		Next string `json:"next"`
		Base string `json:"base"`
	} `json:"_links"`
}

// NewPage is what CreatePage sends.
type NewPage struct {
	SpaceID  string
	ParentID string // empty: below the space's home page
	Title    string
	Body     string // storage format
}

// PageUpdate is what UpdatePage sends; Version is the new number
// (current + 1). ParentID is always sent so the page is never moved.
type PageUpdate struct {
	ID, SpaceID, ParentID, Title, Body string
	Version                            int
	Message                            string
}

type storageBody struct {
	Representation string `json:"representation"`
	Value          string `json:"value"`
}

// version is the version object of an update, v1 and v2 alike.
type version struct {
	Number  int    `json:"number"`
	Message string `json:"message,omitempty"`
}
