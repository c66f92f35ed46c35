package jobs

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxMessageTitle keeps a version message to one readable line of the
// page history (and well inside what Confluence stores for it).
const maxMessageTitle = 120

// versionMessage is the version.message of every page update (Cloud v2 and
// Data Center v1 alike), so the page history says where a change came
// from: the meeting (its title, and when it was held) and which revision
// of its report.
func versionMessage(p *PublishPayload) string {
	title := strings.Join(strings.Fields(p.Report.Title), " ")
	if utf8.RuneCountInString(title) > maxMessageTitle {
		title = string([]rune(title)[:maxMessageTitle-1]) + "…"
	}
	meeting := fmt.Sprintf("%q", title)
	if held := p.Report.HeldAt; len(held) >= len("2006-01-02") {
		meeting += " held " + held[:len("2006-01-02")]
	}
	return fmt.Sprintf("retropub: from the meeting %s, report %s revision %d", meeting, p.Report.ID, p.Report.Revision)
}
