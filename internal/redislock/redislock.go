// Package redislock is retropub's one Redis lock: a key holding its
// owner's token, with a TTL, taken and released by script so that only the
// owner can release it. Taking it again with the same token succeeds and
// renews it, so a retry of a crashed attempt (same task id) takes over the
// lock its predecessor left.
package redislock

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrHeld is returned by Acquire when another token holds the lock.
var ErrHeld = errors.New("lock held by another owner")

// Lock is one key owned by Token.
type Lock struct {
	rdb   redis.UniversalClient
	Key   string
	Token string
}

// New returns the lock key owned by token; nothing is sent yet.
func New(rdb redis.UniversalClient, key, token string) *Lock {
	return &Lock{rdb: rdb, Key: key, Token: token}
}

// acquireScript sets the key when it is free or already ours.
// KEYS: lock. ARGV: token, ttl ms. Returns 1 when taken.
var acquireScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0`)

// releaseScript deletes the key only while it is ours.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// Acquire takes the lock for ttl; ErrHeld when another token holds it.
func (l *Lock) Acquire(ctx context.Context, ttl time.Duration) error {
	ok, err := acquireScript.Run(ctx, l.rdb, []string{l.Key}, l.Token, ttl.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("take lock %s: %w", l.Key, err)
	}
	if ok == 0 {
		return ErrHeld
	}
	return nil
}

// Release frees the lock if it is still ours; a lock that expired or was
// taken over is left alone.
func (l *Lock) Release(ctx context.Context) error {
	return releaseScript.Run(ctx, l.rdb, []string{l.Key}, l.Token).Err()
}
