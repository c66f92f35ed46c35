package jobs

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"retropub/confluence"
	"retropub/confluence/confluencetest"
	"retropub/credstore"
	"retropub/internal/rediskeys"
	"retropub/outcomes"
)

// Fast tests of the publish steps: miniredis, the fake Confluence on
// loopback and the real client, the Publisher called directly (no asynq
// server). Each runs in well under a second.

const stepsIntegration = "acme"

type stepsEnv struct {
	t    *testing.T
	mr   *miniredis.Miniredis
	rdb  *redis.Client
	fake *confluencetest.Server
	h    *Publisher
}

func newStepsEnv(t *testing.T) *stepsEnv {
	t.Helper()
	e := &stepsEnv{t: t, mr: miniredis.RunT(t)}
	e.rdb = redis.NewClient(&redis.Options{Addr: e.mr.Addr()})
	t.Cleanup(func() { e.rdb.Close() })
	e.fake = confluencetest.New(confluencetest.Options{})
	e.fake.Start()
	t.Cleanup(e.fake.Close)
	e.fake.AddSpace("ENG", "Engineering")
	token := "tok-steps-" + strings.Repeat("x", 16)
	e.fake.AddAccessToken(token)

	kid, key := credstore.GenerateKey()
	keys, err := credstore.ParseKeys(kid + ":" + key)
	if err != nil {
		t.Fatal(err)
	}
	store := credstore.New(e.rdb, keys)
	err = store.Put(context.Background(), &credstore.Record{
		ID: stepsIntegration, Flavor: "cloud", CloudID: e.fake.CloudID(),
		Auth: credstore.Auth{Kind: "oauth2", AccessToken: credstore.Secret(token), ExpiresAt: time.Now().Add(time.Hour)},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, v4, _ := net.ParseCIDR("127.0.0.1/32")
	_, v6, _ := net.ParseCIDR("::1/128")
	hc := confluence.NewHTTPClient(5*time.Second, 4, confluence.AllowCIDRs(v4, v6))
	e.h = &Publisher{
		Redis: e.rdb, Integrations: store, Log: zap.NewNop(),
		Connect:  NewConnector(e.fake.URL(), hc, nil),
		Outcomes: &outcomes.Recorder{Redis: e.rdb},
	}
	t.Cleanup(func() {
		if d := e.fake.Disallowed(); len(d) > 0 {
			t.Errorf("the fake saw calls outside DESIGN §4: %+v", d)
		}
	})
	return e
}

// report is a retrospective with n inline attachments.
func stepsReport(id string, rev int64, n int) *PublishPayload {
	p := &PublishPayload{
		Schema: 1, EventID: "evt-" + id, IntegrationID: stepsIntegration,
		Report: Report{
			ID: id, Revision: rev, Kind: KindRetrospective, Title: "Retro " + id, HeldAt: "2026-11-27T15:00:00Z",
			Sections: []Section{{Name: "Went well", Items: []Item{{Text: fmt.Sprintf("revision %d", rev)}}}},
		},
		Target: Target{SpaceKey: "ENG"},
	}
	for i := range n {
		p.Attachments = append(p.Attachments, Attachment{
			Filename: fmt.Sprintf("file-%d.png", i), ContentType: "image/png",
			DataBase64: base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("png-%s-%d", id, i))),
		})
	}
	return p
}

// publish runs one attempt of p's task (its own TaskID) as asynq would.
func (e *stepsEnv) publish(p *PublishPayload) (*PublishResult, error) {
	e.t.Helper()
	data, err := json.Marshal(p)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.h.publish(context.Background(), p.TaskID(), data)
}

func (e *stepsEnv) mustPublish(p *PublishPayload) *PublishResult {
	e.t.Helper()
	res, err := e.publish(p)
	if err != nil {
		e.t.Fatalf("publish %s rev %d: %v", p.Report.ID, p.Report.Revision, err)
	}
	return res
}

// pagesTitled returns the fake's pages with this title in ENG.
func (e *stepsEnv) pagesTitled(title string) []confluencetest.Page {
	var out []confluencetest.Page
	for _, p := range e.fake.Pages("ENG") {
		if p.Title == title {
			out = append(out, p)
		}
	}
	return out
}

func (e *stepsEnv) requests(route string) int {
	n := 0
	for _, r := range e.fake.Requests() {
		if r.Route == route {
			n++
		}
	}
	return n
}

const uploadRoute = "POST /wiki/rest/api/content/{id}/child/attachment"

