package test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"retropub/confluence/confluencetest"
	"retropub/credstore"
	"retropub/jobs"
)

// OAuth 2.0 refresh shared by a fleet (issue 3's "It must show" list).

// putOAuth stores an integration with a fresh token family from the fake;
// its access token counts as expired, so the first request refreshes.
func (e *env) putOAuth(id string) (access, refresh string) {
	e.t.Helper()
	access, refresh = e.fake.IssueTokens()
	err := e.store.Put(context.Background(), &credstore.Record{ID: id, Flavor: "cloud", CloudID: e.fake.CloudID(),
		Auth: credstore.Auth{Kind: "oauth2", AccessToken: credstore.Secret(access), RefreshToken: credstore.Secret(refresh),
			ExpiresAt: time.Now().Add(-time.Second)}})
	if err != nil {
		e.t.Fatalf("put integration: %v", err)
	}
	return access, refresh
}

func (e *env) record(id string) *credstore.Record {
	e.t.Helper()
	rec, err := e.store.Get(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return rec
}

// refreshErrors lists the refreshes the token endpoint refused.
func refreshErrors(fake *confluencetest.Server) []confluencetest.RefreshEntry {
	var out []confluencetest.RefreshEntry
	for _, r := range fake.RefreshLog() {
		if r.Error != "" {
			out = append(out, r)
		}
	}
	return out
}

func retroFor(integration, id string) *jobs.PublishPayload {
	p := retro(id, 1, 0)
	p.IntegrationID = integration
	return p
}

// waitAll waits until every task is completed or archived.
func (e *env) waitAll(ids []string, within time.Duration) map[string]*asynq.TaskInfo {
	e.t.Helper()
	done := map[string]*asynq.TaskInfo{}
	deadline := time.Now().Add(within)
	for len(done) < len(ids) && time.Now().Before(deadline) {
		for _, id := range ids {
			if done[id] != nil {
				continue
			}
			if i, err := e.insp.GetTaskInfo("default", id); err == nil && (i.State == asynq.TaskStateCompleted || i.State == asynq.TaskStateArchived) {
				done[id] = i
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(done) < len(ids) {
		e.t.Fatalf("%d of %d tasks finished in %s", len(done), len(ids), within)
	}
	return done
}

// Must-show 1: access tokens that live 2 s, 4 worker processes, 200 reports
// of one integration: all published, no invalid_grant, and every refresh
// token used exactly once.
func TestFleetOf4SharesRefreshes(t *testing.T) {
	e := newEnv(t)
	e.fake.SetTokenLifetime(2 * time.Second)
	e.putOAuth("fleet")
	e.procEnv = []string{"WORKER_CONCURRENCY=3"}
	var workers []*proc
	for range 4 {
		workers = append(workers, e.start("worker", ""))
	}
	// Spread the work over several token lifetimes, and widen the race
	// windows with a little latency on every call, token endpoint included.
	e.fake.SetLatency(30 * time.Millisecond)
	start := time.Now()
	var ids []string
	for i := range 200 {
		ids = append(ids, e.enqueue(retroFor("fleet", fmt.Sprintf("fleet-%03d", i))).TaskID)
		time.Sleep(30 * time.Millisecond)
	}
	infos := e.waitAll(ids, 5*time.Minute)
	elapsed := time.Since(start)
	for id, info := range infos {
		if info.State != asynq.TaskStateCompleted {
			t.Errorf("%s ended %s: %s", id, info.State, info.LastErr)
		}
	}
	if n := len(e.fake.Pages("ENG")); n != 200+2 { // + home page + Retrospectives
		t.Errorf("%d pages in ENG, want 202", n)
	}
	log := e.fake.RefreshLog()
	if bad := refreshErrors(e.fake); len(bad) > 0 {
		t.Errorf("refused refreshes: %+v", bad)
	}
	if err := e.fake.CheckRefreshTokensUsedOnce(); err != nil {
		t.Error(err)
	}
	if len(log) < 3 {
		t.Errorf("only %d refreshes in %s: the test did not exercise rotation", len(log), elapsed)
	}
	rejected := 0
	for _, r := range e.fake.Requests() {
		if r.Status == 401 {
			rejected++
		}
	}
	t.Logf("200 reports, 4 workers × 3: %s, %d refreshes, %d requests answered 401", elapsed.Round(time.Millisecond), len(log), rejected)
	var logs []string
	for _, w := range workers {
		if !w.alive() {
			t.Error("a worker exited")
		}
		logs = append(logs, w.stderr.String())
	}
	e.assertNoSecrets(nil, logs...)
}

// Must-show 2: a revoked refresh token archives the next publish on its
// first attempt with a re-authorise message and marks the integration;
// other integrations keep publishing; new credentials rerun that publish.
func TestRevokedRefreshTokenAndRecovery(t *testing.T) {
	e := newEnv(t)
	e.startWorker(2)
	_, rt := e.putOAuth("revoked")
	e.fake.RevokeRefreshToken(rt)

	res := e.enqueue(retroFor("revoked", "rev-1"))
	info := e.wait("default", res.TaskID)
	if info.State != asynq.TaskStateArchived || info.Retried != 0 || !strings.Contains(info.LastErr, "re-authorise") {
		t.Fatalf("task %s retried %d: %q; want archived at once with a re-authorise message", info.State, info.Retried, info.LastErr)
	}
	show, code := e.runCmd("worker", "", "integrations", "show", "revoked")
	var view credstore.View
	if err := json.Unmarshal([]byte(show), &view); code != 0 || err != nil || !view.Status.NeedsReauth || view.Status.Since.IsZero() ||
		!strings.Contains(view.Status.Reason, "invalid_grant") {
		t.Fatalf("show: exit %d: %s", code, show)
	}
	e.publish(retro("other-integration", 1, 0)) // acme-cloud is unaffected

	access, refresh := e.fake.IssueTokens()
	rec := fmt.Sprintf(`{"id":"revoked","flavor":"cloud","cloud_id":%q,"auth":{"kind":"oauth2","access_token":%q,"refresh_token":%q}}`,
		e.fake.CloudID(), access, refresh)
	out, code := e.runCmd("worker", rec, "integrations", "put", "--file", "-")
	if code != 0 || !strings.Contains(out, `"replayed_parked":1`) {
		t.Fatalf("put: exit %d: %s", code, out)
	}
	if info := e.wait("default", res.TaskID); info.State != asynq.TaskStateCompleted {
		t.Fatalf("after new credentials: %s %s", info.State, info.LastErr)
	}
	e.onePage("Retro rev-1")
	if st := e.record("revoked").Status; st.NeedsReauth {
		t.Fatalf("status after put: %+v", st)
	}
	e.assertNoSecrets(map[string]string{"put access token": access, "put refresh token": refresh}, out, show)
}

// Must-show 3: a worker SIGKILLed right after the token endpoint answered
// with a new pair. The next worker publishes without invalid_grant: it
// either finds the pair saved (it is saved before any use) or refreshes
// with the old refresh token inside its grace window; and the killed
// publish completes too.
func TestSIGKILLRightAfterNewTokenPair(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for asynq's lease recovery (about a minute)")
	}
	e := newParallelEnv(t, 1)
	_, rt0 := e.putOAuth("killed")
	var (
		mu     sync.Mutex
		victim *proc
		killed = make(chan struct{})
		once   sync.Once
	)
	e.fake.AfterResponse(func(r confluencetest.Request) {
		if r.Path != "/oauth/token" || r.Status != 200 {
			return
		}
		once.Do(func() {
			mu.Lock()
			defer mu.Unlock()
			_ = victim.cmd.Process.Signal(syscall.SIGKILL)
			close(killed)
		})
	})
	mu.Lock()
	victim = e.start("worker", "")
	mu.Unlock()
	first := e.enqueue(retroFor("killed", "kill-1"))
	select {
	case <-killed:
	case <-time.After(60 * time.Second):
		t.Fatal("the worker never refreshed")
	}
	<-victim.done
	saved := e.record("killed").Auth.RefreshToken.Reveal() != rt0
	t.Logf("pair saved before the kill right after the answer: %v", saved)

	// A second worker is killed the moment its new pair shows in Redis: the
	// pair it saved is what the next worker uses, not the old token again.
	_, rtSaved := e.putOAuth("killed-saved")
	victim2 := e.start("worker", "")
	third := e.enqueue(retroFor("killed-saved", "kill-3"))
	for deadline := time.Now().Add(60 * time.Second); e.record("killed-saved").Auth.RefreshToken.Reveal() == rtSaved; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the second worker never saved a new pair")
		}
	}
	_ = victim2.cmd.Process.Signal(syscall.SIGKILL)
	<-victim2.done
	if e.mr != nil {
		// miniredis keeps time still: let the dead workers' refresh locks expire.
		e.mr.FastForward(time.Minute)
	}

	w2 := e.start("worker", "")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("refresh log: %+v", e.fake.RefreshLog())
			for _, r := range e.fake.Requests() {
				t.Logf("request %s %s %d", r.Method, r.Path, r.Status)
			}
		}
	})
	second := e.enqueue(retroFor("killed", "kill-2"))
	if info := e.wait("default", second.TaskID); info.State != asynq.TaskStateCompleted {
		t.Fatalf("next publish: %s %s", info.State, info.LastErr)
	}
	for id, info := range e.waitAll([]string{first.TaskID, third.TaskID}, 4*time.Minute) {
		if info.State != asynq.TaskStateCompleted {
			t.Fatalf("killed publish %s: %s %s", id, info.State, info.LastErr)
		}
	}
	if bad := refreshErrors(e.fake); len(bad) > 0 {
		t.Fatalf("refused refreshes: %+v", bad)
	}
	uses := 0
	for _, r := range e.fake.RefreshLog() {
		if r.RefreshToken == rtSaved {
			uses++
		}
	}
	if uses != 1 {
		t.Fatalf("the saved pair's predecessor was used %d times, want 1", uses)
	}
	for _, title := range []string{"Retro kill-1", "Retro kill-2", "Retro kill-3"} {
		e.onePage(title)
	}
	e.assertNoSecrets(nil, victim.stderr.String(), victim2.stderr.String(), w2.stderr.String())
}

