package confluence

// Space is a Confluence space. On Cloud, v2 addresses it by numeric id; on
// Data Center, v1 by key, so there ID holds the key.
type Space struct {
	ID         string `json:"id"`
	Key        string `json:"key"`
	Name       string `json:"name"`
	HomepageID string `json:"homepageId"`
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
