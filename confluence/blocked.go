package confluence

import (
	"errors"
	"net/http"
	"strings"
)

// ErrBlocked matches (errors.Is) an answer refusing the app because an
// app access rule of a data security policy blocks it from the space: the
// space still lists, its content cannot be read or written through the
// app. Only an organization admin can lift it, so no retry helps
// (confluence-api.md §8; Atlassian's "Data security policy developer guide").
var ErrBlocked = errors.New("confluence: blocked from the space by an app access rule (data security policy)")

// Blocked reports whether err is Confluence refusing the app by an app
// access rule: a 403 whose message names the rule or the policy. Any other
// 403 (a missing permission or scope) is not.
func Blocked(err error) bool {
	if errors.Is(err, ErrBlocked) {
		return true
	}
	var e *Error
	if !errors.As(err, &e) || e.StatusCode != http.StatusForbidden {
		return false
	}
	m := strings.ToLower(e.Message)
	return strings.Contains(m, "app access rule") || strings.Contains(m, "data security polic")
}
