package confluence

import (
	"fmt"
	"testing"
)

func TestBlocked(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&Error{StatusCode: 403, Message: "This app is blocked from accessing content in this space by an app access rule of a data security policy."}, true},
		{fmt.Errorf("wrapped: %w", &Error{StatusCode: 403, Message: "Blocked by a Data Security Policy"}), true},
		{&Error{StatusCode: 403, Message: "com.atlassian.confluence.api.service.exceptions.PermissionException: Could not create content with type page"}, false},
		{&Error{StatusCode: 404, Message: "app access rule"}, false},
		{ErrBlocked, true},
		{nil, false},
	} {
		if got := Blocked(tc.err); got != tc.want {
			t.Errorf("Blocked(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
