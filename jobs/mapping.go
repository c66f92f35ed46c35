package jobs

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"retropub/confluence"

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

// The mapping is the publish task's resumption state: what retropub
// remembers in Redis about one report's page, so that any attempt (a
// retry, a run after a crash) continues from what earlier ones did. Only
// mappingStore writes it.

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

// mappingStore owns one report's mapping: its key, the report lock, the
// scripts, and every write to it. It keeps m, the mapping as read under
// the lock, up to date with its own writes.
type mappingStore struct {
	rdb    redis.UniversalClient
	legacy *rediskeys.Fallback
	key    string
	lock   *redislock.Lock
	held   bool // the lock is ours until the revision is saved
	m      *mapping
}

func newMappingStore(rdb redis.UniversalClient, legacy *rediskeys.Fallback, integration, reportID, taskID string) *mappingStore {
	return &mappingStore{
		rdb: rdb, legacy: legacy, key: mappingKey(integration, reportID),
		lock: redislock.New(rdb, reportLockKey(integration, reportID), taskID),
	}
}

// lockAndRead takes the report lock and reads the mapping in one script
// (lockAndReadScript); redislock.ErrHeld when another task holds the lock.
func (s *mappingStore) lockAndRead(ctx context.Context) (*mapping, error) {
	if err := s.legacy.Adopt(ctx, s.lock.Key, s.key); err != nil {
		return nil, err
	}
	res, err := lockAndReadScript.Run(ctx, s.rdb, []string{s.lock.Key, s.key}, s.lock.Token, lockTTL.Milliseconds(), mappingTTL.Milliseconds()).Slice()
	if err != nil {
		return nil, fmt.Errorf("take lock %s and read mapping: %w", s.lock.Key, err)
	}
	if ok, _ := res[0].(int64); ok == 0 || len(res) < 2 {
		return nil, redislock.ErrHeld
	}
	s.held = true
	flat, _ := res[1].([]any)
	h := make(map[string]string, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		k, _ := flat[i].(string)
		v, _ := flat[i+1].(string)
		h[k] = v
	}
	s.m = parseMapping(h)
	return s.m, nil
}

// forgetPage drops a mapped page Confluence no longer has and marks the
// create as pending (the script marks it when no page was mapped): the
// next create may go through unheard, so a later attempt must look first.
func (s *mappingStore) forgetPage(ctx context.Context) error {
	pipe := s.rdb.TxPipeline()
	pipe.HDel(ctx, s.key, "page_id", "version", "body_hash")
	pipe.HSet(ctx, s.key, "pending", s.lock.Token)
	pipe.PExpire(ctx, s.key, mappingTTL)
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	s.m.PageID, s.m.Files, s.m.Pending = "", map[string]fileState{}, s.lock.Token
	return nil
}

// forgetFiles drops the mapping's file records, so the next upload looks
// each file up (or, on a fresh page, adds it) instead of trusting ids.
func (s *mappingStore) forgetFiles(ctx context.Context) error {
	fields := make([]string, 0, len(s.m.Files))
	for name := range s.m.Files {
		fields = append(fields, fieldFilePrefix+name)
	}
	s.m.Files = map[string]fileState{}
	if len(fields) == 0 {
		return nil
	}
	return s.rdb.HDel(ctx, s.key, fields...).Err()
}

// savePage records the page just written (fresh: created by this
// attempt, no upload tried yet) and clears the pending marker.
func (s *mappingStore) savePage(ctx context.Context, pg *confluence.Page, spaceID, parentID, titleWanted, hash, url string, fresh bool) error {
	fields := []any{
		"page_id", pg.ID, "space_id", spaceID, "parent_id", parentID, "title_wanted", titleWanted,
		"title", pg.Title, "version", strconv.Itoa(pg.Version.Number), "body_hash", hash, "url", url,
	}
	if fresh {
		fields = append(fields, "fresh", "1")
	}
	pipe := s.rdb.TxPipeline()
	pipe.HSet(ctx, s.key, fields...)
	pipe.HDel(ctx, s.key, "pending")
	pipe.PExpire(ctx, s.key, mappingTTL)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("save mapping for page %s: %w", pg.ID, err)
	}
	m := s.m
	m.PageID, m.Version, m.ParentID, m.Title, m.TitleWanted, m.BodyHash, m.URL = pg.ID, pg.Version.Number, parentID, pg.Title, titleWanted, hash, url
	m.Fresh = m.Fresh || fresh
	return nil
}

// saveFiles records uploaded files (name → id and hash) in one write.
func (s *mappingStore) saveFiles(ctx context.Context, files map[string]fileState) error {
	fields := make([]any, 0, 2*len(files))
	for name, st := range files {
		s.m.Files[name] = st
		fields = append(fields, fieldFilePrefix+name, st.ID+" "+st.Hash)
	}
	return s.rdb.HSet(ctx, s.key, fields...).Err()
}

// clearFresh ends the page's freshness: from the first upload on, a file
// not in the mapping may be in Confluence.
func (s *mappingStore) clearFresh(ctx context.Context) error {
	if !s.m.Fresh {
		return nil
	}
	s.m.Fresh = false
	return s.rdb.HDel(ctx, s.key, "fresh").Err()
}

// saveRevisionAndRelease raises the mapping's revision (never lowers it)
// and releases the report lock, in one script: the run is over. With
// outcome keys and arguments (outcomes.Recorder.ReportKeysArgs) the same
// script records the outcome, and its answer is returned.
func (s *mappingStore) saveRevisionAndRelease(ctx context.Context, revision int64, outcomeKeys []string, outcomeArgs []any) (any, error) {
	keys := []string{s.key, s.lock.Key}
	args := []any{revision, s.lock.Token, mappingTTL.Milliseconds()}
	script := saveAndReleaseScript
	if outcomeKeys != nil {
		keys, args, script = append(keys, outcomeKeys...), append(args, outcomeArgs...), saveRecordAndReleaseScript
	}
	res, err := script.Run(ctx, s.rdb, keys, args...).Result()
	if err == nil {
		s.held = false
	}
	return res, err
}

// release frees the report lock if the run still holds it.
func (s *mappingStore) release(ctx context.Context) error {
	if !s.held {
		return nil
	}
	return s.lock.Release(ctx)
}
