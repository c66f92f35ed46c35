package test

import (
	"context"
	"strings"
	"testing"
	"time"

	"retropub/internal/rediskeys"
	"retropub/outcomes"
)

// Every key a publish leaves in Redis expires, the mapping after about
// 400 days (refreshed by every publish), so years of reports stay bounded.
func TestPublishLeavesNoKeyWithoutExpiry(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.startWorker(2)
	e.publish(e.retro("ttl", 1, 2))
	e.publish(e.retro("ttl", 2, 2)) // unchanged republish
	keys, err := e.rdb.Keys(ctx, "retropub:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k == rediskeys.Integrations || strings.HasPrefix(k, "retropub:integration:") || k == rediskeys.Ready || k == rediskeys.Layout {
			continue // integration records live until deleted; the markers are single small keys
		}
		if k == outcomes.StreamKey {
			continue // trimmed by length (OUTCOME_STREAM_MAXLEN), not by time
		}
		ttl, err := e.rdb.TTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl < 0 {
			t.Errorf("key %s has no expiry", k)
		}
		if k == rediskeys.Mapping(e.integration, "ttl") && (ttl < 399*24*time.Hour || ttl > 400*24*time.Hour) {
			t.Errorf("mapping expires in %s, want about 400 days", ttl)
		}
	}
}

// A report whose mapping expired finds its page by title and footer: no
// duplicate page, the same page updated.
func TestExpiredMappingFindsItsPage(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.startWorker(2)
		first := result(t, e.publish(e.retro("old", 1, 1)))
		if err := e.rdb.Del(ctx, rediskeys.Mapping(e.integration, "old")).Err(); err != nil {
			t.Fatal(err)
		}
		p := e.retro("old", 2, 1)
		p.Report.Summary = "years later"
		again := result(t, e.publish(p))
		if again.PageID != first.PageID {
			t.Fatalf("republish after the mapping expired wrote page %s, want %s", again.PageID, first.PageID)
		}
		e.onePage("Retro old")
		if n := len(e.fake.Attachments(first.PageID)); n != 1 {
			t.Fatalf("page has %d attachments, want 1", n)
		}
	})
}