func TestStepsFirstPublishThenUnchanged(t *testing.T) {
	e := newStepsEnv(t)
	p := stepsReport("r1", 1, 2)
	res := e.mustPublish(p)
	if res.Outcome != "published" || res.PageID == "" {
		t.Fatalf("first publish: %+v", res)
	}
	if atts := e.fake.Attachments(res.PageID); len(atts) != 2 {
		t.Fatalf("%d attachments, want 2", len(atts))
	}
	e.fake.ResetRequests()
	again := e.mustPublish(p)
	if again.Outcome != "unchanged" || len(e.fake.Requests()) != 0 {
		t.Fatalf("republish: outcome %s with %d requests, want unchanged with 0", again.Outcome, len(e.fake.Requests()))
	}
}

// Mutation: the report lock taken although another task holds it. A
// held lock defers the task before any Confluence call.
func TestReportLockHeldByAnotherTaskDefers(t *testing.T) {
	e := newStepsEnv(t)
	p := stepsReport("r1", 1, 0)
	e.mr.Set(rediskeys.ReportLock(stepsIntegration, "r1"), "report:publish:acme:r1:9")
	_, err := e.publish(p)
	var de *DeferredError
	if !errors.As(err, &de) {
		t.Fatalf("got %v, want a deferral", err)
	}
	if IsFailure(err) {
		t.Error("a held lock counted as a failure")
	}
	if n := len(e.fake.Requests()); n != 0 {
		t.Errorf("%d Confluence requests while the lock was held, want 0", n)
	}
}

// Mutation: the report lock taken although another task holds it.
// Revisions 1 and 2 of one report run at once: while 1 is creating the
// page, 2 is deferred; both done, there is one page with revision 2's body.
func TestTwoRevisionsAtOnceEndAsOnePageWithTheNewer(t *testing.T) {
	e := newStepsEnv(t)
	r1, r2 := stepsReport("r1", 1, 0), stepsReport("r1", 2, 0)
	hold := e.fake.HoldNext("POST", regexp.MustCompile(`^/wiki/api/v2/pages$`))
	var wg sync.WaitGroup
	var err1 error
	wg.Go(func() { _, err1 = e.publish(r1) })
	// The first POST is the parent page; hold the report page's create.
	<-hold.Arrived
	hold.Release(true)
	hold = e.fake.HoldNext("POST", regexp.MustCompile(`^/wiki/api/v2/pages$`))
	<-hold.Arrived
	_, err2 := e.publish(r2)
	var de *DeferredError
	if !errors.As(err2, &de) {
		t.Errorf("revision 2 while revision 1 runs: %v, want a deferral", err2)
	}
	hold.Release(true)
	wg.Wait()
	if err1 != nil {
		t.Fatalf("revision 1: %v", err1)
	}
	if res := e.mustPublish(r2); res.Outcome != "published" {
		t.Fatalf("revision 2 afterwards: %+v", res)
	}
	pages := e.pagesTitled("Retro r1")
	if len(pages) != 1 {
		t.Fatalf("%d pages titled Retro r1, want 1", len(pages))
	}
	if !strings.Contains(pages[0].Body, "revision 2") {
		t.Errorf("the page holds %q, want revision 2's body", pages[0].Body)
	}
}

// Mutation: no look-up of an existing attachment before uploading to an
// existing page. The upload goes through but its answer is lost; the
// retry finds the files by name and hash and uploads nothing again.
func TestLostUploadAnswerLooksBeforeUploadingAgain(t *testing.T) {
	e := newStepsEnv(t)
	p := stepsReport("r1", 1, 2)
	e.fake.AddFault(confluencetest.Fault{Method: "POST", Path: regexp.MustCompile(`^/wiki/rest/api/content/\d+/child/attachment$`),
		Status: 500, Body: `{"statusCode":500,"message":"lost"}`, Times: 1, AfterEffect: true})
	if _, err := e.publish(p); err == nil {
		t.Fatal("the lost answer did not fail the attempt")
	}
	res := e.mustPublish(p)
	if res.Outcome != "published" {
		t.Fatalf("retry: %+v", res)
	}
	atts := e.fake.Attachments(res.PageID)
	if len(atts) != 2 {
		t.Fatalf("%d attachments, want 2", len(atts))
	}
	for _, a := range atts {
		if a.Version != 1 {
			t.Errorf("%s at version %d, want 1", a.Title, a.Version)
		}
	}
	if n := e.requests(uploadRoute); n != 1 {
		t.Errorf("%d upload POSTs, want 1", n)
	}
}

