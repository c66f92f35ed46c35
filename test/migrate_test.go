package test

import (
	"context"
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"retropub/internal/rediskeys"
	"retropub/outcomes"
)

// legacyLayout renames every key this version wrote to the name the code
// before the hash tags gave it (rediskeys.Legacy drops the tag's braces;
// kinds that code never wrote, such as statuses and parked reports, keep
// their names) and removes the layout marker: the database a deployment
// of that code holds.
func legacyLayout(t *testing.T, rdb redis.UniversalClient) {
	t.Helper()
	ctx := context.Background()
	keys, err := rdb.Keys(ctx, rediskeys.Prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		old, ok := rediskeys.Legacy(k)
		if back, _ := rediskeys.Tagged(old); !ok || back != k {
			continue
		}
		if err := rdb.Rename(ctx, k, old).Err(); err != nil {
			t.Fatal(err)
		}
	}
	rdb.Del(ctx, rediskeys.Layout)
	// The names the code before the tags used (jobs/state.go, credstore).
	for _, k := range []string{"retropub:map:acme-cloud:mig-00", "retropub:integration:acme-cloud",
		"retropub:space:acme-cloud:ENG", "retropub:parent:acme-cloud:" + e2eSpaceID(t, rdb) + "::retrospectives", rediskeys.Integrations} {
		if rdb.Exists(ctx, k).Val() != 1 {
			t.Fatalf("legacy layout lacks %s", k)
		}
	}
}

// e2eSpaceID is the ENG space's id as the legacy space cache holds it.
func e2eSpaceID(t *testing.T, rdb redis.UniversalClient) string {
	id := rdb.HGet(context.Background(), "retropub:space:acme-cloud:ENG", "id").Val()
	if id == "" {
		t.Fatal("no legacy space cache")
	}
	return id
}

// Must-show 4: `worker migrate` on a database in the layout before the
// hash tags, while workers of this version publish: every mapping, record,
// cache and parked report reachable under the new names; nothing lost or
// published twice; a second run changes nothing.
func TestMigrateLegacyLayoutWhilePublishing(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a database and publishes through worker processes")
	}
	t.Parallel()
	rs := startRedisServer(t, freePort(t))
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", rs.port)})
	e := newEnvOn(t, rdb, rs.url())
	ctx := context.Background()

	// The deployment's history: 30 reports published, one parked.
	w := e.start("worker", "")
	var first []string
	for i := range 30 {
		first = append(first, e.enqueue(e.retro(fmt.Sprintf("mig-%02d", i), 1, 1)).TaskID)
	}
	_, rt := e.putOAuth("revoked")
	e.fake.RevokeRefreshToken(rt)
	parked := e.enqueue(retroFor("revoked", "mig-parked")).TaskID
	e.waitCompleted("default", first, 2*time.Minute)
	if info := e.wait("default", parked); info.State != asynq.TaskStateArchived {
		t.Fatalf("the revoked integration's publish: %s", info.State)
	}
	pageIDs := map[string]string{}
	for i := range 30 {
		title := fmt.Sprintf("Retro mig-%02d", i)
		pageIDs[title] = e.onePage(title).ID
	}
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	<-w.done

	legacyLayout(t, rdb)
	// Other customers' keys, so the migration takes a few seconds.
	pipe := rdb.Pipeline()
	for i := range 20000 {
		pipe.HSet(ctx, fmt.Sprintf("retropub:space:filler-%05d:ENG", i), "id", "1", "homepage", "2")
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}

	// Workers of this version publish while migrate runs: new revisions
	// of old reports, unchanged republishes, new reports.
	e.fake.SetLatency(30 * time.Millisecond)
	workers := e.startWorkers(2)
	var during []string
	for i := range 30 {
		p := e.retro(fmt.Sprintf("mig-%02d", i), 2, 1)
		if i < 20 {
			p.Report.Summary = "revised during the migration"
		}
		during = append(during, e.enqueue(p).TaskID)
		during = append(during, e.enqueue(e.retro(fmt.Sprintf("mig-new-%02d", i), 1, 1)).TaskID)
	}
	completed := func() int {
		n := 0
		for _, id := range during {
			if info, err := e.insp.GetTaskInfo("default", id); err == nil && info.State == asynq.TaskStateCompleted {
				n++
			}
		}
		return n
	}
	before := completed()
	out, code := e.runCmd("worker", "", "migrate")
	after := completed()
	var rep struct{ Scanned, Renamed, Superseded int }
	if err := json.Unmarshal([]byte(out), &rep); code != 0 || err != nil || rep.Renamed < 20000 {
		t.Fatalf("migrate: exit %d: %s", code, out)
	}
	t.Logf("migrate: %s; publishes completed during it: %d → %d of %d", out, before, after, len(during))
	if before == len(during) || after == before {
		t.Errorf("no publish completed while migrate ran (%d → %d of %d): the test proves nothing", before, after, len(during))
	}
	e.waitCompleted("default", during, 3*time.Minute)

	for i := range 30 {
		title := fmt.Sprintf("Retro mig-%02d", i)
		pg := e.onePage(title) // one page: the mapping was found, not a second page made
		if pg.ID != pageIDs[title] {
			t.Errorf("%s: page %s, was %s", title, pg.ID, pageIDs[title])
		}
		want := 1
		if i < 20 {
			want = 2
		}
		if pg.Version != want {
			t.Errorf("%s: version %d, want %d", title, pg.Version, want)
		}
		info, _ := e.insp.GetTaskInfo("default", during[2*i])
		if res := result(t, info); i >= 20 && res.Outcome != "unchanged" {
			t.Errorf("%s: republished unchanged report: %s", title, res.Outcome)
		}
		e.onePage(fmt.Sprintf("Retro mig-new-%02d", i))
		if n := len(e.fake.Attachments(pg.ID)); n != 1 {
			t.Errorf("%s: %d attachments", title, n)
		}
	}
	// Caches and the record under their new names.
	res := result(t, e.publish(e.retro("mig-after", 1, 0)))
	if res.Steps["resolve_space"] != "cached" || res.Steps["ensure_parent"] != "cached" {
		t.Errorf("caches not found after migrate: %v", res.Steps)
	}
	if out, code := e.runCmd("worker", "", "integrations", "show", "acme-cloud"); code != 0 {
		t.Errorf("integrations show: exit %d: %s", code, out)
	}
	ps, err := (&outcomes.Store{Redis: rdb}).ListParked(ctx, "revoked")
	if err != nil || len(ps) != 1 || ps[0].ReportID != "mig-parked" {
		t.Errorf("parked reports after migrate: %+v %v", ps, err)
	}
	for _, p := range workers {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		<-p.done
	}
	keys := rdb.Keys(ctx, rediskeys.Prefix+"*").Val()
	for _, k := range keys {
		if _, legacy := rediskeys.Tagged(k); legacy {
			t.Errorf("legacy key %s left", k)
		}
	}

	out, code = e.runCmd("worker", "", "migrate")
	if err := json.Unmarshal([]byte(out), &rep); code != 0 || err != nil || rep.Renamed != 0 || rep.Superseded != 0 {
		t.Fatalf("second migrate: exit %d: %s", code, out)
	}
	if again := rdb.Keys(ctx, rediskeys.Prefix+"*").Val(); len(again) != len(keys) {
		t.Errorf("second migrate changed the keys: %d → %d", len(keys), len(again))
	}
}
