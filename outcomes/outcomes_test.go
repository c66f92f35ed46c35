package outcomes

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"retropub/credstore"
)

// newRedis is miniredis, or with REDIS_URL a real Redis (flushed DB: use
// a test database).
func newRedis(t *testing.T) redis.UniversalClient {
	t.Helper()
	if u := os.Getenv("REDIS_URL"); u != "" {
		opt, err := redis.ParseURL(u)
		if err != nil {
			t.Fatal(err)
		}
		opt.DB = 9
		rdb := redis.NewClient(opt)
		if err := rdb.FlushDB(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rdb.Close() })
		return rdb
	}
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func events(t *testing.T, rdb redis.UniversalClient) []*Event {
	t.Helper()
	msgs, err := rdb.XRange(context.Background(), StreamKey, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var out []*Event
	for _, m := range msgs {
		e, err := DecodeEvent(m.Values[StreamField].(string))
		if err != nil {
			t.Fatalf("entry %s: %v", m.ID, err)
		}
		out = append(out, e)
	}
	return out
}

func report(task, typ string, rev int64) *Report {
	o := &Report{TaskID: task, Type: typ, IntegrationID: "acme", ReportID: "r1", Revision: rev, EventID: "evt-1"}
	if typ == TypeParked {
		o.Error = &Error{Class: ClassNeedsReauth, Message: "put new credentials"}
		o.Payload = []byte(`{"rev":` + string(rune('0'+rev)) + `}`)
	}
	if typ == TypePublished {
		o.Page = &Page{ID: "65542", URL: "https://acme.atlassian.net/wiki/spaces/ENG/pages/65542", Title: "Retro", Version: 2}
	}
	return o
}

// A re-run of a task whose outcome is recorded writes nothing, even when
// it would now end differently (published, then unchanged after a crash).
func TestRecordReportOncePerTask(t *testing.T) {
	ctx := context.Background()
	rdb := newRedis(t)
	rec := &Recorder{Redis: rdb}
	id1, err := rec.RecordReport(ctx, report("t3", TypePublished, 3))
	if err != nil {
		t.Fatal(err)
	}
	id2, err := rec.RecordReport(ctx, report("t3", TypeUnchanged, 3))
	if err != nil {
		t.Fatal(err)
	}
	if id1 != id2 || id1 != "t3:0" {
		t.Fatalf("ids %q, %q; want both t3:0", id1, id2)
	}
	ev := events(t, rdb)
	if len(ev) != 1 || ev[0].Type != TypePublished || ev[0].ID != "t3:0" || ev[0].Page == nil || ev[0].Page.Version != 2 ||
		!strings.HasPrefix(ev[0].Page.URL, "https://") || ev[0].Revision != 3 || ev[0].TaskID != "t3" || ev[0].EventID != "evt-1" {
		t.Fatalf("events: %+v", ev)
	}
	st, err := (&Store{Redis: rdb}).ReportStatus(ctx, "acme", "r1")
	if err != nil || st.State != TypePublished || st.Page.ID != "65542" || st.PublishedAt == nil || st.OutcomeID != "t3:0" {
		t.Fatalf("status %+v, %v", st, err)
	}
	// another task of the same report is a new outcome
	if _, err := rec.RecordReport(ctx, report("t4", TypeUnchanged, 4)); err != nil {
		t.Fatal(err)
	}
	if ev := events(t, rdb); len(ev) != 2 || ev[1].ID != "t4:0" {
		t.Fatalf("events: %+v", ev)
	}
}

func TestParkingKeepsTheNewestRevision(t *testing.T) {
	ctx := context.Background()
	rdb := newRedis(t)
	rec := &Recorder{Redis: rdb}
	st := &Store{Redis: rdb}
	for _, o := range []*Report{report("t2", TypeParked, 2), report("t3", TypeParked, 3), report("t1", TypeParked, 1)} {
		if _, err := rec.RecordReport(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	list, err := st.ListParked(ctx, "")
	if err != nil || len(list) != 1 || list[0].Revision != 3 || list[0].Reason != ClassNeedsReauth || list[0].TaskID != "t3" {
		t.Fatalf("parked %+v, %v", list, err)
	}
	is, err := st.IntegrationStatus(ctx, "acme")
	if err != nil || is.Parked != 1 || is.ParkedByReason[ClassNeedsReauth] != 1 || is.LastFailure == nil {
		t.Fatalf("integration %+v, %v", is, err)
	}
	// An older revision published clears nothing; the parked one does.
	if _, err := rec.RecordReport(ctx, report("t2b", TypePublished, 2)); err != nil {
		t.Fatal(err)
	}
	if list, _ := st.ListParked(ctx, "acme"); len(list) != 1 {
		t.Fatalf("older publish cleared the parked revision 3: %+v", list)
	}
	rp, err := st.TakeReplay(ctx, "acme", "r1")
	if err != nil || string(rp.Payload) != `{"rev":3}` || rp.Generation != 1 {
		t.Fatalf("replay %+v, %v", rp, err)
	}
	id, err := rec.RecordReport(ctx, report("t3", TypePublished, 3))
	if err != nil || id != "t3:1" {
		t.Fatalf("replayed publish id %q, %v; want a new id t3:1", id, err)
	}
	if list, _ := st.ListParked(ctx, "acme"); len(list) != 0 {
		t.Fatalf("published revision 3 left parked: %+v", list)
	}
	if n, _ := st.ParkedByReason(ctx); n[ClassNeedsReauth] != 0 {
		t.Fatalf("parked by reason %v", n)
	}
	if _, err := st.TakeReplay(ctx, "acme", "r1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("replay after publish: %v", err)
	}
}

func TestDiscard(t *testing.T) {
	ctx := context.Background()
	rdb := newRedis(t)
	rec := &Recorder{Redis: rdb}
	st := &Store{Redis: rdb}
	if _, err := rec.RecordReport(ctx, report("t1", TypeParked, 1)); err != nil {
		t.Fatal(err)
	}
	if err := st.Discard(ctx, "acme", "r1"); err != nil {
		t.Fatal(err)
	}
	if err := st.Discard(ctx, "acme", "r1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second discard: %v", err)
	}
	if list, _ := st.ListParked(ctx, ""); len(list) != 0 {
		t.Fatalf("parked after discard: %+v", list)
	}
}

func TestIntegrationStateEventsOnlyOnChange(t *testing.T) {
	ctx := context.Background()
	rdb := newRedis(t)
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	rec := &Recorder{Redis: rdb, Now: func() time.Time { now = now.Add(time.Second); return now }}
	for range 2 {
		if err := rec.NeedsReauth(ctx, "acme", "invalid_grant"); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := rec.IntegrationOK(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
	}
	ev := events(t, rdb)
	if len(ev) != 2 || ev[0].Type != TypeNeedsReauth || ev[0].Error == nil || ev[0].Error.Class != ClassNeedsReauth || ev[1].Type != TypeOK || ev[0].ID == ev[1].ID {
		t.Fatalf("events %+v", ev)
	}
	is, err := (&Store{Redis: rdb}).IntegrationStatus(ctx, "acme")
	if err != nil || is.NeedsReauth {
		t.Fatalf("status %+v %v", is, err)
	}
}

func TestInvalidOncePerTask(t *testing.T) {
	ctx := context.Background()
	rdb := newRedis(t)
	rec := &Recorder{Redis: rdb}
	for range 2 {
		if err := rec.Invalid(ctx, "task-x", "acme", "", 0, "bad json"); err != nil {
			t.Fatal(err)
		}
	}
	if ev := events(t, rdb); len(ev) != 1 || ev[0].Type != TypeInvalid || ev[0].Error.Class != ClassInvalid {
		t.Fatalf("events %+v", ev)
	}
}

// Parked payloads are sealed in Redis (they may carry signed attachment
// URLs) and open only for the report they were parked for.
func TestParkedPayloadsAreSealed(t *testing.T) {
	ctx := context.Background()
	rdb := newRedis(t)
	kid, key := credstore.GenerateKey()
	keys, err := credstore.ParseKeys(kid + ":" + key)
	if err != nil {
		t.Fatal(err)
	}
	seal, err := NewSealer(keys)
	if err != nil {
		t.Fatal(err)
	}
	secret := `{"attachments":[{"url":"https://files.example.com/a.pdf?X-Amz-Signature=deadbeefcafe"}]}`
	o := report("t1", TypeParked, 1)
	o.Payload = []byte(secret)
	if _, err := (&Recorder{Redis: rdb, Seal: seal}).RecordReport(ctx, o); err != nil {
		t.Fatal(err)
	}
	raw, err := rdb.HGet(ctx, parkedKey("acme", "r1"), "payload").Result()
	if err != nil || strings.Contains(raw, "deadbeefcafe") || !strings.HasPrefix(raw, "v1:"+kid+":") {
		t.Fatalf("stored payload %q (%v): want it sealed", raw, err)
	}
	// Copied to another report, it does not open.
	rdb.HSet(ctx, parkedKey("acme", "r2"), "payload", raw)
	if _, err := (&Store{Redis: rdb, Seal: seal}).TakeReplay(ctx, "acme", "r2"); !errors.Is(err, ErrSealed) {
		t.Fatalf("copied payload: %v, want ErrSealed", err)
	}
	rp, err := (&Store{Redis: rdb, Seal: seal}).TakeReplay(ctx, "acme", "r1")
	if err != nil || string(rp.Payload) != secret {
		t.Fatalf("replay %q, %v", rp.Payload, err)
	}
}
