package jobs

import (
	"slices"
	"strings"
)

// The OAuth scopes publishing needs (confluence-api.md §3.3): the granular
// set, or the classic one. Either is enough.
var (
	PublishScopes = []string{
		"read:space:confluence", "read:page:confluence", "write:page:confluence",
		"read:attachment:confluence", "write:attachment:confluence", "read:content-details:confluence",
	}
	PublishScopesClassic = []string{
		"read:confluence-space.summary", "read:confluence-content.summary", "read:confluence-content.all",
		"write:confluence-content", "write:confluence-file",
	}
)

// RequestedScopes is what `worker integrations oauth-url` asks for: the
// granular publish set, CQL search for the parent-page picker, and
// offline_access for a refresh token.
func RequestedScopes() []string {
	return append(slices.Clone(PublishScopes), "search:confluence", "offline_access")
}

// checkScopes compares the granted scopes with what publishing needs. An
// empty list is not known (a record put by hand) and passes: Confluence's
// own 401 "scope does not match" still catches a gap. A gap needs a new
// consent with the right scopes, so it is a re-authorise error naming them.
func checkScopes(integration string, granted []string) error {
	if len(granted) == 0 {
		return nil
	}
	missing := func(need []string) []string {
		var out []string
		for _, s := range need {
			if !slices.Contains(granted, s) {
				out = append(out, s)
			}
		}
		return out
	}
	gran, classic := missing(PublishScopes), missing(PublishScopesClassic)
	if len(gran) == 0 || len(classic) == 0 {
		return nil
	}
	// Name the gap of the family the grant is closer to.
	gap, family := gran, "granular"
	if len(classic) < len(gran) {
		gap, family = classic, "classic"
	}
	return &ReauthError{Integration: integration,
		Reason: "the granted OAuth scopes lack " + strings.Join(gap, ", ") + " (" + family + "), which publishing needs: authorise the app again with them"}
}
