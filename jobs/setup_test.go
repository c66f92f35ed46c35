package jobs

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestDecodeSetupPayloadIsStrict(t *testing.T) {
	for _, c := range []struct {
		data  string
		p     SetupPayload
		field string // "" = valid
	}{
		{`{"schema":1,"integration_id":"acme","space_key":"ENG","delete":true}`, &TestPayload{}, ""},
		{`{"schema":1,"integration_id":"acme"}`, &CheckPayload{}, ""},
		{`{"schema":1,"integration_id":"acme","space_key":"ENG","query":"Retro"}`, &SearchPayload{}, ""},
		{`{"schema":1,"integration_id":"acme","query":"Retro"}`, &CheckPayload{}, "query"},    // unknown field, named
		{`{"integration_id":"acme"}`, &CheckPayload{}, "schema"},                              // missing schema
		{`{"schema":2,"integration_id":"acme","x":1}`, &CheckPayload{}, "schema"},             // newer producer
		{`{"schema":1,"integration_id":"a:b"}`, &CheckPayload{}, "integration_id"},            // would break the TaskID
		{`{"schema":1,"integration_id":"acme"} {}`, &CheckPayload{}, "json"},                  // two objects
		{`{"schema":1,"integration_id":"acme","space_key":"ENG"}`, &SearchPayload{}, "query"}, // no query
		{`{"schema":1,"integration_id":"acme","space_key":"E\"NG","query":"x"}`, &SearchPayload{}, "target.space_key"},
		{`{"schema":1,"integration_id":"acme","space_key":"ENG","query":"x","limit":500}`, &SearchPayload{}, "limit"},
		{`{"schema":1,"integration_id":"acme","space_key":"ENG","root_page_id":"abc"}`, &TestPayload{}, "target.root_page_id"},
	} {
		err := DecodeSetupPayload([]byte(c.data), c.p)
		var pe *PayloadError
		switch {
		case c.field == "" && err != nil:
			t.Errorf("%s: %v", c.data, err)
		case c.field != "" && (!errors.As(err, &pe) || pe.Field != c.field):
			t.Errorf("%s: %v, want a problem with %s", c.data, err, c.field)
		}
	}
}

func TestOutcomeOf(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, OutcomeOK},
		{&DeferredError{Reason: "lock"}, OutcomeDeferred},
		{permanent(errors.New("bad")), OutcomeArchived},
		{&ReauthError{Integration: "a"}, OutcomeReauth},
		{errors.New("503"), OutcomeRetry},
	} {
		if got := outcomeOf(ctx, c.err, ""); got != c.want {
			t.Errorf("%v: %s, want %s", c.err, got, c.want)
		}
	}
	if got := outcomeOf(ctx, nil, "unchanged"); got != "unchanged" {
		t.Errorf("success outcome %s", got)
	}
}

func TestSetupTaskOptions(t *testing.T) {
	task, err := NewSetupTask(&CheckPayload{Schema: 1, IntegrationID: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if task.Type() != TypeIntegrationCheck || !strings.Contains(string(task.Payload()), `"integration_id":"acme"`) {
		t.Fatalf("task %s %s", task.Type(), task.Payload())
	}
	if _, err := NewSetupTask(&SearchPayload{Schema: 1, IntegrationID: "acme", SpaceKey: "ENG"}); err == nil {
		t.Fatal("a search without a query was accepted")
	}
}
