package jobs

import "unicode"

// Checks added against hostile producers (issue 13 items 5, 7, 10).

// MaxRevision is the largest report.revision: 2^53−1, the largest whole
// number a double (Lua, JavaScript) holds exactly.
const MaxRevision = 1<<53 - 1

// checkPageTitle refuses a title that cleans to nothing (only characters
// the renderer drops): Confluence would answer 400 on every retry. A
// report title longer than a page title may be is cut by PageTitle (the
// page is still the report's); a parent title is the name of a page to
// find, so with exact it must fit as written: a cut one would find or
// create a page nobody named.
func checkPageTitle(field, title string, exact bool) error {
	cleaned := cleanTitle(title)
	switch n := utf16Len(cleaned); {
	case cleaned == "":
		return perr(field, "%s is blank once the characters a page title cannot hold are dropped", quote(title))
	case exact && n > MaxTitleLen:
		return perr(field, "%d UTF-16 units once cleaned, at most %d allowed (Confluence's limit for page titles)", n, MaxTitleLen)
	}
	return nil
}

// isBidiControl: characters that reorder how text around them is shown.
func isBidiControl(r rune) bool { return unicode.Is(unicode.Bidi_Control, r) }
