package jobs

import (
	"encoding/json"
	"strings"
	"testing"
)

// Signed attachment URLs are shown without their query (issue 13 item 10):
// whatever escapes the payload's encoder used.
func TestRedactPayloadElidesURLQueries(t *testing.T) {
	p := PublishPayload{IntegrationID: "acme", Report: Report{ID: "r1", Title: "T"}, Attachments: []Attachment{
		{Filename: "a.png", URL: "https://bucket.s3.amazonaws.com/a.png?X-Amz-Signature=AMZSECRET&X-Amz-Credential=AKIA"},
		{Filename: "b.png", URL: "HTTPS://files.example.com/b.png?sig=AZURESECRET#frag"},
		{Filename: "c.png", URL: "https://user:USERSECRET@files.example.com/c.png"},
		{Filename: "d.png", URL: "https://files.example.com/plain.png"},
	}}
	raw, err := json.Marshal(p) // escapes & as \u0026
	if err != nil {
		t.Fatal(err)
	}
	got := string(RedactPayload(raw))
	for _, secret := range []string{"AMZSECRET", "AKIA", "AZURESECRET", "USERSECRET", "frag"} {
		if strings.Contains(got, secret) {
			t.Errorf("%s shown in %s", secret, got)
		}
	}
	for _, want := range []string{`"https://bucket.s3.amazonaws.com/a.png?…"`, `"https://files.example.com/plain.png"`, `"https://files.example.com/c.png"`, `"id":"r1"`} {
		if !strings.Contains(got, want) {
			t.Errorf("%s missing from %s", want, got)
		}
	}
	if !json.Valid([]byte(got)) {
		t.Errorf("not JSON any more: %s", got)
	}
}
