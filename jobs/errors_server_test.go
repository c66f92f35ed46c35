package jobs

import (
	"context"
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

// A 403 naming an app access rule is class blocked, names the space and
// is not retried; any other 403 stays a permanent permission error.
func TestClassifyBlockedSpace(t *testing.T) {
	p := &PublishPayload{IntegrationID: "acme", Target: Target{SpaceKey: "ENG"}}
	refusal := &confluence.Error{StatusCode: 403, Method: "POST", Path: "/wiki/api/v2/pages", Message: "This app is blocked from accessing content in this space by an app access rule of a data security policy."}
	got := classify("acme", asBlocked(p, refusal))
	var be *BlockedError
	if !errors.As(got, &be) || be.Space != "ENG" || !errors.Is(got, asynq.SkipRetry) || !strings.Contains(got.Error(), "organization admin") {
		t.Fatalf("classify = %v", got)
	}
	if class, final := parkClass(context.Background(), got); class != "blocked" || !final {
		t.Fatalf("parkClass = %s %v", class, final)
	}
	plain := &confluence.Error{StatusCode: 403, Message: "Could not create content with type page"}
	if got := classify("acme", asBlocked(p, plain)); errors.As(got, &be) {
		t.Fatalf("a plain 403 was taken for a blocked space: %v", got)
	}
}
