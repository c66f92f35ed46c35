package confluence

import (
	"cmp"
	"context"
	"net/url"
	"strconv"
	"strings"
	"unicode"
)

// The calls behind the set-up screens: who am I, which spaces, which
// parent pages (DESIGN §2 integration:check / integration:search).

// User is the account the integration's credentials act as.
type User struct {
	AccountID   string `json:"accountId"`
	DisplayName string `json:"displayName"`
	PublicName  string `json:"publicName"`
}

// CurrentUser returns the account the credentials belong to: the cheapest
// call that proves they work.
func (c *Client) CurrentUser(ctx context.Context) (*User, error) {
	var u User
	if err := c.do(ctx, request{method: "GET", path: c.v1 + "/user/current"}, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// PageHit is one search result.
type PageHit struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	URL   string `json:"url,omitempty"`
}

// SearchPages finds current pages in a space whose title contains the
// words of query (CQL title ~, with a trailing wildcard for autocomplete).
// Characters CQL would read as syntax are dropped from query; a query with
// nothing left is an *InputError (ErrBadRequest) without a request.
func (c *Client) SearchPages(ctx context.Context, spaceKey, query string, limit int) ([]PageHit, error) {
	text := cqlText(query)
	if !strings.ContainsFunc(text, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) {
		return nil, &InputError{Field: "query", Reason: "the search text has no letters or digits"}
	}
	if spaceKey == "" || strings.ContainsAny(spaceKey, "\"\\ ") {
		return nil, &InputError{Field: "space_key", Reason: "invalid space key"}
	}
	cql := `type = page AND space = "` + spaceKey + `" AND title ~ "` + text + `*"`
	q := url.Values{"cql": {cql}, "limit": {strconv.Itoa(limit)}}
	var out struct {
		Results []struct {
			ID    string `json:"id"`
			Title string `json:"title"`
			Links struct {
				WebUI string `json:"webui"`
			} `json:"_links"`
		} `json:"results"`
		Links struct {
			Base string `json:"base"`
		} `json:"_links"`
	}
	if err := c.do(ctx, request{method: "GET", path: c.v1 + "/content/search", query: q}, &out); err != nil {
		return nil, err
	}
	hits := make([]PageHit, 0, len(out.Results))
	for _, r := range out.Results {
		h := PageHit{ID: r.ID, Title: r.Title}
		if r.Links.WebUI != "" {
			h.URL = absoluteURL(cmp.Or(out.Links.Base, c.site), r.Links.WebUI)
		}
		hits = append(hits, h)
	}
	return hits, nil
}

// cqlText keeps letters, digits, spaces and harmless punctuation: quotes
// and backslashes end or escape the CQL string (Cloud answers escaped
// quotes with 400), and Lucene's operators (: * ? ~ ( ) …) change the query.
func cqlText(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '.' || r == '_' || r == '\'' || r == ',' || r == '#' || r == '@':
			b.WriteRune(r)
		case strings.ContainsRune("\"\\:*?~()[]{}^!+&|/-", r):
			b.WriteRune(' ')
		case r < ' ':
			b.WriteRune(' ')
		default:
			b.WriteRune(r)
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}
