package test

import (
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"retropub/internal/blocked"
	"retropub/internal/rediskeys"
	"retropub/outcomes"
)

// Must-show 4 (issue 14): an app access rule blocks the app from space
// ENG. Its publish ends at once with class `blocked` and a message naming
// the space, the setting and who can change it, and is not retried; a
// publish to OPS of the same integration completes in the same run (no
// breaker opened on the shared instance); the integration's status lists
// ENG. Once the rule is lifted, publishing there again clears it.
func TestBlockedSpace(t *testing.T) {
	e := newEnv(t)
	e.fake.AddSpace("OPS", "Ops")
	e.fake.BlockSpace("ENG")
	e.startWorkers(1)

	eng := e.enqueue(retro("blocked-eng", 1, 1))
	opsP := retro("open-ops", 1, 1)
	opsP.Target.SpaceKey = "OPS"
	ops := e.enqueue(opsP)
	info := e.wait("default", eng.TaskID)
	if info.State != asynq.TaskStateArchived || info.Retried != 0 {
		t.Fatalf("blocked publish: %s after %d retries: %s", info.State, info.Retried, info.LastErr)
	}
	for _, want := range []string{"space ENG is blocked", "app access rule", "Data security policies", "organization admin"} {
		if !strings.Contains(info.LastErr, want) {
			t.Errorf("message %q does not say %q", info.LastErr, want)
		}
	}
	if o := e.wait("default", ops.TaskID); o.State != asynq.TaskStateCompleted {
		t.Fatalf("publish to OPS: %s: %s", o.State, o.LastErr)
	}
	if len(e.pagesIn("OPS", "Retro open-ops")) != 1 {
		t.Fatalf("OPS page missing:\n%s", e.fake.Tree("OPS"))
	}
	if e.fake.BlockedRefusals() == 0 {
		t.Fatal("the fake refused nothing: the test proves nothing")
	}
	if n := e.rdb.Exists(t.Context(), rediskeys.Gate("cloud:"+e.fake.CloudID(), "breaker")).Val(); n != 0 {
		t.Error("a blocked space opened the instance's circuit breaker")
	}

	st := &outcomes.Store{Redis: e.rdb}
	is, err := st.IntegrationStatus(t.Context(), "acme-cloud")
	if err != nil || len(is.BlockedSpaces) != 1 || is.BlockedSpaces[0] != "ENG" {
		t.Fatalf("integration status %+v (%v), want blocked_spaces [ENG]", is, err)
	}
	rs, err := st.ReportStatus(t.Context(), "acme-cloud", "blocked-eng")
	if err != nil || rs.Error == nil || rs.Error.Class != outcomes.ClassBlocked {
		t.Fatalf("report status %+v (%v), want error class blocked", rs, err)
	}
	// Not retried: nothing more reaches Confluence for it.
	before := len(e.fake.Requests())
	time.Sleep(2 * time.Second)
	if n := len(e.fake.Requests()) - before; n != 0 {
		t.Fatalf("%d more requests after the blocked publish ended", n)
	}

	e.fake.UnblockSpace("ENG")
	e.publish(retro("blocked-eng", 2, 1))
	e.onePage("Retro blocked-eng")
	if left, err := blocked.Spaces(t.Context(), e.rdb, "acme-cloud"); err != nil || len(left) != 0 {
		t.Fatalf("blocked spaces after a successful publish: %+v (%v)", left, err)
	}
	if is, _ := st.IntegrationStatus(t.Context(), "acme-cloud"); len(is.BlockedSpaces) != 0 {
		t.Fatalf("status still lists %v", is.BlockedSpaces)
	}
}

// pagesIn lists the fake's pages of a space with that title.
func (e *env) pagesIn(space, title string) []string {
	var ids []string
	for _, p := range e.fake.Pages(space) {
		if p.Title == title {
			ids = append(ids, p.ID)
		}
	}
	return ids
}