// Must-show 4: after `worker keys rotate` no record is sealed under the old
// key id, and every integration still publishes with the new key alone,
// including one whose token is refreshed (and saved) after the rotation.
func TestKeysRotateThenPublish(t *testing.T) {
	e := newEnv(t)
	e.putOAuth("rotated-oauth")
	oldKeys := e.keys
	oldKID, _, _ := strings.Cut(oldKeys, ":")
	kid, key := credstore.GenerateKey()
	newKey := kid + ":" + key
	e.keys = newKey + "," + oldKeys
	out, code := e.runCmd("worker", "", "keys", "rotate")
	if code != 0 || !strings.Contains(out, `"resealed":2`) {
		t.Fatalf("rotate: exit %d: %s", code, out)
	}
	assertSealedOnlyUnder := func(want string) {
		t.Helper()
		ctx := context.Background()
		keys, _ := e.rdb.Keys(ctx, "retropub:integration:*").Result()
		n := 0
		for _, k := range keys {
			if e.rdb.Type(ctx, k).Val() != "string" {
				continue
			}
			var doc struct {
				Sealed struct{ KID string } `json:"sealed"`
			}
			if json.Unmarshal([]byte(e.rdb.Get(ctx, k).Val()), &doc) != nil || doc.Sealed.KID == "" {
				continue
			}
			n++
			if doc.Sealed.KID != want {
				t.Errorf("%s sealed under %q, want %q", k, doc.Sealed.KID, want)
			}
		}
		if n != 2 {
			t.Errorf("%d sealed records, want 2", n)
		}
	}
	assertSealedOnlyUnder(kid)

	keys, err := credstore.ParseKeys(newKey) // the old key is gone
	if err != nil {
		t.Fatal(err)
	}
	e.store = credstore.New(e.rdb, keys)
	e.startWorker(2)
	e.publish(retro("rot-static", 1, 0))
	e.publish(retroFor("rotated-oauth", "rot-oauth"))
	if len(e.fake.RefreshLog()) != 1 {
		t.Fatalf("refresh log %+v", e.fake.RefreshLog())
	}
	assertSealedOnlyUnder(kid)
	if strings.Contains(out, oldKID) && strings.Contains(out, key) {
		t.Error("rotate printed key material")
	}
	e.keys = e.keys + "," + oldKeys
	e.assertNoSecrets(nil, out)
}

