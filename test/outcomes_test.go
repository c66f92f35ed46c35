package test

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"retropub/credstore"
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

// Must-show 4: the worker "crashes" after each task's outcome is recorded
// and before asynq hears the task ended (the middleware fails the first
// attempt after the handler returned, as a SIGKILL there would: asynq
// runs the task again). A published, an unchanged and a parked publish
// each end with exactly one event, and the publish has its event.
func TestCrashAfterRecordingMakesNoSecondEvent(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	crashed := map[string]bool{}
	e.middleware = func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
			err := next.ProcessTask(ctx, task)
			id, _ := asynq.GetTaskID(ctx)
			mu.Lock()
			defer mu.Unlock()
			if !crashed[id] {
				crashed[id] = true
				return errors.New("crashed before acknowledging") // transient: asynq runs it again
			}
			return err
		})
	}
	e.putIntegration("reauth", "")
	if err := e.store.SetStatus(context.Background(), "reauth", credstore.Status{NeedsReauth: true, Reason: "revoked", Since: time.Now()}); err != nil {
		t.Fatal(err)
	}
	e.startWorker(2)
	p := e.retro("crash-1", 1, 1)
	first := e.publish(p) // published, then run again: unchanged would be its second outcome
	p.Report.Revision = 2
	e.publish(p) // unchanged, run twice
	parked := retro("crash-2", 1, 0)
	parked.IntegrationID = "reauth"
	res := e.enqueue(parked)
	deadline := time.Now().Add(time.Minute)
	for {
		info, err := e.insp.GetTaskInfo("default", res.TaskID)
		if err == nil && info.State == asynq.TaskStateArchived && info.Retried > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("parked task did not end: %+v %v", info, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, id := range []string{first.ID, res.TaskID} {
		if info, _ := e.insp.GetTaskInfo("default", id); info == nil || info.Retried == 0 {
			t.Fatalf("task %s ran once: the crash was not injected", id)
		}
	}
	evs := streamEvents(t, e.rdb)
	var got []string
	for _, ev := range evs {
		got = append(got, ev.ReportID+" "+ev.Type)
	}
	want := []string{"crash-1 " + outcomes.TypePublished, "crash-1 " + outcomes.TypeUnchanged, "crash-2 " + outcomes.TypeParked}
	if !slices.Equal(got, want) {
		t.Fatalf("events %v, want exactly %v", got, want)
	}
	if evs[0].Page == nil || evs[0].Page.ID != result(t, first).PageID {
		t.Fatalf("published event %+v", evs[0])
	}
}
