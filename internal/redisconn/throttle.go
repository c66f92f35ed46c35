package redisconn

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// fatalPrefixes are Redis error replies that go-redis does not retry and
// that no retry by the caller can fix until an operator acts: memory full,
// wrong or missing password, missing ACL permission, failed persistence.
var fatalPrefixes = []string{"OOM ", "NOAUTH ", "WRONGPASS ", "NOPERM ", "MISCONF ", "ERR invalid password", "ERR AUTH "}

// IsFatal reports whether err is one of those replies.
func IsFatal(err error) bool {
	var rerr redis.Error
	if err == nil || errors.Is(err, redis.Nil) || !errors.As(err, &rerr) {
		return false
	}
	for _, p := range fatalPrefixes {
		if strings.HasPrefix(rerr.Error(), p) {
			return true
		}
	}
	return false
}

// Throttle is a go-redis hook that makes every caller that got a fatal
// reply wait before it sees the error. asynq's processor re-polls at once
// after a dequeue error, so without this a worker spins a whole core
// while Redis refuses it (asynq PR #1058); go-redis's own backoff covers
// only the errors it retries.
type Throttle struct {
	Pause     time.Duration // how long a caller waits after a fatal reply; default 500 ms
	lastFatal atomic.Int64  // unix nanoseconds
}

// Install adds a Throttle to rdb and returns it.
func Install(rdb redis.UniversalClient) *Throttle {
	t := &Throttle{}
	rdb.AddHook(t)
	return t
}

// LastFatal is when Redis last gave a fatal reply (zero: never).
func (t *Throttle) LastFatal() time.Time {
	if n := t.lastFatal.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

func (t *Throttle) observe(ctx context.Context, err error) {
	if !IsFatal(err) {
		return
	}
	t.lastFatal.Store(time.Now().UnixNano())
	pause := t.Pause
	if pause <= 0 {
		pause = 500 * time.Millisecond
	}
	timer := time.NewTimer(pause)
	defer timer.Stop()
	select {
	case <-ctx.Done():
	case <-timer.C:
	}
}

// DialHook implements redis.Hook.
func (t *Throttle) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return next(ctx, network, addr)
	}
}

// ProcessHook implements redis.Hook.
func (t *Throttle) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		t.observe(ctx, err)
		return err
	}
}

// ProcessPipelineHook implements redis.Hook.
func (t *Throttle) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if err == nil {
			for _, c := range cmds {
				if IsFatal(c.Err()) {
					err = c.Err()
					break
				}
			}
		}
		t.observe(ctx, err)
		return err
	}
}
