package confluence

import "context"

// flavour is what differs between Cloud (REST v2 through the gateway) and
// Server/Data Center (REST v1 at the customer's base URL). Each flavour is
// one type, chosen by the constructor; a method one of them lacks does not
// compile (see the assertions below), so a call cannot silently take the
// other flavour's path, as the Data Center spaces listing once did.
//
// What does not differ (attachments, CQL search, the current user: v1 on
// both, under conn.v1) is written once, on Client.
type flavour interface {
	spaceByKey(ctx context.Context, key string) (*Space, error)
	listSpaces(ctx context.Context, max int) (spaces []Space, more bool, err error)
	pageByTitle(ctx context.Context, spaceID, title string, withBody bool) (*Page, error)
	pageByTitleFold(ctx context.Context, spaceID, title string) (*Page, error)
	pageByID(ctx context.Context, id string, withBody bool) (*Page, error)
	createPage(ctx context.Context, p NewPage) (*Page, error)
	updatePage(ctx context.Context, u PageUpdate) (*Page, error)
	deletePage(ctx context.Context, id string) error
}

var (
	_ flavour = (*cloud)(nil)
	_ flavour = (*dataCenter)(nil)
)

// SpaceByKey resolves a space key to the space. A missing space (or one
// the credentials cannot see) is ErrNotFound. On Data Center, Space.ID is
// the key: v1 addresses spaces by key.
func (c *Client) SpaceByKey(ctx context.Context, key string) (*Space, error) {
	return c.api.spaceByKey(ctx, key)
}

// ListSpaces returns up to max current spaces the credentials can see, in
// Confluence's order, following the flavour's paging; more reports whether
// there were more than max.
func (c *Client) ListSpaces(ctx context.Context, max int) (spaces []Space, more bool, err error) {
	return c.api.listSpaces(ctx, max)
}

// PageByTitle finds the current page with exactly this title in a space.
// Confluence's title filter is case-sensitive while uniqueness is not, so
// a miss here does not prove the title is free (see PageByTitleFold).
func (c *Client) PageByTitle(ctx context.Context, spaceID, title string, withBody bool) (*Page, error) {
	return c.api.pageByTitle(ctx, spaceID, title, withBody)
}

// PageByTitleFold walks the space's pages and compares titles
// case-insensitively: the fallback after "title already exists" when the
// exact look-up found nothing. It costs one call per 100–250 pages.
func (c *Client) PageByTitleFold(ctx context.Context, spaceID, title string) (*Page, error) {
	return c.api.pageByTitleFold(ctx, spaceID, title)
}

// PageByID reads a page's current state through a call DESIGN §4 allows
// (the v2 list on Cloud, CQL search on Data Center). Trashed pages are
// not found.
func (c *Client) PageByID(ctx context.Context, id string, withBody bool) (*Page, error) {
	if err := checkPageID(id); err != nil {
		return nil, err
	}
	return c.api.pageByID(ctx, id, withBody)
}

// CreatePage creates a published page. An empty ParentID puts it below
// the home page (never root-level). A taken title is ErrTitleExists.
func (c *Client) CreatePage(ctx context.Context, p NewPage) (*Page, error) {
	return c.api.createPage(ctx, p)
}

// UpdatePage replaces a page's title and body. A stale version is
// ErrVersionConflict; a deleted page ErrNotFound.
func (c *Client) UpdatePage(ctx context.Context, u PageUpdate) (*Page, error) {
	if err := checkPageID(u.ID); err != nil {
		return nil, err
	}
	return c.api.updatePage(ctx, u)
}

// DeletePage moves a page to the trash.
func (c *Client) DeletePage(ctx context.Context, id string) error {
	if err := checkPageID(id); err != nil {
		return err
	}
	return c.api.deletePage(ctx, id)
}
