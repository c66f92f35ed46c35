package test

import (
	"context"
	"net/url"
	"testing"

	"github.com/redis/go-redis/v9"

	"retropub/outcomes"
)

// streamEvents reads every outcome event in the stream, oldest first.
func streamEvents(t testing.TB, rdb redis.UniversalClient) []*outcomes.Event {
	t.Helper()
	msgs, err := rdb.XRange(context.Background(), outcomes.StreamKey, "-", "+").Result()
	if err != nil {
		t.Fatalf("read %s: %v", outcomes.StreamKey, err)
	}
	out := make([]*outcomes.Event, 0, len(msgs))
	for _, m := range msgs {
		s, _ := m.Values[outcomes.StreamField].(string)
		ev, err := outcomes.DecodeEvent(s)
		if err != nil {
			t.Fatalf("stream entry %s: %v: %q", m.ID, err, s)
		}
		out = append(out, ev)
	}
	return out
}

// Must-show 1: on Cloud and on Data Center, a first publish, an unchanged
// republish, an older revision and a kept manual edit each make exactly
// one event of the right type; the published one carries the page's id,
// its version and an absolute URL.
func TestOutcomeEventPerPublish(t *testing.T) {
	for _, b := range []backend{backends[0], backends[1]} {
		t.Run(b.name, func(t *testing.T) {
			e := newEnvFor(t, b)
			ctx := context.Background()
			rec, err := e.store.Get(ctx, e.integration)
			if err != nil {
				t.Fatal(err)
			}
			rec.EditPolicy = "keep"
			if err := e.store.Put(ctx, rec); err != nil {
				t.Fatal(err)
			}
			e.startWorker(2)

			p := e.retro("outcome-1", 1, 1)
			first := result(t, e.publish(p))
			p.Report.Revision = 3 // same content: unchanged
			e.publish(p)
			p.Report.Revision = 2 // older than 3: skipped
			e.publish(p)
			if !e.fake.EditPage(first.PageID, "<p>edited by a person</p>") {
				t.Fatalf("edit page %s", first.PageID)
			}
			p.Report.Revision, p.Report.Summary = 4, "changed after the edit"
			kept := result(t, e.publish(p))

			evs := streamEvents(t, e.rdb)
			want := []string{outcomes.TypePublished, outcomes.TypeUnchanged, outcomes.TypeSkipped, outcomes.TypeKept}
			if len(evs) != len(want) {
				t.Fatalf("%d events, want %d: %+v", len(evs), len(want), evs)
			}
			ids := map[string]bool{}
			for i, ev := range evs {
				if ev.Type != want[i] || ev.IntegrationID != e.integration || ev.ReportID != "outcome-1" || ev.ID == "" || ids[ev.ID] {
					t.Errorf("event %d: %+v; want type %s, a new id", i, ev, want[i])
				}
				ids[ev.ID] = true
				if ev.Page == nil || ev.Page.ID != first.PageID {
					t.Errorf("event %d (%s) page %+v, want page %s", i, ev.Type, ev.Page, first.PageID)
				}
			}
			pub := evs[0]
			u, err := url.Parse(pub.Page.URL)
			if err != nil || !u.IsAbs() || u.Host == "" || pub.Page.Version != first.Version || pub.Revision != 1 || pub.TaskID != p.TaskID()[:len(p.TaskID())-1]+"1" {
				t.Errorf("published event %+v (page %+v): want an absolute URL, version %d, revision 1", pub, pub.Page, first.Version)
			}
			if evs[2].Revision != 2 || evs[3].Revision != 4 || evs[3].Page.Version != kept.Version {
				t.Errorf("skipped %+v, kept %+v", evs[2], evs[3].Page)
			}
			st, err := (&outcomes.Store{Redis: e.rdb}).ReportStatus(ctx, e.integration, "outcome-1")
			if err != nil || st.State != outcomes.TypeKept || st.Revision != 4 || st.Page == nil || st.PublishedAt == nil {
				t.Errorf("status %+v, %v", st, err)
			}
		})
	}
}
