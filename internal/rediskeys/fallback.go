package rediskeys

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// LayoutTagged is the value of Layout once every key has its tagged name.
const LayoutTagged = "tagged"

// Fallback lets a deployment made before the hash tags run this code
// before `worker migrate` has renamed its keys: Adopt renames a key's
// legacy twin to the tagged name the first time the key is touched, in
// one script, so a mapping, a lock or a record is never read under one
// name while it is written under the other. Once Layout says "tagged"
// (migrate sets it), Adopt costs nothing. A nil *Fallback adopts nothing:
// a new deployment, or a cluster, which never held the legacy layout (its
// cross-slot renames would fail there anyway).
type Fallback struct {
	rdb     redis.UniversalClient
	done    atomic.Bool
	checkAt atomic.Int64 // unix ns of the next look at Layout
}

// recheck is how often a Fallback looks whether migrate has finished.
const recheck = 5 * time.Second

// NewFallback returns the Fallback for rdb; nil on a cluster. It asks
// Redis nothing until first used.
func NewFallback(rdb redis.UniversalClient) *Fallback {
	if _, cluster := rdb.(*redis.ClusterClient); cluster {
		return nil
	}
	return &Fallback{rdb: rdb}
}

// MarkTagged records that every key has its tagged name.
func MarkTagged(ctx context.Context, rdb redis.UniversalClient) error {
	if err := rdb.Set(ctx, Layout, LayoutTagged, 0).Err(); err != nil {
		return fmt.Errorf("redis layout: mark tagged: %w", err)
	}
	return nil
}

// tagged reports whether every key has its tagged name: migrate said so,
// or the database holds no integration, so it is new (marked at once).
func (f *Fallback) tagged(ctx context.Context) (bool, error) {
	v, err := f.rdb.Get(ctx, Layout).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("redis layout: %w", err)
	}
	if v == LayoutTagged {
		return true, nil
	}
	n, err := f.rdb.Exists(ctx, Integrations).Result()
	if err != nil {
		return false, fmt.Errorf("redis layout: %w", err)
	}
	if n == 0 {
		return true, MarkTagged(ctx, f.rdb)
	}
	return false, nil
}

// Active reports whether Adopt still renames (migrate has not finished).
func (f *Fallback) Active(ctx context.Context) bool {
	if f == nil || f.done.Load() {
		return false
	}
	if now := time.Now().UnixNano(); now >= f.checkAt.Load() {
		f.checkAt.Store(now + int64(recheck))
		if done, err := f.tagged(ctx); err == nil && done {
			f.done.Store(true)
			return false
		}
	}
	return true
}

// adoptScript renames each legacy key to its tagged name when only the
// legacy one exists. KEYS: tagged, legacy, tagged, legacy, …
var adoptScript = redis.NewScript(`
for i = 1, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i]) == 0 and redis.call('EXISTS', KEYS[i+1]) == 1 then
    redis.call('RENAME', KEYS[i+1], KEYS[i])
  end
end
return 1`)

// Adopt gives each tagged key the value its legacy twin holds, if the
// tagged one does not exist yet; one round trip while migration is
// pending, none after.
func (f *Fallback) Adopt(ctx context.Context, keys ...string) error {
	if !f.Active(ctx) {
		return nil
	}
	pairs := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		if old, ok := Legacy(k); ok {
			pairs = append(pairs, k, old)
		}
	}
	if len(pairs) == 0 {
		return nil
	}
	if err := adoptScript.Run(ctx, f.rdb, pairs).Err(); err != nil {
		return fmt.Errorf("adopt legacy keys: %w", err)
	}
	return nil
}