// A 401 "scope does not match" is not fixed by a refresh: the integration
// is marked at once, with Confluence's message, and no refresh is tried.
func TestScopeMismatch401MarksWithoutRefresh(t *testing.T) {
	e := newEnv(t)
	e.startWorker(2)
	access, refresh := e.fake.IssueTokens()
	if err := e.store.Put(context.Background(), &credstore.Record{ID: "scoped", Flavor: "cloud", CloudID: e.fake.CloudID(),
		Auth: credstore.Auth{Kind: "oauth2", AccessToken: credstore.Secret(access), RefreshToken: credstore.Secret(refresh),
			ExpiresAt: time.Now().Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	e.fake.AddFault(confluencetest.Fault{Method: "GET", Path: regexp.MustCompile(`^/wiki/api/v2/spaces$`), Status: 401,
		Header: map[string][]string{"X-Failure-Category": {"FAILURE_CLIENT_SCOPE_CHECK"}},
		Body:   `{"code":401,"message":"Unauthorized; scope does not match"}`})
	info := e.wait("default", e.enqueue(retroFor("scoped", "sc-1")).TaskID)
	if info.State != asynq.TaskStateArchived || info.Retried != 0 || !strings.Contains(info.LastErr, "scope does not match") {
		t.Fatalf("%s retried %d: %s", info.State, info.Retried, info.LastErr)
	}
	if n := len(e.fake.RefreshLog()); n != 0 {
		t.Fatalf("%d refreshes for a scope mismatch", n)
	}
	if st := e.record("scoped").Status; !st.NeedsReauth || !strings.Contains(st.Reason, "scope does not match") {
		t.Fatalf("status %+v", st)
	}
}

// A record with only site_url gets its cloud id from accessible-resources,
// cached in the record; a grant lacking a publish scope is archived with
// an error naming it.
func TestSiteURLResolvesCloudIDAndScopesAreChecked(t *testing.T) {
	e := newEnv(t)
	e.startWorker(2)
	put := func(id string) {
		access, refresh := e.fake.IssueTokens()
		if err := e.store.Put(context.Background(), &credstore.Record{ID: id, Flavor: "cloud", SiteURL: "https://example.atlassian.net",
			Auth: credstore.Auth{Kind: "oauth2", AccessToken: credstore.Secret(access), RefreshToken: credstore.Secret(refresh),
				ExpiresAt: time.Now().Add(time.Hour)}}); err != nil {
			t.Fatal(err)
		}
	}
	put("by-site")
	e.publish(retroFor("by-site", "site-1"))
	if rec := e.record("by-site"); rec.CloudID != e.fake.CloudID() || len(rec.Auth.Scopes) == 0 {
		t.Fatalf("record after publish: %+v", rec.View())
	}
	calls := 0
	for _, r := range e.fake.Requests() {
		if r.Path == "/oauth/token/accessible-resources" {
			calls++
		}
	}
	e.publish(retroFor("by-site", "site-2"))
	for _, r := range e.fake.Requests() {
		if r.Path == "/oauth/token/accessible-resources" {
			calls--
		}
	}
	if calls != 0 {
		t.Fatal("the cloud id was looked up again instead of read from the record")
	}

	put("narrow")
	if err := e.store.SetSite(context.Background(), "narrow", e.fake.CloudID(), []string{"read:page:confluence", "read:space:confluence", "offline_access"}); err != nil {
		t.Fatal(err)
	}
	info := e.wait("default", e.enqueue(retroFor("narrow", "narrow-1")).TaskID)
	if info.State != asynq.TaskStateArchived || !strings.Contains(info.LastErr, "write:page:confluence") {
		t.Fatalf("%s: %s", info.State, info.LastErr)
	}
}

// Onboarding through the binary: oauth-url prints a consent URL with a
// state; oauth-exchange turns the callback's code into a stored record
// that publishes.
func TestOAuthURLAndExchangeCommands(t *testing.T) {
	e := newEnv(t)
	out, code := e.runCmd("worker", "", "integrations", "oauth-url", "--redirect-uri", "https://app.example.com/cb")
	var u struct{ URL, State string }
	if err := json.Unmarshal([]byte(out), &u); code != 0 || err != nil || u.State == "" ||
		!strings.Contains(u.URL, "offline_access") || !strings.Contains(u.URL, "prompt=consent") || !strings.Contains(u.URL, "state="+u.State) {
		t.Fatalf("oauth-url: exit %d: %s", code, out)
	}
	c := e.fake.NewAuthorizationCode("https://app.example.com/cb")
	out, code = e.runCmd("worker", "", "integrations", "oauth-exchange", "--code", c, "--redirect-uri", "https://app.example.com/cb", "--id", "onboarded")
	if code != 0 || !strings.Contains(out, `"cloud_id":"`+e.fake.CloudID()+`"`) {
		t.Fatalf("oauth-exchange: exit %d: %s", code, out)
	}
	e.startWorker(2)
	e.publish(retroFor("onboarded", "onb-1"))
	e.assertNoSecrets(nil, out)
}
