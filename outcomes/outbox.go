package outcomes

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"retropub/internal/rediskeys"
)

// On a Redis Cluster one script cannot write an integration's state and
// the fleet-wide stream: they live in different hash slots. There every
// event is written, in the same script as the state it reports, to the
// integration's outbox (a stream with the integration's tag), and the
// outbox is then relayed to retropub:outcomes: right after the write by
// the writer (Flush), and by every worker's Relay for writers that died
// in between. So a crash still never leaves state without its event.
// Delivery to the stream is at least once (a relayer that dies between
// its XADD and its XDEL leaves the event to be copied again, same event
// id) and in order per integration. On one Redis or Sentinel the scripts
// write the stream directly and nothing here runs.

func outboxKey(integration string) string { return rediskeys.ForIntegration("outbox", integration) }
func outboxLockKey(integration string) string {
	return rediskeys.ForIntegration("outbox", integration, "relay-lock")
}

// outboxIndexKey lists integrations whose outbox may hold events
// (fleet-wide, in no script).
const outboxIndexKey = rediskeys.Prefix + "outbox:integrations"

func onCluster(rdb redis.UniversalClient) bool {
	_, ok := rdb.(*redis.ClusterClient)
	return ok
}

// streamFor is the key the integration's outcome scripts write events to.
func (r *Recorder) streamFor(integration string) string {
	if integration != "" && onCluster(r.Redis) {
		return outboxKey(integration)
	}
	return StreamKey
}

// Flush relays the integration's outbox to the stream (cluster only; a
// no-op elsewhere). A writer calls it after its outcome script; a failure
// leaves the events to Relay.
func (r *Recorder) Flush(ctx context.Context, integration string) error {
	if integration == "" || !onCluster(r.Redis) {
		return nil
	}
	err := r.relay(ctx, integration)
	if err != nil {
		// List it for Relay's next round (best effort: its sweep finds
		// every outbox anyway).
		r.Redis.SAdd(context.WithoutCancel(ctx), outboxIndexKey, integration)
	}
	return err
}

// relayBatch bounds one relay's reads.
const relayBatch = 100

// relay copies the outbox's events to the stream in order and deletes
// them, under a short lock so two relayers do not copy an event twice.
func (r *Recorder) relay(ctx context.Context, integration string) error {
	lock, box := outboxLockKey(integration), outboxKey(integration)
	ok, err := r.Redis.SetNX(ctx, lock, "1", 30*time.Second).Result()
	if err != nil {
		return err
	}
	if !ok {
		// Another process is relaying it now; it may have read the outbox
		// before this writer's event landed, so list it for Relay.
		return r.Redis.SAdd(ctx, outboxIndexKey, integration).Err()
	}
	defer r.Redis.Del(context.WithoutCancel(ctx), lock)
	for {
		msgs, err := r.Redis.XRangeN(ctx, box, "-", "+", relayBatch).Result()
		if err != nil {
			return fmt.Errorf("outbox of %s: %w", integration, err)
		}
		for _, m := range msgs {
			ev, _ := m.Values[StreamField].(string)
			if ev != "" {
				err := r.Redis.XAdd(ctx, &redis.XAddArgs{Stream: StreamKey, MaxLen: r.maxLen(), Approx: true,
					Values: []any{StreamField, ev}}).Err()
				if err != nil {
					return fmt.Errorf("relay outcome of %s: %w", integration, err)
				}
			}
			if err := r.Redis.XDel(ctx, box, m.ID).Err(); err != nil {
				return fmt.Errorf("outbox of %s: %w", integration, err)
			}
		}
		if len(msgs) < relayBatch {
			return nil
		}
	}
}

// sweepEvery is how often Relay looks at every integration's outbox, not
// only the listed ones: a writer that died between its script and its
// Flush listed nothing (a live one lists its outbox when it could not
// relay it itself).
const sweepEvery = 5 * time.Minute

// Relay drains every listed outbox every interval until ctx ends (a
// worker on a cluster runs it). Redis errors wait for the next round.
func (r *Recorder) Relay(ctx context.Context, interval time.Duration) {
	if !onCluster(r.Redis) {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	swept := time.Now()
	for {
		_ = r.relayAll(ctx, outboxIndexKey)
		if time.Since(swept) >= sweepEvery {
			_ = r.relayAll(ctx, rediskeys.Integrations)
			swept = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// relayAll relays the outboxes of the integrations in the set key.
func (r *Recorder) relayAll(ctx context.Context, set string) error {
	ids, err := r.Redis.SMembers(ctx, set).Result()
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		if set != outboxIndexKey {
			if n, err := r.Redis.XLen(ctx, outboxKey(id)).Result(); err != nil || n == 0 {
				continue
			}
		}
		if err := r.relay(ctx, id); err != nil {
			errs = append(errs, err)
			continue
		}
		// Unlist an empty outbox; an event written meanwhile is listed
		// again by its writer's Flush, or seen by the re-check.
		if n, err := r.Redis.XLen(ctx, outboxKey(id)).Result(); err == nil && n == 0 {
			r.Redis.SRem(ctx, outboxIndexKey, id)
			if n, err := r.Redis.XLen(ctx, outboxKey(id)).Result(); err == nil && n > 0 {
				r.Redis.SAdd(ctx, outboxIndexKey, id)
			}
		}
	}
	return errors.Join(errs...)
}
