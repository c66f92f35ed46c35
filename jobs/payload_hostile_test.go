package jobs

import (
	"errors"
	"strings"
	"testing"
)

// Hostile payloads (issue 13 items 5–7 and 10): each is refused with the
// field named.
func TestHostilePayloadsRefused(t *testing.T) {
	replace := func(old, new string) []byte {
		t.Helper()
		if !strings.Contains(payloadDesignExample, old) {
			t.Fatalf("example lacks %s", old)
		}
		return []byte(strings.Replace(payloadDesignExample, old, new, 1))
	}
	retro := func(f func(m map[string]any)) []byte { return payloadMutate(t, payloadDesignExample, f) }
	rep := func(m map[string]any) map[string]any { return payloadObj(m, "report") }
	target := func(m map[string]any) map[string]any { return payloadObj(m, "target") }
	cases := []struct {
		name        string
		data        []byte
		field, want string
	}{
		// Item 5: titles that clean to nothing, parent_title at all.
		{"title of dropped characters", retro(func(m map[string]any) { rep(m)["title"] = "\x00\ufffe\x07" }), "report.title", "blank once"},
		{"parent title of dropped characters", retro(func(m map[string]any) { target(m)["parent_title"] = "\x01\uffff" }), "target.parent_title", "blank once"},
		{"parent title blank", retro(func(m map[string]any) { target(m)["parent_title"] = " \t " }), "target.parent_title", "blank once"},
		{"parent title too long", retro(func(m map[string]any) { target(m)["parent_title"] = strings.Repeat("🎉", 128) }), "target.parent_title", "256 UTF-16 units"},
		// Item 6: parser differentials.
		{"duplicate key", replace(`"integration_id": "acme-cloud",`, `"integration_id": "acme-cloud", "integration_id": "other",`), "integration_id", "duplicate key"},
		{"case-variant duplicate", replace(`"integration_id": "acme-cloud",`, `"integration_id": "a", "INTEGRATION_ID": "b",`), "INTEGRATION_ID", `"integration_id" and "INTEGRATION_ID" differ only in case`},
		{"case variant alone", replace(`"integration_id": "acme-cloud",`, `"Integration_ID": "acme-cloud",`), "Integration_ID", `spells it "integration_id"`},
		{"Kelvin sign folds onto k", replace(`"kind": "retrospective"`, `"\u212aind": "retrospective"`), "report.\u212aind", `spells it "kind"`},
		{"duplicate spelled with an escape", replace(`"integration_id": "acme-cloud",`, `"integration_id": "a", "integration\u005fid": "b",`), "integration_id", "duplicate key"},
		{"nested duplicate", replace(`"title": "Sprint 42 Retrospective",`, `"title": "Sprint 42 Retrospective", "title": "x",`), "report.title", "duplicate key"},
		{"duplicate in an array element", replace(`{"filename": "votes.png",`, `{"filename": "votes.png", "FILENAME": "evil.png",`), "attachments[1].FILENAME", "differ only in case"},
		// Item 7: revisions a double cannot hold.
		{"revision 2^53", replace(`"revision": 3`, `"revision": 9007199254740992`), "report.revision", "more than 9007199254740991"},
		// Item 10: names that read as something else.
		{"bidi override in file name", retro(func(m map[string]any) { payloadAtt(m, 1)["filename"] = "report\u202egnp.exe" }), "attachments[1].filename", "bidirectional"},
		{"bidi isolate in file name", retro(func(m map[string]any) { payloadAtt(m, 1)["filename"] = "a\u2066b.png" }), "attachments[1].filename", "bidirectional"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := DecodePublishPayload(tc.data)
			var pe *PayloadError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want *PayloadError (decoded %+v)", err, p)
			}
			if pe.Field != tc.field || !strings.Contains(pe.Problem, tc.want) {
				t.Errorf("err = %q, want field %q and problem containing %q", err, tc.field, tc.want)
			}
		})
	}
}

// The bounds themselves are accepted: 2^53−1, a 255-unit parent title,
// and right-to-left text in titles (only file names refuse bidi controls).
func TestHostilePayloadBoundsAccepted(t *testing.T) {
	data := payloadMutate(t, payloadDesignExample, func(m map[string]any) {
		payloadObj(m, "report")["revision"] = int64(MaxRevision)
		payloadObj(m, "report")["title"] = "שלום \u202eRetro"
		payloadObj(m, "target")["parent_title"] = strings.Repeat("é", 255)
	})
	p, err := DecodePublishPayload(data)
	if err != nil {
		t.Fatal(err)
	}
	if p.Report.Revision != MaxRevision {
		t.Fatalf("revision %d", p.Report.Revision)
	}
}

// Set-up payloads go through the same strict decoder.
func TestSetupPayloadCaseVariantRefused(t *testing.T) {
	err := DecodeSetupPayload([]byte(`{"schema":1,"integration_id":"a","Integration_id":"b"}`), &CheckPayload{})
	var pe *PayloadError
	if !errors.As(err, &pe) || pe.Field != "Integration_id" {
		t.Fatalf("err = %v, want a problem with Integration_id", err)
	}
}
