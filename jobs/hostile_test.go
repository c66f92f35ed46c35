package jobs

import (
	"errors"
	"testing"

	"retropub/confluence"
)

// A redirect or an endless answer is the same on every retry: archived at
// once, so one hostile site cannot keep a fleet busy.
func TestClassifyHostileAnswersPermanent(t *testing.T) {
	for _, err := range []error{
		&confluence.RedirectError{Method: "POST", Path: "/rest/api/content", StatusCode: 303, To: "http://dc.internal/x", Who: "base_url"},
		&confluence.AnswerTooLargeError{Method: "GET", Path: "/rest/api/content", Limit: 16 << 20},
	} {
		var pe *PermanentError
		if got := classify("i-1", err); !errors.As(got, &pe) {
			t.Errorf("%v classified %T, want permanent", err, got)
		}
	}
}
