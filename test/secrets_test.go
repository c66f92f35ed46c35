package test

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"retropub/confluence/confluencetest"
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
	if !strings.Contains(e.logs.String(), "s1") {
		t.Fatal("logs were not captured; the scan proves nothing")
	}
	e.assertNoSecrets(map[string]string{"revoked token": bad})
}

// assertNoSecrets scans every Redis key and value, the in-process worker's
// logs, the given process logs, and every task result and error, for the
// access token of the env, every token and code the fake handed out, the
// OAuth client secret and the credstore keys.
func (e *env) assertNoSecrets(extra map[string]string, logs ...string) {
	t := e.t
	t.Helper()
	secrets := map[string]string{"access token": e.token}
	for k, v := range extra {
		secrets[k] = v
	}
	for i, entry := range strings.Split(e.keys, ",") {
		kid, b64, _ := strings.Cut(entry, ":")
		raw, _ := base64.StdEncoding.DecodeString(b64)
		secrets[fmt.Sprintf("key %d %s (base64)", i, kid)] = b64
		secrets[fmt.Sprintf("key %d %s (raw)", i, kid)] = string(raw)
	}
	for i, s := range e.fake.IssuedSecrets() {
		secrets[fmt.Sprintf("issued token or code %d (%.3s…)", i, s)] = s
	}
	_, clientSecret := e.fake.ClientCredentials()
	secrets["client secret"] = clientSecret
	// Service accounts (DESIGN §11): their client secrets and the tokens
	// both flavours' token endpoints issued.
	sites := []*confluencetest.Server{e.fake}
	if e.dc != nil {
		sites = append(sites, e.dc.Server)
	}
	for si, site := range sites {
		for i, s := range site.ServiceAccountSecrets() {
			secrets[fmt.Sprintf("site %d service account secret %d", si, i)] = s
		}
		for i, s := range site.IssuedSecrets() {
			secrets[fmt.Sprintf("site %d issued token %d (%.3s…)", si, i, s)] = s
		}
	}
	check := func(where, value string) {
		for name, s := range secrets {
			if s != "" && strings.Contains(value, s) {
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
		case "stream": // the outcome stream and a cluster's outboxes
			for _, m := range e.rdb.XRange(ctx, k, "-", "+").Val() {
				check(k+" "+m.ID, fmt.Sprint(m.Values))
			}
		}
	}
	check("worker logs", e.logs.String())
	for i, l := range logs {
		check(fmt.Sprintf("process log %d", i), l)
	}
	var infos []string
	completed, _ := e.insp.ListCompletedTasks("default")
	archived, _ := e.insp.ListArchivedTasks("default")
	for _, i := range append(completed, archived...) {
		infos = append(infos, string(i.Result), i.LastErr)
	}
	check("task results and errors", strings.Join(infos, "\n"))
}
