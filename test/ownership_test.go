package test

import (
	"strings"
	"testing"

	"retropub/confluence/confluencetest"
	"retropub/jobs"
)

// A page anyone can plant (issue 13 item 4): a space editor creates a page
// with the report's title and retropub's footer before the report is
// published (or after its mapping is lost). The worker does not take it
// over: outside the expected parent not even with the plain footer, and
// under it not with a forged proof. It publishes under a disambiguated
// title instead and leaves the planted pages as they were.
// TestExpiredMappingFindsItsPage shows our own pages are still adopted.
func TestPlantedPagesNotAdopted(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		e.startWorker(2)
		// The parent page, made by a first publish.
		result(t, e.publish(e.retro("first", 1, 0)))
		parent := e.onePage("Retrospectives")

		// Outside the parent, with the footer a real page has.
		outside := e.retro("planted-out", 1, 0)
		outsideBody := jobs.RenderPage(outside)
		outsideID := e.fake.AddPage("ENG", "", outside.Report.Title, outsideBody)

		// Under the parent, with a proof in our format that does not verify.
		forged := e.retro("planted-in", 1, 0)
		kid, _, _ := strings.Cut(e.keys, ":")
		forgedBody := strings.TrimSuffix(jobs.RenderPage(forged), "</sub></p>\n") +
			"<br/>retropub proof: v1." + kid + ".AAAAAAAAAAAAAAAAAAAAAA</sub></p>\n"
		forgedID := e.fake.AddPage("ENG", parent.ID, forged.Report.Title, forgedBody)

		for _, c := range []struct {
			p        *jobs.PublishPayload
			planted  string
			body     string
			parentID string
		}{{outside, outsideID, outsideBody, ""}, {forged, forgedID, forgedBody, parent.ID}} {
			res := result(t, e.publish(c.p))
			if res.PageID == c.planted {
				t.Fatalf("%s: the planted page %s was taken over", c.p.Report.ID, c.planted)
			}
			mine := pageByID(t, e.fake, res.PageID)
			if mine.ParentID != parent.ID || mine.Title == c.p.Report.Title {
				t.Errorf("%s: published as %q under %s, want a disambiguated title under %s", c.p.Report.ID, mine.Title, mine.ParentID, parent.ID)
			}
			if planted := pageByID(t, e.fake, c.planted); planted.Body != c.body || planted.Version != 1 {
				t.Errorf("%s: the planted page was written (version %d)", c.p.Report.ID, planted.Version)
			}
		}
	})
}

func pageByID(t *testing.T, s *confluencetest.Server, id string) confluencetest.Page {
	t.Helper()
	for _, p := range s.Pages("ENG") {
		if p.ID == id {
			return p
		}
	}
	t.Fatalf("no page %s", id)
	return confluencetest.Page{}
}
