package jobs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hibiken/asynq"

	"retropub/outcomes"
)

// Replayer runs parked publishes again (DESIGN §10): after new
// credentials (`worker integrations put`), or when an operator asks.
type Replayer struct {
	Client    *asynq.Client
	Inspector *asynq.Inspector
	Parked    *outcomes.Store
}

// Replay runs integration's parked publishes again (every integration's
// when integration is empty) and returns how many it sent back to the
// queue. A parked record stays until its publish succeeds, so a replay
// that fails again, or is interrupted, loses nothing.
func (rp *Replayer) Replay(ctx context.Context, integration string) (int, error) {
	list, err := rp.Parked.ListParked(ctx, integration)
	if err != nil {
		return 0, err
	}
	// Side by side: each replay is a few round trips, and an integration
	// back from re-authorisation may have thousands parked.
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	var (
		n    atomic.Int64
		wg   sync.WaitGroup
		next = make(chan outcomes.Parked)
	)
	for range replayParallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range next {
				ok, err := rp.One(ctx, p.IntegrationID, p.ReportID)
				if err != nil {
					stop(err)
					continue
				}
				if ok {
					n.Add(1)
				}
			}
		}()
	}
feed:
	for _, p := range list {
		select {
		case next <- p:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return int(n.Load()), context.Cause(ctx)
}

// replayParallel is how many replays run at once.
const replayParallel = 16

// One runs one parked publish again; false when it is no longer parked.
// The parked task is run again under its own id when asynq still holds it
// (so `enqueue publish --wait` sees it complete), else enqueued anew with it.
func (rp *Replayer) One(ctx context.Context, integration, report string) (bool, error) {
	r, err := rp.Parked.TakeReplay(ctx, integration, report)
	if errors.Is(err, outcomes.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	p, err := DecodePublishPayload(r.Payload)
	if err != nil {
		// Only decodable payloads are parked; this one was changed in Redis.
		return false, fmt.Errorf("parked report %s/%s: %w", integration, report, err)
	}
	id := p.TaskID()
	err = rp.Inspector.RunTask(PublishQueue, id)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
		// Trimmed from asynq's archive (or never there): the id is free.
	case strings.Contains(err.Error(), "already"):
		return true, nil // pending or active: a replay is already under way
	default:
		return false, fmt.Errorf("rerun parked task %s: %w", id, err)
	}
	task, err := NewPublishTaskFromJSON(p, r.Payload)
	if err != nil {
		return false, err
	}
	_, err = rp.Client.EnqueueContext(ctx, task)
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return false, fmt.Errorf("enqueue parked task %s: %w", id, err)
	}
	return true, nil
}