// Mutation: the unchanged check ignoring attachment hashes. One
// attachment changes alone (same body): it is uploaded as version 2.
func TestOneAttachmentChangedAloneIsUploaded(t *testing.T) {
	e := newStepsEnv(t)
	p := stepsReport("r1", 1, 2)
	first := e.mustPublish(p)
	p2 := stepsReport("r1", 2, 2)
	p2.Report.Sections = p.Report.Sections // same body
	p2.Attachments[1].DataBase64 = base64.StdEncoding.EncodeToString([]byte("a new picture"))
	res := e.mustPublish(p2)
	if res.Outcome != "published" || res.Steps["upload_attachments"] != ran {
		t.Fatalf("one attachment changed: %+v", res)
	}
	versions := map[string]int{}
	for _, a := range e.fake.Attachments(first.PageID) {
		versions[a.Title] = a.Version
	}
	if versions["file-0.png"] != 1 || versions["file-1.png"] != 2 {
		t.Errorf("attachment versions %v, want file-0 at 1 and file-1 at 2", versions)
	}
}

// Mutation: the save script allowed to lower a stored revision.
func TestSaveNeverLowersTheRevision(t *testing.T) {
	e := newStepsEnv(t)
	e.mustPublish(stepsReport("r1", 3, 0))
	key := rediskeys.Mapping(stepsIntegration, "r1")
	lockKey := rediskeys.ReportLock(stepsIntegration, "r1")
	if err := saveAndReleaseScript.Run(context.Background(), e.rdb, []string{key, lockKey}, 2, "t", mappingTTL.Milliseconds()).Err(); err != nil {
		t.Fatal(err)
	}
	if rev := e.mr.HGet(key, "revision"); rev != "3" {
		t.Errorf("revision %s after saving 2 over 3, want 3", rev)
	}
	// And through the steps: an older revision arriving late is skipped.
	res := e.mustPublish(stepsReport("r1", 2, 0))
	if res.Outcome != "skipped_older_revision" || e.mr.HGet(key, "revision") != "3" {
		t.Errorf("older revision: outcome %s, stored revision %s", res.Outcome, e.mr.HGet(key, "revision"))
	}
}

// Mutation: a 403 no longer permanent. What each Confluence answer makes
// of the task (DESIGN §6).
func TestClassifyStatusTable(t *testing.T) {
	type want struct {
		permanent, reauth, failure bool
	}
	for status, w := range map[int]want{
		400: {permanent: true, failure: true},
		403: {permanent: true, failure: true},
		410: {permanent: true, failure: true},
		413: {permanent: true, failure: true},
		401: {reauth: true, failure: true},
		500: {failure: true},
		502: {failure: true},
	} {
		err := classify("acme", &confluence.Error{StatusCode: status, Method: "POST", Path: "/wiki/api/v2/pages"})
		var pe *PermanentError
		var re *ReauthError
		if got := errors.As(err, &pe); got != w.permanent {
			t.Errorf("%d: permanent %v, want %v (%v)", status, got, w.permanent, err)
		}
		if got := errors.As(err, &re); got != w.reauth {
			t.Errorf("%d: needs re-auth %v, want %v", status, got, w.reauth)
		}
		if got := errors.Is(err, asynq.SkipRetry); got != (w.permanent || w.reauth) {
			t.Errorf("%d: SkipRetry %v", status, got)
		}
		if got := IsFailure(err); got != w.failure {
			t.Errorf("%d: IsFailure %v, want %v", status, got, w.failure)
		}
	}
	// A 403 says what to check, not just that it failed.
	forbidden := classify("acme", &confluence.Error{StatusCode: 403, Method: "POST", Path: "/wiki/api/v2/pages"})
	if !strings.Contains(forbidden.Error(), "permissions and scopes") {
		t.Errorf("403 message %q does not say to check permissions and scopes", forbidden)
	}
	rl := classify("acme", &confluence.RateLimitError{Resp: &confluence.Error{StatusCode: 429}, RetryAfter: 3 * time.Second})
	if IsFailure(rl) || errors.Is(rl, asynq.SkipRetry) {
		t.Errorf("429 is a failure or permanent: %v", rl)
	}
	if d := RetryDelay(0, rl, nil); d < 3*time.Second {
		t.Errorf("429 retried after %s, before its Retry-After", d)
	}
}
