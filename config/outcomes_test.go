package config

import (
	"strings"
	"testing"
	"time"
)

func TestOutcomeDefaults(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.OutcomeStreamMaxLen != 1_000_000 || c.OutcomeWebhookURL != "" || c.OutcomeWebhookMaxAge != 24*time.Hour ||
		len(c.APITokens) != 0 || c.APIMaxBody != 32<<20 {
		t.Fatalf("defaults: %+v", c.Outcomes)
	}
	good := "whsec_" + strings.Repeat("QUJD", 8) // 24 bytes
	c, err = Load(env(map[string]string{"OUTCOME_WEBHOOK_URL": "https://hooks.example.com/retropub", "OUTCOME_WEBHOOK_SECRET": good,
		"OUTCOME_WEBHOOK_MAX_AGE": "2h", "API_TOKENS": "meeting:0123456789abcdef0123, ops:fedcba9876543210fedc", "API_MAX_BODY": "1048576"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.OutcomeWebhookSecret != good || c.OutcomeWebhookMaxAge != 2*time.Hour || len(c.APITokens) != 2 ||
		c.APITokens[1] != (APIToken{Name: "ops", Token: "fedcba9876543210fedc"}) || c.APIMaxBody != 1<<20 {
		t.Fatalf("parsed: %+v", c.Outcomes)
	}
}

// A malformed webhook URL or secret, or API_TOKENS, stops start-up with a
// message naming the variable, never echoing a secret.
func TestOutcomeBadValuesNameTheVariable(t *testing.T) {
	url := "https://hooks.example.com/x"
	good := "whsec_" + strings.Repeat("QUJD", 8)
	cases := []struct {
		env      map[string]string
		variable string
		secret   string // must not appear
	}{
		{map[string]string{"OUTCOME_WEBHOOK_URL": "hooks.example.com/x", "OUTCOME_WEBHOOK_SECRET": good}, "OUTCOME_WEBHOOK_URL", good},
		{map[string]string{"OUTCOME_WEBHOOK_URL": "ftp://hooks.example.com/x", "OUTCOME_WEBHOOK_SECRET": good}, "OUTCOME_WEBHOOK_URL", good},
		{map[string]string{"OUTCOME_WEBHOOK_URL": url}, "OUTCOME_WEBHOOK_SECRET", ""},
		{map[string]string{"OUTCOME_WEBHOOK_SECRET": good}, "OUTCOME_WEBHOOK_URL", good},
		{map[string]string{"OUTCOME_WEBHOOK_URL": url, "OUTCOME_WEBHOOK_SECRET": "s3cr3t-but-not-whsec"}, "OUTCOME_WEBHOOK_SECRET", "s3cr3t-but-not-whsec"},
		{map[string]string{"OUTCOME_WEBHOOK_URL": url, "OUTCOME_WEBHOOK_SECRET": "whsec_not*base64!"}, "OUTCOME_WEBHOOK_SECRET", "not*base64!"},
		{map[string]string{"OUTCOME_WEBHOOK_URL": url, "OUTCOME_WEBHOOK_SECRET": "whsec_c2hvcnQ="}, "OUTCOME_WEBHOOK_SECRET", "c2hvcnQ="},
		{map[string]string{"OUTCOME_WEBHOOK_MAX_AGE": "forever"}, "OUTCOME_WEBHOOK_MAX_AGE", ""},
		{map[string]string{"API_TOKENS": "just-a-token-without-a-name"}, "API_TOKENS", "just-a-token-without-a-name"},
		{map[string]string{"API_TOKENS": "meeting:short"}, "API_TOKENS", "short"},
		{map[string]string{"API_TOKENS": "a:0123456789abcdef0123,a:fedcba9876543210fedc"}, "API_TOKENS", "fedcba9876543210fedc"},
		{map[string]string{"API_TOKENS": "bad name:0123456789abcdef0123"}, "API_TOKENS", "0123456789abcdef0123"},
		{map[string]string{"API_MAX_BODY": "12"}, "API_MAX_BODY", ""},
	}
	for _, c := range cases {
		_, err := Load(env(c.env))
		if err == nil || !strings.Contains(err.Error(), c.variable) {
			t.Errorf("%v: %v, want an error naming %s", c.env, err, c.variable)
			continue
		}
		if c.secret != "" && strings.Contains(err.Error(), c.secret) {
			t.Errorf("%v: the error echoes a secret: %v", c.env, err)
		}
	}
}
