package jobs

import (
	"errors"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"retropub/confluence"
)

func TestClassifyServerRefusals(t *testing.T) {
	for name, err := range map[string]error{
		"egress":      &confluence.EgressError{Kind: "private"},
		"redirect":    &confluence.RedirectError{Method: "GET", Path: "/rest/api/space", StatusCode: 302, To: "http://b"},
		"certificate": &confluence.CertificateError{URL: "https://a", Err: errors.New("x509: unknown authority")},
	} {
		var pe *PermanentError
		if got := classify("i", err); !errors.As(got, &pe) || !errors.Is(got, asynq.SkipRetry) {
			t.Errorf("%s: %v is not permanent", name, got)
		}
	}
	locked := &confluence.Error{StatusCode: 401, LoginReason: "AUTHENTICATION_DENIED"}
	var re *ReauthError
	if got := classify("i", locked); !errors.As(got, &re) || !strings.Contains(re.Reason, "CAPTCHA") {
		t.Errorf("CAPTCHA lock: %v", got)
	}
	failed := &confluence.Error{StatusCode: 401, LoginReason: "AUTHENTICATED_FAILED", Message: "bad password"}
	if got := classify("i", failed); !errors.As(got, &re) || re.Reason != "bad password" {
		t.Errorf("failed login: %v", got)
	}
}
