package jobs

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"retropub/confluence"
)

// besideArchivedSuffix names the parent retropub makes beside an archived
// one: "Retrospectives (retropub)".
const besideArchivedSuffix = "retropub"

// findParent finds the parent page for title and says which title it goes
// by. Archived pages hold their titles (confluence-api.md §1.10) but take
// no new children (Confluence answers 404 for the parent), so an archived
// holder is not used: the parent is the current page titled
// "<title> (retropub)" beside it, found here or created by the caller
// under that title. A person archived the old parent to retire it; new
// reports should not be filed into the archive, and a second, clearly
// named parent is where they look next. ErrNotFound: create it as use.
func (r *publishRun) findParent(ctx context.Context, spaceID, title string) (pg *confluence.Page, use string, err error) {
	pg, err = findPageByTitle(ctx, r.cf, spaceID, title)
	if err != nil || pg.Status != "archived" {
		return pg, title, err
	}
	beside := titleWithSuffix(title, besideArchivedSuffix)
	r.log.Info("parent page is archived in Confluence; reports go below a parent beside it",
		zap.String("archived_id", pg.ID), zap.String("title", title), zap.String("beside", beside))
	pg, err = findPageByTitle(ctx, r.cf, spaceID, beside)
	if err == nil && pg.Status == "archived" {
		return nil, beside, permanent(fmt.Errorf("parent pages %q and %q are both archived in space %s: unarchive one in Confluence, or set target.parent_title",
			title, beside, r.p.Target.SpaceKey))
	}
	return pg, beside, err
}
