package jobs

import (
	"strings"
	"testing"
)

func TestVersionMessageNamesMeetingAndRevision(t *testing.T) {
	p := &PublishPayload{Report: Report{ID: "r-42", Revision: 3, Title: "Sprint  42\nretro", HeldAt: "2026-11-27T15:00:00Z"}}
	want := `retropub: from the meeting "Sprint 42 retro" held 2026-11-27, report r-42 revision 3`
	if got := versionMessage(p); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	p.Report.Title, p.Report.HeldAt = strings.Repeat("é", 500), ""
	if got := versionMessage(p); len([]rune(got)) > 200 || !strings.Contains(got, "…") || !strings.HasSuffix(got, "revision 3") {
		t.Fatalf("long title: %s", got)
	}
}
