package jobs

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"retropub/internal/rediskeys"
	"retropub/internal/redislock"
)

// Redis keys (internal/rediskeys): every key of one integration shares
// its hash slot, so the scripts below run on Redis Cluster.
func mappingKey(integration, reportID string) string {
	return rediskeys.Mapping(integration, reportID)
}
func reportLockKey(integration, reportID string) string {
	return rediskeys.ReportLock(integration, reportID)
}
func spaceKey(integration, key string) string {
	return rediskeys.Space(integration, key)
}
func parentKey(integration, spaceID, root, title string) string {
	return rediskeys.Parent(integration, spaceID, root, strings.ToLower(title))
}
func parentLockKey(integration, spaceID, title string) string {
	return rediskeys.ParentLock(integration, spaceID, strings.ToLower(title))
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
	URL         string // the page's address, as Confluence gave it
	Version     int    // the page version we wrote last
	BodyHash    string
	Fresh       bool   // page created by us, no upload attempted since
	Pending     string // task id of an attempt that began creating the page
	Files       map[string]fileState
}

type fileState struct{ ID, Hash string }

const fieldFilePrefix = "a:"

// mappingTTL bounds a mapping's life: every publish of the report
// (unchanged ones too) pushes it 400 days on, so a report left alone for
// longer is forgotten. Its next publish finds its page again by title and
// footer (the create answers "title exists", findOwn adopts the page),
// at the cost of two or three calls once (docs/performance.md).
const mappingTTL = 400 * 24 * time.Hour

// lockAndReadScript takes the report lock, reads the mapping and, when no
// page is mapped yet, marks the create as pending, in one round trip. The
// mapping returned is the one before the mark, so a first attempt does not
// look before it creates while a retry of it does.
// KEYS: lock, mapping. ARGV: token, lock ttl ms, mapping ttl ms.
// Returns {0} when the lock is held by another token, else {1, HGETALL}.
var lockAndReadScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v ~= false and v ~= ARGV[1] then return {0} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local h = redis.call('HGETALL', KEYS[2])
if redis.call('HEXISTS', KEYS[2], 'page_id') == 0 then redis.call('HSET', KEYS[2], 'pending', ARGV[1]) end
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return {1, h}`)

// lockAndRead runs lockAndReadScript; redislock.ErrHeld when another task
// holds the lock.
func lockAndRead(ctx context.Context, rdb redis.UniversalClient, l *redislock.Lock, key string, ttl time.Duration) (*mapping, error) {
	res, err := lockAndReadScript.Run(ctx, rdb, []string{l.Key, key}, l.Token, ttl.Milliseconds(), mappingTTL.Milliseconds()).Slice()
	if err != nil {
		return nil, fmt.Errorf("take lock %s and read mapping: %w", l.Key, err)
	}
	if ok, _ := res[0].(int64); ok == 0 || len(res) < 2 {
		return nil, redislock.ErrHeld
	}
	flat, _ := res[1].([]any)
	h := make(map[string]string, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		k, _ := flat[i].(string)
		v, _ := flat[i+1].(string)
		h[k] = v
	}
	return parseMapping(h), nil
}

func parseMapping(h map[string]string) *mapping {
	m := &mapping{
		PageID: h["page_id"], SpaceID: h["space_id"], ParentID: h["parent_id"],
		TitleWanted: h["title_wanted"], Title: h["title"], URL: h["url"], BodyHash: h["body_hash"],
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
	return m
}

// saveAndReleaseScript raises the mapping's revision (never lowers it),
// pushes its expiry on and releases the report lock, in one round trip.
// KEYS: mapping, lock. ARGV: revision, token, mapping ttl ms.
var saveAndReleaseScript = redis.NewScript(saveAndReleaseLua + "return 1")

// saveAndReleaseLua is shared with saveRecordAndReleaseScript, which also
// records the outcome.
const saveAndReleaseLua = `
local cur = tonumber(redis.call('HGET', KEYS[1], 'revision') or '0')
if tonumber(ARGV[1]) > cur then redis.call('HSET', KEYS[1], 'revision', ARGV[1]) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if redis.call('GET', KEYS[2]) == ARGV[2] then redis.call('DEL', KEYS[2]) end
`
