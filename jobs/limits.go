package jobs

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"retropub/internal/blocked"
	"retropub/internal/rediskeys"
)

// Limits are the Publisher's fleet-wide limits; the zero value has no
// fairness cap and the default deferral caps.
type Limits struct {
	// MaxActive caps the tasks of one integration running at once across
	// the fleet (INTEGRATION_MAX_ACTIVE; 0 = no cap), so one customer's
	// backfill cannot occupy every worker.
	MaxActive int
	// MaxDeferrals and MaxDeferredFor cap how often and for how long a
	// task may be deferred by rate limits, cooldowns, open breakers and
	// the points budget before it is archived: an endless 429 stream must
	// end. Defaults 500 and 12 h.
	MaxDeferrals   int
	MaxDeferredFor time.Duration
}

const (
	defaultMaxDeferrals   = 500
	defaultMaxDeferredFor = 12 * time.Hour
)

func activeKey(integration string) string  { return rediskeys.Active(integration) }
func waitingKey(integration string) string { return rediskeys.Waiting(integration) }
func deferralsKey(taskID string) string    { return rediskeys.Deferrals(taskID) }

// takeSlotScript is a ZSET semaphore: member = task id, score = when the
// slot expires (Redis clock, ms), so a crashed holder's slot frees itself;
// a retry of the same task takes its own slot over. A task that takes a
// slot leaves the waiting list in the same round trip.
// KEYS: active set, waiting list. ARGV: max, member, lease ms. Returns 1 when taken.
var takeSlotScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[2]) == false and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
redis.call('ZREM', KEYS[2], ARGV[2])
return 1`)

// releaseSlotScript frees a slot and pops the oldest waiting task, one
// round trip. KEYS: active set, waiting list. ARGV: member. Returns the
// popped task id or false.
var releaseSlotScript = redis.NewScript(`
redis.call('ZREM', KEYS[1], ARGV[1])
local next = redis.call('ZPOPMIN', KEYS[2])
if #next == 0 then return false end
return next[1]`)

// takeSlot is the fairness step: a task over its integration's cap goes
// back to asynq's retry set. That lets the tasks queued behind it (other
// integrations') run: asynq's queue is FIFO, so without this a backfill
// enqueued first would hold every worker until it drained. The waiting
// task is listed; whoever frees a slot wakes the oldest (releaseSlot), so
// the backfill keeps its share busy instead of polling. The deferral's own
// delay is only the fallback for a missed wake-up.
func (r *publishRun) takeSlot(ctx context.Context) (bool, error) {
	max := r.h.Limits.MaxActive
	if max <= 0 {
		r.res.Steps[string(stepFairShare)] = skipped
		return false, nil
	}
	ok, err := takeSlotScript.Run(ctx, r.h.Redis, []string{activeKey(r.p.IntegrationID), waitingKey(r.p.IntegrationID)}, max, r.taskID, lockTTL.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("take integration slot: %w", err)
	}
	if ok == 0 {
		// The list expires a day after its last waiter joined, so an
		// archived waiter is not kept forever; a task missing from it still
		// comes back after its own deferral delay.
		pipe := r.h.Redis.TxPipeline()
		pipe.ZAddNX(ctx, waitingKey(r.p.IntegrationID), redis.Z{Score: float64(time.Now().UnixMilli()), Member: r.taskID})
		pipe.Expire(ctx, waitingKey(r.p.IntegrationID), 24*time.Hour)
		if _, err := pipe.Exec(ctx); err != nil {
			return false, fmt.Errorf("list task as waiting: %w", err)
		}
		return false, &DeferredError{
			Reason: fmt.Sprintf("integration %s already has %d tasks running", r.p.IntegrationID, max),
			Delay:  10*time.Second + rand.N(20*time.Second),
		}
	}
	return true, nil
}

// releaseSlot frees the slot and wakes the integration's oldest waiting
// task (retry → pending). A woken task that is not in the retry set (it
// is still returning its deferral, or ran already) is skipped for the next.
//
// With published, the space's blocked mark is cleared in the same round
// trip (a pipeline, not a transaction: the two were never atomic).
func (r *publishRun) releaseSlot(ctx context.Context, published bool) {
	if !r.slot {
		return
	}
	next, err := r.releaseSlotAndClear(ctx, published)
	if errors.Is(err, redis.Nil) {
		return // nobody waits: the common case, one round trip
	}
	if err != nil {
		r.log.Warn("release integration slot", zap.Error(err))
		return
	}
	queue, ok := asynq.GetQueueName(ctx)
	if !ok {
		queue = PublishQueue
	}
	insp := asynq.NewInspectorFromRedisClient(r.h.Redis) // shares the client; nothing to close
	for range 3 {
		if insp.RunTask(queue, next) == nil {
			return
		}
		popped, err := r.h.Redis.ZPopMin(ctx, waitingKey(r.p.IntegrationID)).Result()
		if err != nil || len(popped) == 0 {
			return
		}
		next = popped[0].Member.(string)
	}
}

// releaseSlotAndClear runs releaseSlotScript, pipelined with blocked.Clear
// when published (the script is sent by hash; EVAL only if Redis lacks it).
func (r *publishRun) releaseSlotAndClear(ctx context.Context, published bool) (string, error) {
	keys := []string{activeKey(r.p.IntegrationID), waitingKey(r.p.IntegrationID)}
	if !published {
		return releaseSlotScript.Run(ctx, r.h.Redis, keys, r.taskID).Text()
	}
	pipe := r.h.Redis.Pipeline()
	release := releaseSlotScript.EvalSha(ctx, pipe, keys, r.taskID)
	cleared := blocked.ClearIn(ctx, pipe, r.p.IntegrationID, r.p.Target.SpaceKey)
	_, _ = pipe.Exec(ctx) // each command keeps its own answer
	r.blockedCleared = true
	if err := cleared(); err != nil {
		r.log.Warn("record blocked space", zap.Error(err))
	}
	if redis.HasErrorPrefix(release.Err(), "NOSCRIPT") {
		return releaseSlotScript.Run(ctx, r.h.Redis, keys, r.taskID).Text()
	}
	return release.Text()
}

// deferralCountScript counts a task's deferrals and remembers the first.
// KEYS: counter hash. ARGV: now (unix ms), ttl ms. Returns {count, first ms}.
var deferralCountScript = redis.NewScript(`
redis.call('HSETNX', KEYS[1], 'first', ARGV[1])
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {n, tonumber(redis.call('HGET', KEYS[1], 'first'))}`)

// capDeferrals archives a task deferred too often or for too long.
func (h *Publisher) capDeferrals(ctx context.Context, taskID string, err error) error {
	if err == nil || !classification(err).Counted {
		return err
	}
	maxN, maxFor := h.Limits.MaxDeferrals, h.Limits.MaxDeferredFor
	if maxN <= 0 {
		maxN = defaultMaxDeferrals
	}
	if maxFor <= 0 {
		maxFor = defaultMaxDeferredFor
	}
	now := time.Now()
	res, cerr := deferralCountScript.Run(context.WithoutCancel(ctx), h.Redis, []string{deferralsKey(taskID)},
		now.UnixMilli(), (PublishRetention + maxFor).Milliseconds()).Int64Slice()
	if cerr != nil {
		return err // the count is a safety net; the deferral stands
	}
	waited := now.Sub(time.UnixMilli(res[1]))
	if res[0] > int64(maxN) || waited > maxFor {
		return classify("", permanent(fmt.Errorf("gave up after %d deferrals over %s (Confluence kept refusing): %w", res[0], waited.Round(time.Second), err)))
	}
	return err
}
