package config

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Outcomes is the configuration of DESIGN §10.
type Outcomes struct {
	// OutcomeStreamMaxLen trims retropub:outcomes approximately.
	// OUTCOME_STREAM_MAXLEN, default 1,000,000 (at least 1,000).
	OutcomeStreamMaxLen int64
	// OutcomeWebhookURL receives every outcome event; empty: no webhooks.
	// OUTCOME_WEBHOOK_URL, default none.
	OutcomeWebhookURL string
	// OutcomeWebhookSecret is the signing key, whsec_ + base64; required
	// with OutcomeWebhookURL. OUTCOME_WEBHOOK_SECRET, default none.
	OutcomeWebhookSecret string
	// OutcomeWebhookMaxAge is how long an event is retried.
	// OUTCOME_WEBHOOK_MAX_AGE, default 24h.
	OutcomeWebhookMaxAge time.Duration
	// APITokens are the HTTP API's bearer tokens; none: the API is off.
	// API_TOKENS (name:token,…), default none.
	APITokens []APIToken
	// APIMaxBody caps a request body of the HTTP API.
	// API_MAX_BODY, default 32 MiB.
	APIMaxBody int64
}

// APIToken is one named bearer token of API_TOKENS.
type APIToken struct {
	Name  string
	Token string
}

// minWebhookKey is the Standard Webhooks minimum key length (24 bytes).
const minWebhookKey = 24

// minAPIToken keeps guessable tokens out.
const minAPIToken = 16

var tokenNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func (l *loader) outcomes(c *Config) {
	o := &c.Outcomes
	o.OutcomeStreamMaxLen = int64(l.int("OUTCOME_STREAM_MAXLEN", 1_000_000, 1000))
	o.OutcomeWebhookURL = l.httpURL("OUTCOME_WEBHOOK_URL", "", "https", "http")
	o.OutcomeWebhookSecret = l.str("OUTCOME_WEBHOOK_SECRET", "")
	o.OutcomeWebhookMaxAge = l.duration("OUTCOME_WEBHOOK_MAX_AGE", 24*time.Hour, time.Minute)
	o.APIMaxBody = int64(l.int("API_MAX_BODY", 32<<20, 1024))
	o.APITokens = l.apiTokens("API_TOKENS")
	switch {
	case o.OutcomeWebhookURL != "" && o.OutcomeWebhookSecret == "":
		l.fail("OUTCOME_WEBHOOK_SECRET", "", "required with OUTCOME_WEBHOOK_URL (whsec_ followed by a base64 key of at least 24 bytes)")
	case o.OutcomeWebhookURL == "" && o.OutcomeWebhookSecret != "":
		l.fail("OUTCOME_WEBHOOK_URL", "", "required with OUTCOME_WEBHOOK_SECRET")
	case o.OutcomeWebhookSecret != "":
		if reason := webhookSecretProblem(o.OutcomeWebhookSecret); reason != "" {
			l.fail("OUTCOME_WEBHOOK_SECRET", o.OutcomeWebhookSecret, reason)
		}
	}
}

func webhookSecretProblem(s string) string {
	b64, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return "must start with whsec_ (Standard Webhooks secret: whsec_ followed by base64)"
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "the part after whsec_ is not standard base64"
	}
	if len(key) < minWebhookKey {
		return fmt.Sprintf("the key is %d bytes; use at least %d", len(key), minWebhookKey)
	}
	return ""
}

// apiTokens parses name:token,… Errors name the entry by position and
// name, never by its token.
func (l *loader) apiTokens(name string) []APIToken {
	var out []APIToken
	seen := map[string]bool{}
	for i, part := range l.list(name) {
		n, tok, ok := strings.Cut(part, ":")
		n, tok = strings.TrimSpace(n), strings.TrimSpace(tok)
		entry := "entry " + strconv.Itoa(i+1)
		switch {
		case !ok || n == "" || tok == "":
			l.fail(name, "", entry+": want name:token pairs separated by commas")
		case !tokenNameRE.MatchString(n):
			l.fail(name, "", entry+": name must be 1 to 64 letters, digits, '.', '_' or '-'")
		case seen[n]:
			l.fail(name, "", entry+": name "+strconv.Quote(n)+" appears twice")
		case len(tok) < minAPIToken:
			l.fail(name, "", fmt.Sprintf("%s (%s): the token is %d characters; use at least %d", entry, n, len(tok), minAPIToken))
		default:
			seen[n] = true
			out = append(out, APIToken{Name: n, Token: tok})
		}
	}
	return out
}
