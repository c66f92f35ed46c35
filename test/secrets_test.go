package test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"retropub/credstore"
)

// Must-show 8: no secret (access token, key) appears in logs, errors, task
// results or any Redis value.
func TestNoSecretInRedisLogsOrResults(t *testing.T) {
	e := newEnv(t)
	e.startWorker(2)
	e.publish(retro("s1", 1, 2))
	p := retro("s2", 1, 0)
	p.Target.SpaceKey = "NOPE" // archived: space not found
	e.wait("default", e.enqueue(p).TaskID)
	bad := "revoked-" + strings.Repeat("x", 20)
	if err := e.store.Put(context.Background(), &credstore.Record{ID: "revoked", Flavor: "cloud", CloudID: e.fake.CloudID(),
		Auth: credstore.Auth{Kind: "oauth2", AccessToken: credstore.Secret(bad)}}); err != nil {
		t.Fatal(err)
	}
	p3 := retro("s3", 1, 0)
	p3.IntegrationID = "revoked"
	e.wait("default", e.enqueue(p3).TaskID)

	raw, _ := base64.StdEncoding.DecodeString(e.keyB64)
	secrets := map[string]string{"access token": e.token, "revoked token": bad, "key (base64)": e.keyB64, "key (raw)": string(raw)}
	check := func(where, value string) {
		for name, s := range secrets {
			if strings.Contains(value, s) {
				t.Errorf("%s found in %s", name, where)
			}
		}
	}
	ctx := context.Background()
	keys, err := e.rdb.Keys(ctx, "*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("keys: %v %d", err, len(keys))
	}
	for _, k := range keys {
		check("key name "+k, k)
		switch e.rdb.Type(ctx, k).Val() {
		case "string":
			check(k, e.rdb.Get(ctx, k).Val())
		case "hash":
			for f, v := range e.rdb.HGetAll(ctx, k).Val() {
				check(k+"."+f, f+v)
			}
		case "list":
			check(k, strings.Join(e.rdb.LRange(ctx, k, 0, -1).Val(), "\n"))
		case "set":
			check(k, strings.Join(e.rdb.SMembers(ctx, k).Val(), "\n"))
		case "zset":
			check(k, strings.Join(e.rdb.ZRange(ctx, k, 0, -1).Val(), "\n"))
		}
	}
	check("worker logs", e.logs.String())
	if !strings.Contains(e.logs.String(), "s1") {
		t.Fatal("logs were not captured; the scan proves nothing")
	}
	for _, st := range []string{"completed", "archived"} {
		var infos []string
		if st == "completed" {
			l, _ := e.insp.ListCompletedTasks("default")
			for _, i := range l {
				infos = append(infos, string(i.Result), i.LastErr)
			}
		} else {
			l, _ := e.insp.ListArchivedTasks("default")
			for _, i := range l {
				infos = append(infos, string(i.Result), i.LastErr)
			}
		}
		check(st+" task results and errors", strings.Join(infos, "\n"))
	}
}
