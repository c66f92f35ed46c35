package jobs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis keys. Everything retropub itself keeps lives under "retropub:".
func mappingKey(integration, reportID string) string {
	return "retropub:map:" + integration + ":" + reportID
}
func reportLockKey(integration, reportID string) string {
	return "retropub:lock:report:" + integration + ":" + reportID
}
func spaceKey(integration, key string) string {
	return "retropub:space:" + integration + ":" + key
}
func parentKey(integration, spaceID, root, title string) string {
	return "retropub:parent:" + integration + ":" + spaceID + ":" + root + ":" + strings.ToLower(title)
}
func parentLockKey(integration, spaceID, title string) string {
	return "retropub:lock:parent:" + integration + ":" + spaceID + ":" + strings.ToLower(title)
}

// cacheTTL bounds how long a space or parent id is trusted without
// Confluence confirming it; a 404 drops it at once.
const cacheTTL = 7 * 24 * time.Hour

// mapping is what retropub remembers about one report's page.
type mapping struct {
	Revision    int64  // highest revision fully published
	PageID      string // empty: no page yet
	SpaceID     string
	ParentID    string
	TitleWanted string // the report's title, trimmed
	Title       string // the title Confluence holds (may be disambiguated)
	Version     int    // the page version we wrote last
	BodyHash    string
	Fresh       bool   // page created by us, no upload attempted since
	Pending     string // task id of an attempt that began creating the page
	Files       map[string]fileState
}

type fileState struct{ ID, Hash string }

const fieldFilePrefix = "a:"

func loadMapping(ctx context.Context, rdb redis.UniversalClient, key string) (*mapping, error) {
	h, err := rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("read mapping: %w", err)
	}
	m := &mapping{
		PageID: h["page_id"], SpaceID: h["space_id"], ParentID: h["parent_id"],
		TitleWanted: h["title_wanted"], Title: h["title"], BodyHash: h["body_hash"],
		Fresh: h["fresh"] == "1", Pending: h["pending"], Files: map[string]fileState{},
	}
	m.Revision, _ = strconv.ParseInt(h["revision"], 10, 64)
	m.Version, _ = strconv.Atoi(h["version"])
	for k, v := range h {
		if name, ok := strings.CutPrefix(k, fieldFilePrefix); ok {
			id, hash, _ := strings.Cut(v, " ")
			m.Files[name] = fileState{ID: id, Hash: hash}
		}
	}
	return m, nil
}

// lock is a Redis lock owned by a token; taking it again with the same
// token succeeds, so a retry of a crashed attempt takes over its lock.
type lock struct {
	rdb   redis.UniversalClient
	key   string
	token string
}

var errLockHeld = errors.New("lock held by another task")

func (l *lock) acquire(ctx context.Context, ttl time.Duration) error {
	ok, err := acquireScript.Run(ctx, l.rdb, []string{l.key}, l.token, ttl.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("take lock %s: %w", l.key, err)
	}
	if ok == 0 {
		return errLockHeld
	}
	return nil
}

func (l *lock) release(ctx context.Context) error {
	return releaseScript.Run(ctx, l.rdb, []string{l.key}, l.token).Err()
}

var acquireScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0`)

var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)
